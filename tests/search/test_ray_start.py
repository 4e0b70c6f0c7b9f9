"""A search on a cluster started with the `ray start` command, joined with --address.

A module of its own: `ray stop --force` ends every Ray process of the machine, an in-process
Ray of another test included, and Ray then ends the process that drove it."""

import pytest

from tests.search.helpers import cli, cli_env, run_cli, write_space
from threshsearch.search.storage import load_study

pytestmark = pytest.mark.slow


def test_trials_run_on_an_existing_cluster_joined_by_address(tmp_path):
    import sys
    from pathlib import Path

    env = cli_env()
    ray_cli = str(Path(sys.executable).parent / "ray")
    port = "6391"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    try:
        head = run_cli([ray_cli, "start", "--head", "--port", port,
                        "--include-dashboard", "false", *common], env, timeout=120)
        assert head.returncode == 0, head.stderr[-2000:]
        worker = run_cli([ray_cli, "start", "--address", f"127.0.0.1:{port}", *common], env,
                         timeout=120)
        assert worker.returncode == 0, worker.stderr[-2000:]
        space = write_space(tmp_path, n_trials=4, concurrency=2)
        result = run_cli(cli("run", "--space", str(space), "--address", f"127.0.0.1:{port}",
                             "--quiet"), env)
        assert result.returncode == 0, result.stderr[-2000:]
        listing = run_cli([sys.executable, "-c",
                           "import ray; ray.init(address='127.0.0.1:" + port + "'); "
                           "print(*[node['NodeID'] for node in ray.nodes()])"], env)
        cluster_nodes = set(listing.stdout.split())
    finally:
        run_cli([ray_cli, "stop", "--force"], env, timeout=120)
    assert len(cluster_nodes) == 2
    study = load_study(f"sqlite:///{tmp_path / 'study.db'}")
    used = {t.user_attrs["node"] for t in study.trials if t.user_attrs.get("node")}
    assert used and used <= cluster_nodes
