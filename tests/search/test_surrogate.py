"""The surrogate trial: the model's curves, reports a real trial's reader accepts, and a run of
the real driver under Ray with it in place of training."""

import numpy as np
import pytest
import yaml

from tests.search.helpers import budget_used, write_space
from threshsearch.search.progress import Progress
from threshsearch.search.runner import open_study
from threshsearch.search.space import load_space
from threshsearch.search.surrogate import (
    OVERFIT_PARAMS,
    curve,
    expected_curve,
    run_surrogate,
)
from threshsearch.search.trial import DONE, INFEASIBLE, PROFILED
from threshsearch.search.worktime import WORKER_TIME

HASH = "0000000000000000"  # a network near the typical: its own effect u = 0.13


def test_accuracy_rises_with_size_and_epochs_and_the_small_learn_slowly():
    small, mid, large = (expected_curve(params, HASH, 10, 6) for params in (3e4, 1e5, 5e5))
    assert small[-1] < mid[-1] < large[-1] <= 0.995
    assert all(np.diff(small) > 0) and all(np.diff(large) > 0)
    # Below 100k parameters the epochs help less: the small network gains less from epoch
    # 2 to 6 on the logit scale; beyond the data, huge networks overfit.
    logit = [np.log((np.array(a) - 0.1) / (0.995 - np.array(a))) for a in (small, mid)]
    assert logit[0][-1] - logit[0][1] < logit[1][-1] - logit[1][1]
    assert expected_curve(OVERFIT_PARAMS * 100, HASH, 10, 6)[-1] < expected_curve(
        OVERFIT_PARAMS, HASH, 10, 6)[-1]


def test_a_curve_levels_off_and_never_falls_with_more_epochs():
    for params in (3e4, 1e5, 1e6):
        mean = np.array(expected_curve(params, HASH, 10, 60))
        assert np.all(np.diff(mean) >= -1e-12)
    # A 30k-parameter network's fitted curve peaks near epoch 17: flat after it.
    small = expected_curve(3e4, HASH, 10, 60)
    assert small[-1] == pytest.approx(small[19], abs=1e-12) and small[19] > small[9]


def test_networks_of_one_size_differ_by_their_own_effect_shared_by_their_trials():
    finals = [expected_curve(4e4, f"{n:016x}", 10, 6)[-1] for n in range(200)]
    assert 0.01 < np.std(finals) < 0.1
    one, other = curve(1e5, HASH, 10, 6, seed=3), curve(1e5, HASH, 10, 6, seed=4)
    assert one == curve(1e5, HASH, 10, 6, seed=3) and one != other


def test_the_expected_curve_is_what_the_noisy_curves_average_to():
    mean = np.array(expected_curve(1e5, HASH, 10, 9))
    curves = np.array([curve(1e5, HASH, 10, 9, seed=seed) for seed in range(2000)])
    assert np.all(np.abs(curves.mean(axis=0) - mean) < 4 * curves.std(axis=0) / np.sqrt(2000))
    # The first epoch varies most between seeds; later ones carry a seed's luck forward.
    assert curves.std(axis=0)[0] == curves.std(axis=0).max()
    assert np.corrcoef(curves[:, 4], curves[:, 5])[0, 1] > 0.3


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


def test_the_real_driver_runs_the_surrogate_under_ray(local_ray, tmp_path, monkeypatch):
    from threshsearch.search.endedtrials import ShedEndedTrials
    from threshsearch.search.runner import run_search
    from threshsearch.search.surrogate import surrogate_trainable

    held = []  # the length of Tune's trial list at each step's end

    def record(callback, iteration, trials, **info):
        held.append(len(trials))

    monkeypatch.setattr(ShedEndedTrials, "on_step_end", record, raising=False)

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
    # Tune's controller forgets its ended trials: it holds the four it runs (and any that ended
    # since its last choice), not every trial of the run.
    assert max(held) <= 6 and max(held) < len(ended)
