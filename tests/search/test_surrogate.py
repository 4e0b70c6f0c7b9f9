"""The surrogate trial: the model's curves, reports a real trial's reader accepts, and a run of
the real driver under Ray with it in place of training."""

import numpy as np
import yaml

from tests.search.helpers import budget_used, write_space
from threshsearch.search.progress import Progress
from threshsearch.search.runner import open_study
from threshsearch.search.space import load_space
from threshsearch.search.surrogate import (
    NOISE,
    curve,
    expected_curve,
    final_accuracy,
    run_surrogate,
)
from threshsearch.search.trial import DONE, INFEASIBLE, PROFILED
from threshsearch.search.worktime import WORKER_TIME


def test_accuracy_rises_with_capacity_with_diminishing_returns_and_overfits_when_huge():
    small, mid, large = (final_accuracy(madd, 1e5, 10) for madd in (1e5, 1e7, 1e9))
    assert small < mid < large <= 0.95
    assert large - mid < mid - small
    assert final_accuracy(1e9, 1e8, 10) < final_accuracy(1e9, 1e6, 10)


def test_a_curve_saturates_and_its_noise_is_the_trial_seeds():
    first = curve(1e7, 1e5, 10, 12, seed=3)
    assert first == curve(1e7, 1e5, 10, 12, seed=3)
    assert first != curve(1e7, 1e5, 10, 12, seed=4)
    assert first[-1] > first[0]
    assert abs(first[-1] - final_accuracy(1e7, 1e5, 10)) < 0.05


def test_the_expected_curve_is_what_the_noisy_curves_average_to():
    mean = expected_curve(1e7, 1e5, 10, 9)
    curves = np.array([curve(1e7, 1e5, 10, 9, seed=seed) for seed in range(400)])
    assert np.all(np.abs(curves.mean(axis=0) - mean) < 4 * NOISE / np.sqrt(400))
    assert np.all(np.diff(mean) > 0)
    assert mean[-1] < final_accuracy(1e7, 1e5, 10)


def spec_from_the_searcher(tmp_path, constraints):
    from threshsearch.search.searcher import StudySearcher

    path = write_space(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["constraints"] = constraints
    data["space"]["growth"] = 4
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    searcher = StudySearcher(space, open_study(space), 32, Progress(space, quiet=True), {})
    try:
        return searcher.suggest("t0")
    finally:
        searcher.close()


def test_reports_one_per_epoch_with_the_drivers_profiled_figures(tmp_path):
    spec = spec_from_the_searcher(tmp_path, [{"metric": "params", "max": 1e9}])
    reports = []
    run_surrogate(spec, reports.append, 32, epoch_s=0.0)
    assert [report["epoch"] for report in reports] == [1, 2, 3]
    assert reports[-1][DONE] and not any(DONE in report for report in reports[:-1])
    assert reports[-1]["params"] == spec[PROFILED]["params"]
    assert "latency_ms" not in reports[-1], "no objective or constraint asks for latency"
    assert reports[-1][WORKER_TIME]["training"] >= 0.0


def test_a_constraint_the_worker_checks_makes_the_trial_infeasible(tmp_path):
    spec = spec_from_the_searcher(tmp_path, [{"metric": "latency_ms", "max": 1e-9}])
    reports = []
    run_surrogate(spec, reports.append, 32, epoch_s=0.0)
    assert len(reports) == 1 and INFEASIBLE in reports[0] and reports[0][DONE]


def test_the_real_driver_runs_the_surrogate_under_ray(local_ray, tmp_path):
    from threshsearch.search.runner import run_search
    from threshsearch.search.surrogate import surrogate_trainable

    surrogate = surrogate_trainable(32, 0.01)

    def torch_free(spec, data=None):
        # Defined here, so Ray ships it by value: the worker imports only what the surrogate
        # needs (not this test module, which imports PyTorch through the runner).
        import sys

        surrogate(spec, data)
        if "torch" in sys.modules:
            raise RuntimeError("the surrogate's worker imported PyTorch")

    path = write_space(tmp_path, n_trials=12, concurrency=4)
    data = yaml.safe_load(path.read_text())
    data["data"]["ship"] = False  # the surrogate reads no data (shipped tensors need PyTorch)
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    study = run_search(space, quiet=True, trainable=torch_free).study
    ended = [trial for trial in study.trials if trial.user_attrs.get("status") != "duplicate"
             and trial.user_attrs.get("status") != "infeasible"]
    assert budget_used(study.trials) == 12 and ended
    assert all(trial.user_attrs.get("device") == "surrogate" for trial in ended)
    # A worker that imported PyTorch raised: its trial would be "failed".
    assert {trial.user_attrs["status"] for trial in ended} <= {"complete", "pruned"}
