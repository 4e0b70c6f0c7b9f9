"""A search on a cluster started with the `ray start` command, joined with --address.

The cluster's processes all live under a private temporary folder (``--temp-dir``, named in
each one's command line) and are stopped by pid at the end: `ray stop` would end every Ray
process of the machine, other users' and other tests' included."""

import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.search.helpers import cli, cli_env, run_cli, write_space
from threshsearch.search.storage import load_study

pytestmark = pytest.mark.slow


def processes_under(folder: str) -> list[int]:
    """The pids of this user's processes whose command line names ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.geteuid():
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if folder in command:
            found.append(int(entry.name))
    return found


def stop_processes_under(folder: str, grace_s: float = 10.0) -> list[int]:
    """Ends the processes naming ``folder`` (SIGTERM, then SIGKILL after ``grace_s``);
    returns those still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in processes_under(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while processes_under(folder) and time.monotonic() < deadline:
            time.sleep(0.2)
    return processes_under(folder)


def test_trials_run_on_an_existing_cluster_joined_by_address(tmp_path):
    env = cli_env()
    ray_cli = str(Path(sys.executable).parent / "ray")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    # Short: Ray's socket paths under it must fit in 107 characters.
    temp_dir = tempfile.mkdtemp(prefix="ts-ray-")
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats",
              "--temp-dir", temp_dir]
    try:
        head = run_cli([ray_cli, "start", "--head", "--port", port,
                        "--include-dashboard", "false", *common], env, timeout=120)
        assert head.returncode == 0, head.stderr[-2000:]
        worker = run_cli([ray_cli, "start", "--address", f"127.0.0.1:{port}", *common], env,
                         timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        space = write_space(tmp_path, n_trials=2, concurrency=2)
        result = run_cli(cli("run", "--space", str(space), "--address", f"127.0.0.1:{port}",
                             "--quiet"), env)
        assert result.returncode == 0, result.stderr[-2000:]
        listing = run_cli([sys.executable, "-c",
                           "import ray; ray.init(address='127.0.0.1:" + port + "'); "
                           "print(*[node['NodeID'] for node in ray.nodes()])"], env)
        cluster_nodes = set(listing.stdout.split())
    finally:
        left = stop_processes_under(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert not left, f"the cluster's processes {left} outlived the test"
    assert len(cluster_nodes) == 2
    study = load_study(f"sqlite:///{tmp_path / 'study.db'}")
    used = {t.user_attrs["node"] for t in study.trials if t.user_attrs.get("node")}
    assert used and used <= cluster_nodes
