"""The search commands of the CLI: validate, run's input errors, dashboard, retime's."""

import json
import socket
import subprocess
import time
import urllib.request

import optuna
import pytest
import yaml

from tests.search.helpers import TINY_SPACE, cli, cli_env, wait_for
from threshsearch.cli import main


def test_validate_summarises_samples_and_profiles(capsys):
    assert main(["validate", "--space", "search_spaces/quickstart.yaml", "--samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "val_accuracy (maximize)" in out
    assert "params <= 1.5e+06" in out and "threshold: int in [0, 160] step 16" in out
    assert len([line for line in out.splitlines() if " MiB" in line]) == 2
    assert "sampler     tpe(" in out and "early stop  pareto (grace 2 epochs" in out
    assert "baselines   threshnet79, densenet121" in out
    assert "latency     not measured by the trials" in out
    assert "predicted   by a device model of this machine's CPU" in out


def test_validate_says_cuda_graphs_do_nothing_on_the_cpu(capsys, tmp_path):
    path = tmp_path / "space.yaml"
    objectives = [{"metric": "val_accuracy", "direction": "maximize"},
                  {"metric": "latency_ms", "direction": "minimize"}]
    for device, noted in (("cpu", True), ("cuda", False)):
        path.write_text(yaml.safe_dump({**TINY_SPACE, "objectives": objectives,
                                        "data": {**TINY_SPACE.get("data", {}),
                                                 "device": device},
                                        "measurement": {"cuda_graph": True}}))
        assert main(["validate", "--space", str(path), "--samples", "0"]) == 0
        out = capsys.readouterr().out
        assert "device to itself, CUDA graph replays" in out
        assert ("measurement.cuda_graph has no effect: data.device is cpu" in out) is noted


@pytest.mark.parametrize("command", ["validate", "run"])
def test_malformed_space_is_one_line_exit_2(capsys, tmp_path, command):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({**TINY_SPACE, "objectives": [{"metric": "acc"}]}))
    assert main([command, "--space", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "objectives[0].metric: 'acc' is invalid; expected one of val_accuracy" in err


def test_run_rejects_a_bad_trial_count(capsys):
    assert main(["run", "--space", "search_spaces/quickstart.yaml", "--n-trials", "0"]) == 2
    assert "--n-trials: 0" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["trials", "report"])
def test_a_study_that_never_ran_says_what_to_run_and_makes_no_database(capsys, tmp_path,
                                                                       command):
    path = tmp_path / "space.yaml"
    data = {**TINY_SPACE, "study": {**TINY_SPACE["study"],
                                    "storage": f"sqlite:///{tmp_path / 'study.db'}"}}
    path.write_text(yaml.safe_dump(data))
    assert main([command, "--space", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nothing has run with this storage yet; run `threshsearch run --space" in err
    assert "--study" not in err and not (tmp_path / "study.db").exists()
    optuna.create_study(study_name="other", storage=data["study"]["storage"])
    assert main([command, "--space", str(path)]) == 2
    assert (f"--space {path}: no study 'tiny' in the storage; expected one of other; run "
            f"`threshsearch run --space {path}` first") in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dashboard_serves_the_study_and_its_objective_names(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="shown", storage=url,
                                directions=["maximize", "minimize"])
    study.set_metric_names(["val_accuracy", "latency_ms"])
    port = free_port()
    server = subprocess.Popen(cli("dashboard", "--storage", url, "--port", str(port)),
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def get(path: str):
        with urllib.request.urlopen(base + path, timeout=5) as response:
            return json.loads(response.read())

    def up() -> bool:
        try:
            get("/api/studies")
            return True
        except OSError:
            return False

    try:
        assert wait_for(up, 60), "the dashboard never answered"
        summaries = get("/api/studies")["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["shown"]
        detail = get(f"/api/studies/{summaries[0]['study_id']}")
        assert detail["objective_names"] == ["val_accuracy", "latency_ms"]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dashboard_on_a_port_in_use_says_so_in_one_line(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", "--storage", url, "--port", str(port)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # below the web server's banner
    assert last.startswith(f"threshsearch dashboard: error: --port: cannot serve on "
                           f"127.0.0.1:{port} (Address already in use)")


def test_dashboard_refuses_a_public_address_without_the_flag(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert main(["dashboard", "--storage", url, "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert "no authentication" in err and "--allow-remote" in err


def test_dashboard_warns_when_allowed_on_a_public_address(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    server = subprocess.Popen(
        cli("dashboard", "--storage", url, "--host", "0.0.0.0", "--port", str(free_port()),
            "--allow-remote"),
        env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        warning = server.stderr.readline()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert warning.startswith("warning: serving the dashboard on 0.0.0.0")


def test_retime_needs_a_front_and_a_cluster_that_answers(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=url,
                                directions=["maximize", "minimize"])
    assert main(["retime", "--storage", url]) == 2
    assert "study s: no completed trial, so no front to re-time" in capsys.readouterr().err
    study.add_trial(optuna.trial.create_trial(values=[0.9, 1.0],
                                              user_attrs={"architecture": {}}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    assert main(["retime", "--storage", url, "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"--address: no Ray cluster answers at '127.0.0.1:{port}'" in err
    assert len(err.strip().splitlines()) == 1
