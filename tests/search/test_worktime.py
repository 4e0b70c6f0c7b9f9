"""The worker-time account: a trial's phases add up to its wall time; a run's tally; a study
that asks for no latency measures none."""

import time

import pytest

from threshsearch.search import trial as trial_module
from threshsearch.search.trial import LATENCY, PAUSED_S, evaluate_candidate
from threshsearch.search.worktime import (
    OUTSIDE,
    PHASES,
    WORKER_S,
    WORKER_TIME,
    WorkTally,
)

DRIVER_WAIT_S = 0.05  # each report waits this long, as a worker waits for a busy driver


def run_timed(spec: dict) -> tuple[list[dict], float]:
    """The trial's reports, and its wall time up to the moment of its last report."""
    reports, calls = [], []

    def report(metrics: dict) -> None:
        calls.append(time.perf_counter())
        reports.append(metrics)
        time.sleep(DRIVER_WAIT_S)

    start = time.perf_counter()
    evaluate_candidate(spec, report)
    return reports, calls[-1] - start


def test_the_account_adds_up_to_the_trials_wall_time(spec):
    spec["recipe"]["epochs"] = 3
    reports, wall = run_timed(spec)
    account = reports[-1][WORKER_TIME]
    phases = sum(account[phase] for phase in PHASES)
    assert phases == pytest.approx(wall, rel=0.05), account
    assert account[WORKER_S] == pytest.approx(wall, rel=0.05)
    for phase in ("setup", "data", "pricing", "build", "latency", "training", "evaluation"):
        assert account[phase] > 0, phase
    # The reports before the last one each waited for the driver.
    assert account["reporting"] >= DRIVER_WAIT_S * (len(reports) - 1)
    # Every report carries the account so far, growing.
    totals = [report[WORKER_TIME][WORKER_S] for report in reports]
    assert totals == sorted(totals)


def test_a_study_that_asks_for_no_latency_measures_none(spec, monkeypatch):
    def no_measurement(*args, **kwargs):
        raise AssertionError("latency measured although no objective or constraint needs it")

    monkeypatch.setattr(trial_module, "estimate_latency", no_measurement)
    spec["measure_latency"] = False
    reports = []
    evaluate_candidate(spec, reports.append)
    last = reports[-1]
    assert LATENCY not in last and "latency_ms" not in last
    assert last[WORKER_TIME]["latency"] == 0
    assert last[PAUSED_S] == 0 and last[WORKER_TIME]["paused"] == 0
    assert last["val_accuracy"] >= 0 and last["memrw_mib"] > 0


def test_a_tally_adds_the_slot_time_outside_the_trial_function():
    tally = WorkTally()
    tally.add({"training": 6.0, "evaluation": 1.0, "latency": 1.0, WORKER_S: 8.0}, 10.0)
    tally.add({"training": 3.0, "pricing": 1.0, WORKER_S: 4.0}, 4.5)
    tally.add(None, 0.5)  # a trial whose worker died before reporting: all outside
    assert tally.seconds[OUTSIDE] == pytest.approx(2.0 + 0.5 + 0.5)
    assert tally.total_s == pytest.approx(15.0)
    assert sum(tally.shares().values()) == pytest.approx(1.0)
    assert tally.training_share() == pytest.approx(10.0 / 15.0)
    assert tally.describe().startswith("training 60.0% · outside 20.0%")
