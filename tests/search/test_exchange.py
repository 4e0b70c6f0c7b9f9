"""How a trial's last result (or its twin) becomes its outcome in the study, without Ray or a
study: state, status, values, reason, constraints and whether a retry is queued."""

import optuna
from optuna.trial import TrialState

from threshsearch.search.exchange import duplicate_outcome, nested, trial_outcome
from threshsearch.search.sections import Constraint

CONSTRAINTS = (Constraint(metric="params", max=10000.0),)
METRIC_NAMES = ("val_accuracy", "memrw_mib")


def result(epoch: int = 3, **extra) -> dict:
    return {"epoch": epoch, "val_accuracy": 0.8, "memrw_mib": 2.0, "params": 5000,
            "compute_s": 4.0, "device": "cpu", **extra}


def outcome(last: dict, error: bool = False, stop_reason: str | None = None,
            baseline: bool = False, device_warnings: list[str] | None = None):
    return trial_outcome(last, error=error, stop_reason=stop_reason, constraints=CONSTRAINTS,
                         metric_names=METRIC_NAMES, wall_s=5.0,
                         device_warnings=device_warnings or [], baseline=baseline)


def test_a_trial_trained_to_the_end_is_complete_with_its_objectives():
    made = outcome(result(trial_done=True), stop_reason="ignored: it finished")
    assert (made.state, made.status, made.reason) == (TrialState.COMPLETE, "complete", None)
    assert made.values == [0.8, 2.0]
    assert made.constraints == {"params_max": -0.5}
    assert made.attrs["epochs"] == 3 and made.attrs["compute_s"] == 4.0
    assert made.attrs["wall_s"] == 5.0 and "stopped_at_epoch" not in made.attrs
    assert not made.retry


def test_an_early_stopped_trial_is_pruned_at_its_epoch():
    made = outcome(result(epoch=1), stop_reason="stopped by asha at the epoch-1 rung")
    assert (made.state, made.status) == (TrialState.PRUNED, "pruned")
    assert made.reason == "stopped by asha at the epoch-1 rung" and made.values is None
    assert made.attrs["stopped_at_epoch"] == 1 and not made.retry


def test_a_trial_cut_by_the_time_budget_fails_timed_out_and_is_retried():
    made = outcome(result(epoch=2))
    assert (made.state, made.status) == (TrialState.FAIL, "timed_out")
    assert "after epoch 2" in made.reason and made.attrs["stopped_at_epoch"] == 2
    assert made.retry
    assert not outcome(result(epoch=2), baseline=True).retry, "a rerun trains a baseline anyway"


def test_a_failed_or_dead_trial_fails_with_its_reason_and_no_retry():
    made = outcome(result(failed="CUDA out of memory", trial_done=True))
    assert (made.state, made.status, made.reason) == (TrialState.FAIL, "failed",
                                                     "CUDA out of memory")
    assert made.constraints is None and not made.retry
    dead = outcome(result(), error=True)
    assert dead.state == TrialState.FAIL and "worker died" in dead.reason


def test_an_infeasible_trial_is_pruned_with_its_constraint_values():
    made = outcome({"params": 20000, "infeasible": "params 20000 > max 10000"})
    assert (made.state, made.status) == (TrialState.PRUNED, "infeasible")
    assert made.reason == "constraint: params 20000 > max 10000"
    assert made.constraints == {"params_max": 1.0} and not made.retry


def test_constraints_are_told_only_when_every_constrained_metric_was_reported():
    assert outcome({"epoch": 1}).constraints is None


def test_device_warnings_follow_the_trials_own():
    made = outcome(result(warnings=["noisy latency"], trial_done=True),
                   device_warnings=["ran on different devices"])
    assert made.attrs["warnings"] == ["noisy latency", "ran on different devices"]


def test_flattened_ray_results_are_read_as_nested():
    flat = {"latency/p50_ms": 1.5, "latency/passes": 3, "epoch": 2}
    assert nested(flat, "latency") == {"p50_ms": 1.5, "passes": 3}
    assert nested({"latency": {"p50_ms": 1.5}}, "latency") == {"p50_ms": 1.5}
    assert nested(flat, "versions") is None
    assert outcome({**flat, "trial_done": True, "val_accuracy": 0.5, "memrw_mib": 1.0,
                    "params": 1}).attrs["latency"] == {"p50_ms": 1.5, "passes": 3}


def test_a_duplicate_ends_as_its_twin_did():
    twin = optuna.trial.create_trial(
        state=TrialState.COMPLETE, values=[0.7, 3.0],
        user_attrs={"val_accuracy": 0.7, "memrw_mib": 3.0, "config_hash": "abc",
                    "status": "complete", "predicted_latency_ms": 1.5,
                    "device_model": "0123abcd"},
        system_attrs={"constraints:params_max": -0.5})
    twin.number = 4
    made = duplicate_outcome(twin)
    assert (made.state, made.status, made.values) == (TrialState.COMPLETE, "duplicate",
                                                      [0.7, 3.0])
    assert made.constraints == {"params_max": -0.5}
    # A reused prediction keeps saying which device model made it.
    assert made.attrs == {"val_accuracy": 0.7, "memrw_mib": 3.0, "duplicate_of": 4,
                          "predicted_latency_ms": 1.5, "device_model": "0123abcd"}
    pruned = optuna.trial.create_trial(state=TrialState.PRUNED,
                                       user_attrs={"reason": "stopped by asha"})
    pruned.number = 5
    made = duplicate_outcome(pruned)
    assert (made.state, made.reason) == (TrialState.PRUNED,
                                         "same config as trial 5: stopped by asha")
