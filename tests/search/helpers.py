"""Search-test helpers: a tiny space, a study made without Ray, the CLI as a subprocess,
storage polling, a searcher driven without Ray."""

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import yaml

TINY_SPACE = {
    "study": {"name": "tiny", "sampler": "random", "seed": 1, "n_trials": 8,
              "concurrency": 1, "heartbeat_s": 1, "grace_s": 3},
    "objectives": [{"metric": "val_accuracy"}, {"metric": "memrw_mib"}],
    "data": {"dataset": "synthetic", "device": "cpu"},
    "train": {"recipe": "quick", "epochs": 3, "lr": 0.01},
    "early_stopping": {"kind": "asha", "grace_epochs": 1, "reduction_factor": 2},
    "resources": {"cpus": 1},
    # short timings where a trial measures latency: the tests read that it was measured
    "measurement": {"min_time_s": 0.05, "max_time_s": 0.3},
    "base": "threshnet79",
    "space": {
        "num_stages": 3,
        "depth": {"type": "int", "low": 1, "high": 2},
        "growth": {"type": "categorical", "choices": [4, 6, 48]},
        "threshold": {"type": "categorical", "choices": [0, 64, "inf"]},
        "dense_reduction": 0.5,
    },
    # growth 48 makes the network too big: those trials are infeasible
    "constraints": [{"metric": "params", "max": 60000}],
    "baselines": [],  # the paper's models train for long: only the tests of baselines have any
}


def write_space(tmp_path: Path, **study) -> Path:
    data = {**TINY_SPACE, "study": {**TINY_SPACE["study"], **study}}
    data["study"]["storage"] = f"sqlite:///{tmp_path / 'study.db'}"
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "threshsearch.cli", *args]


def trial_rows(db: Path) -> list[tuple]:
    if not db.exists():
        return []
    with sqlite3.connect(db, timeout=30) as connection:
        try:
            return connection.execute("SELECT number, state FROM trials").fetchall()
        except sqlite3.OperationalError:
            return []


def age_heartbeats(storage_url: str, seconds: int) -> None:
    """Every trial heartbeat in the SQLite storage made ``seconds`` older, as if its driver
    had died that long ago: a test need not sleep through a grace period. The stale check
    compares the storage's own clock, so this is all it sees."""
    with sqlite3.connect(storage_url.removeprefix("sqlite:///"), timeout=30) as connection:
        connection.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, ?)",
                           (f"-{seconds} seconds",))


def wait_for(condition, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc): a local Ray's raylet and workers are below
    the driver that started it, another test run's are not."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:  # the parent pid is the 2nd field after the command's closing parenthesis
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(parent, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cli_env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}


def run_cli(args: list[str], env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def offline_study(folder: Path, n_trials: int = 7, objectives: list | None = None,
                  stop_after_first_epoch: int | None = 1, measurement: dict | None = None):
    """(space, study): a study made by the real searcher and trial code, run in this process
    (no Ray): complete, infeasible and (simulated early-stopped: trial index
    ``stop_after_first_epoch``) pruned trials."""
    from threshsearch.search.progress import Progress
    from threshsearch.search.runner import open_study
    from threshsearch.search.searcher import StudySearcher
    from threshsearch.search.space import load_space
    from threshsearch.search.trial import evaluate_candidate

    data = {**TINY_SPACE, "study": {**TINY_SPACE["study"], "n_trials": n_trials,
                                    "storage": f"sqlite:///{folder / 'study.db'}"},
            "objectives": objectives or [{"metric": "val_accuracy"}, {"metric": "memrw_mib"},
                                         {"metric": "params"}],
            # a bound every trial meets: the trials measure latency, as the results show it
            "constraints": [*TINY_SPACE["constraints"], {"metric": "latency_ms", "max": 1e6}],
            "measurement": measurement or TINY_SPACE["measurement"]}
    path = folder / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    study = open_study(space)
    stopped = {f"t{stop_after_first_epoch}":
               "stopped by asha on val_accuracy at the epoch-1 rung (simulated)"}
    searcher = StudySearcher(space, study, 32, Progress(space, quiet=True), stopped)
    searcher.suggest_s = float("inf")  # every call draws until it hands out a trial
    try:
        for index in range(space.study.n_trials):
            trial_id = f"t{index}"
            spec = searcher.suggest(trial_id)
            if not isinstance(spec, dict):
                continue
            reports = []
            evaluate_candidate(spec, reports.append)
            if index == stop_after_first_epoch and len(reports) > 1:
                reports = reports[:1]  # as if early stopping stopped it after epoch 1
            for report in reports:
                searcher.on_trial_result(trial_id, report)
            searcher.on_trial_complete(trial_id, reports[-1])
    finally:
        searcher.close()
    return space, study


def fake_profiling():
    """profile_device's keywords for a profile on a fake clock and runtime."""
    from tests.devicemodel.fakes import FakeClock, FakeRuntime

    clock = FakeClock()
    return {"runtime": FakeRuntime(clock), "clock": clock, "progress": False}


def write_device_model(path: Path, space_path: Path | None = None, draws: int = 12) -> Path:
    """A device model of the tiny space's networks (draws and the presets, which baselines
    are), made on a fake clock (nothing timed for real) and saved at ``path``."""
    import optuna

    from threshsearch.devicemodel import profile_device
    from threshsearch.presets import PRESETS, get_preset
    from threshsearch.search.space import load_space

    if space_path is None:
        (path.parent / "for-model").mkdir(parents=True, exist_ok=True)
        space_path = write_space(path.parent / "for-model")
    space = load_space(space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = [space.sample(study.ask())[0] for _ in range(draws)]
    configs += [get_preset(name, space.num_classes) for name in PRESETS]  # the baselines
    # Profiling takes the device lock: a private folder keeps other tests' trials going.
    with mock.patch.dict(os.environ, {"THRESHSEARCH_LOCK_DIR": str(path.parent / "locks")}):
        model = profile_device(configs, calibration_networks=10, **fake_profiling())
    model.save(path)
    return path


# The searcher without Ray: a space, a searcher on it, an epoch's report, a stored trial.
CHEAP = {"params": 5000, "madd": 1e6, "flops": 1e6, "memrw_mib": 1.0, "cio": 1e4,
         "activation_mib": 0.5, "latency_ms": 1.0, "device": "cpu"}


def budget_used(trials) -> int:
    """The trials the budget counts: every trial but the repeats of a network tried before."""
    return sum(t.user_attrs.get("status") != "duplicate" for t in trials)


def epoch_result(epoch: int, accuracy: float, **extra) -> dict:
    return {**CHEAP, "epoch": epoch, "val_accuracy": accuracy, "train_loss": 1.0 / epoch,
            "val_loss": 1.0, "epoch_time_s": 0.1 + accuracy, "train_images_per_s": 100.0,
            "compute_s": 1.0, **extra}


def make_space(tmp_path, constraints=(), **space):
    from threshsearch.search.space import load_space

    path = write_space(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["constraints"] = list(constraints)
    data["space"].update(space)
    path.write_text(yaml.safe_dump(data))
    return load_space(path)


def make_searcher(space, study=None, stop_reasons=None):
    from threshsearch.search.progress import Progress
    from threshsearch.search.runner import open_study
    from threshsearch.search.searcher import StudySearcher

    study = study or open_study(space)
    searcher = StudySearcher(space, study, 32, Progress(space, quiet=True), stop_reasons or {})
    # No wall-clock limit on one suggestion's draws: on a loaded machine the limit would
    # hand Tune back a None where a test expects the trial.
    searcher.suggest_s = float("inf")
    return searcher


def stored(searcher, number: int):
    return searcher.study.get_trials(deepcopy=False)[number]
