"""The sampler-learning benchmark's scoring: the front a run reports, at its networks'
expected accuracy."""

import optuna
import pytest

from benchmarks.sampler_learning import expected_front
from threshsearch.search.surrogate import expected_curve

DIRECTIONS = ["maximize", "minimize"]


def study_of(trials):
    """A study of (val_accuracy, memrw_mib, config_hash, params, status) trials."""
    study = optuna.create_study(directions=DIRECTIONS)
    study.set_metric_names(["val_accuracy", "memrw_mib"])
    for accuracy, memrw, config_hash, params, status in trials:
        trial = study.ask()
        for key, value in (("config_hash", config_hash), ("params", params),
                           ("status", status),
                           ("architecture", {"num_classes": 10}), ("recipe", {"epochs": 9})):
            trial.set_user_attr(key, value)
        study.tell(trial, [accuracy, memrw])
    return study


def test_the_observed_front_is_scored_at_its_expected_accuracy():
    study = study_of([
        (0.80, 1.0, "00000000000000a1", 1e5, "complete"),   # lucky: on the observed front
        (0.76, 2.0, "00000000000000a2", 1e6, "complete"),   # dominated as observed
        (0.90, 0.5, "00000000000000a3", 1e4, "duplicate"),  # a repeat is not trained
    ])
    (point,) = expected_front(study, DIRECTIONS)
    assert point == pytest.approx(
        (-expected_curve(1e5, "00000000000000a1", 10, 9)[-1], 1.0))


def test_a_study_without_val_accuracy_is_refused():
    study = study_of([(0.8, 1.0, "00000000000000a1", 1e5, "complete")])
    study.set_metric_names(["val_top5", "memrw_mib"])
    with pytest.raises(ValueError, match="no val_accuracy"):
        expected_front(study, DIRECTIONS)
