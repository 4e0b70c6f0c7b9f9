"""Crashes and sharing: a Ray worker killed mid-trial, two drivers on one PostgreSQL study."""

import contextlib
import os
import signal
import subprocess

import pytest
import yaml
from optuna.trial import TrialState

from tests.search.helpers import (
    budget_used,
    cli,
    cli_env,
    descendants,
    run_cli,
    trial_rows,
    wait_for,
    write_space,
)
from threshsearch.search.storage import load_study, retried_numbers

pytestmark = pytest.mark.slow


def slow_space(tmp_path, **study):
    path = write_space(tmp_path, **study)
    data = yaml.safe_load(path.read_text())
    data["train"]["epochs"] = 8
    data["early_stopping"] = {"kind": "none"}
    path.write_text(yaml.safe_dump(data))
    return path


def trained_hashes(study) -> list[str]:
    return [t.user_attrs["config_hash"] for t in study.trials
            if t.user_attrs.get("status") in ("complete", "pruned", "infeasible")]


def test_a_killed_ray_worker_is_retried_and_the_study_goes_on(tmp_path):
    space = slow_space(tmp_path, n_trials=3)
    db = tmp_path / "study.db"
    driver = subprocess.Popen(cli("run", "--space", str(space), "--quiet"), env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def worker_pids() -> list[int]:  # this driver's trial workers, no other Ray's
        listing = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True,
                                 text=True, check=False)
        return sorted(set(map(int, listing.stdout.split())) & descendants(driver.pid))

    running = wait_for(lambda: any(state == "RUNNING" for _, state in trial_rows(db))
                       and worker_pids(), 180, 0.1)
    assert running, "no trial started"
    for pid in worker_pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    output, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0, output[-2000:]
    study = load_study(f"sqlite:///{db}")
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert budget_used(study.trials) - len(retried_numbers(study.trials)) == 3
    for trial in study.trials:
        if trial.state == TrialState.FAIL:
            assert trial.user_attrs.get("reason"), "a failed trial says why"


def test_two_drivers_share_one_postgres_study(tmp_path, empty_postgres_url):
    space = slow_space(tmp_path, n_trials=4)
    data = yaml.safe_load(space.read_text())
    data["train"]["epochs"] = 2
    space.write_text(yaml.safe_dump(data))
    command = cli("run", "--space", str(space), "--storage", empty_postgres_url, "--quiet")
    drivers = [subprocess.Popen(command, env=cli_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [driver.communicate(timeout=400)[0] for driver in drivers]
    for driver, output in zip(drivers, outputs, strict=True):
        assert driver.returncode == 0, output[-2000:]
    study = load_study(empty_postgres_url, "tiny")
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(len(numbers))), "every trial recorded once"
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    finished = budget_used(study.trials) - len(retried_numbers(study.trials))
    assert 4 <= finished <= 5, "the budget is shared (two drivers may each start one last)"
    hashes = trained_hashes(study)
    assert len(hashes) == len(set(hashes)), "a config was trained twice"
    assert run_cli(cli("trials", "--storage", empty_postgres_url, "--out",
                       str(tmp_path / "t.csv")), cli_env()).returncode == 0
