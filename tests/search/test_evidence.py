"""A running trial's learning curve: written with its first epoch, then at most once a period,
and whole at the trial's end."""

import optuna

from threshsearch.search.evidence import LEARNING_CURVE, LearningCurves


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _result(epoch, **extra):
    return {"epoch": epoch, "val_accuracy": epoch / 10, **extra}


def _one_trial(tmp_path):
    """A study with one running trial, and curves written at most once a second of a fake
    clock."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    clock = FakeClock()
    return study, study.ask(), LearningCurves(every_s=1.0, clock=clock), clock


def _stored_epochs(study):
    return [entry["epoch"] for entry in study.trials[0].user_attrs.get(LEARNING_CURVE, [])]


def test_the_curve_is_written_at_most_once_a_period_and_whole_at_the_end(tmp_path):
    study, trial, curves, clock = _one_trial(tmp_path)
    curves.record("ray-1", trial, _result(1, memrw_mib=0.5))
    assert _stored_epochs(study) == [1]
    assert study.trials[0].user_attrs["memrw_mib"] == 0.5  # cheap metrics with the first epoch
    clock.now = 0.5
    curves.record("ray-1", trial, _result(2))
    assert _stored_epochs(study) == [1]
    clock.now = 1.2
    curves.record("ray-1", trial, _result(3))
    assert _stored_epochs(study) == [1, 2, 3]
    clock.now = 1.5
    curves.record("ray-1", trial, _result(4))
    assert _stored_epochs(study) == [1, 2, 3]
    last = curves.finish("ray-1", trial, _result(4))  # the same report again: nothing new
    assert [entry["epoch"] for entry in last[LEARNING_CURVE]] == [1, 2, 3, 4]
    assert curves.curves == {} and curves.unwritten == {}


def test_a_curve_already_written_leaves_nothing_for_the_end(tmp_path):
    study, trial, curves, _ = _one_trial(tmp_path)
    curves.record("ray-1", trial, _result(1))
    assert curves.finish("ray-1", trial, _result(1)) == {}
    assert [e["epoch"] for e in curves.finish("ray-2", study.ask(), _result(1))[
        LEARNING_CURVE]] == [1]


def _restarted(tmp_path):
    """A trial whose worker died after two epochs, run again from epoch 1 within a second."""
    study, trial, curves, clock = _one_trial(tmp_path)
    curves.record("ray-1", trial, _result(1, latency_ms=1.0))
    clock.now = 0.2
    curves.record("ray-1", trial, _result(2))
    clock.now = 0.4
    curves.record("ray-1", trial, _result(1, latency_ms=2.0))
    return study, trial, curves, clock


def test_a_restarted_attempt_is_written_at_once_with_its_cheap_metrics(tmp_path):
    study, *_ = _restarted(tmp_path)
    stored = study.trials[0].user_attrs
    assert _stored_epochs(study) == [1] and stored["latency_ms"] == 2.0
    assert stored["restarts"] == 1


def test_the_restarted_attempts_held_back_epochs_reach_the_last_write(tmp_path):
    study, trial, curves, clock = _restarted(tmp_path)
    clock.now = 0.5
    curves.record("ray-1", trial, _result(2))
    assert _stored_epochs(study) == [1]
    last = curves.finish("ray-1", trial, {})
    assert [e["epoch"] for e in last[LEARNING_CURVE]] == [1, 2]
