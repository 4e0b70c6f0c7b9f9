"""The Pareto successive-halving scheduler: rungs, decisions, and rungs rebuilt on resume."""

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from threshsearch.search.evidence import LEARNING_CURVE, objective_vector, rung_evidence
from threshsearch.search.schedulers import make_early_stopper, ranked_objectives
from threshsearch.search.schedulers.pareto import ParetoSuccessiveHalving, rung_milestones
from threshsearch.search.space import SearchSpace
from threshsearch.search.storage import STATUS

METRICS = ["val_accuracy", "memrw_mib"]
DIRECTIONS = ["maximize", "minimize"]
CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def scheduler(evidence=()) -> ParetoSuccessiveHalving:
    return ParetoSuccessiveHalving(METRICS, DIRECTIONS, max_epochs=8, grace_epochs=1,
                                   reduction_factor=2, evidence=evidence)


def vector(accuracy: float, memrw: float):
    return objective_vector({"val_accuracy": accuracy, "memrw_mib": memrw}, METRICS,
                            DIRECTIONS)


def test_rungs_sit_at_grace_times_powers_of_eta_below_the_last_epoch():
    assert rung_milestones(1, 2, 8) == [1, 2, 4]
    assert rung_milestones(2, 2, 6) == [2, 4]
    assert rung_milestones(5, 3, 30) == [5, 15]
    assert rung_milestones(3, 2, 4) == [3]


def test_decisions_keep_the_cheap_network_and_stop_the_dominated_one():
    sched = scheduler()
    assert sched.decide("a", 1, vector(0.90, 4.0)) == CONTINUE
    assert sched.decide("b", 1, vector(0.91, 3.5)) == CONTINUE  # dominates a
    assert sched.decide("cheap", 1, vector(0.30, 1.0)) == CONTINUE  # nothing beats its cost
    assert sched.decide("d", 1, vector(0.50, 3.8)) == STOP  # dominated by b
    assert "epoch-1 rung" in sched.stop_reasons["d"] and "front 2" in sched.stop_reasons["d"]
    # Not a rung, a second report at a rung, or a report without the objectives: no decision.
    assert sched.decide("d", 3, vector(0.1, 9.0)) == CONTINUE
    assert sched.decide("a", 1, vector(0.0, 9.0)) == CONTINUE
    assert sched.decide("e", 1, None) == CONTINUE
    assert len(sched.rungs[1]) == 4


def test_accuracy_alone_would_have_cut_the_cheap_network():
    asha = ParetoSuccessiveHalving(["val_accuracy"], ["maximize"], 8, 1, 2)
    asha.decide("a", 1, (-0.90,))
    asha.decide("b", 1, (-0.91,))
    assert asha.decide("cheap", 1, (-0.30,)) == STOP


def _trial(number: int, memrw: float, curve: list[dict], state=TrialState.COMPLETE):
    trial = optuna.trial.create_trial(
        state=state, values=[curve[-1]["val_accuracy"], memrw]
        if state == TrialState.COMPLETE else None,
        user_attrs={"memrw_mib": memrw, LEARNING_CURVE: curve, STATUS: state.name.lower()},
    )
    trial.number = number
    return trial


def test_a_resumed_scheduler_decides_on_the_same_evidence():
    # What four trials reported per epoch before the driver died...
    histories = {
        0: (4.0, [0.5, 0.7, 0.8, 0.85, 0.9, 0.9, 0.91, 0.92]),
        1: (1.0, [0.2, 0.4, 0.6, 0.7, 0.8, 0.8, 0.85, 0.9]),
        2: (4.5, [0.3, 0.5]),
        3: (3.0, [0.6, 0.65, 0.7]),
    }
    trials = []
    live = scheduler()
    for number, (memrw, accuracies) in histories.items():
        curve = [{"epoch": epoch, "val_accuracy": accuracy}
                 for epoch, accuracy in enumerate(accuracies, start=1)]
        for entry in curve:
            live.decide(f"trial-{number}", entry["epoch"],
                        vector(entry["val_accuracy"], memrw))
        trials.append(_trial(number, memrw, curve, TrialState.COMPLETE if len(curve) == 8
                             else TrialState.PRUNED))
    # ...are what the rerun's scheduler starts from, so its next decision is the same.
    evidence = rung_evidence(trials, METRICS, DIRECTIONS, rung_milestones(1, 2, 8))
    resumed = scheduler(evidence)
    assert resumed.rungs == live.rungs
    for epoch, fronts in live.fronts.items():
        def kept(rung):
            return sorted(zip(map(tuple, rung.points.tolist()), rung.fronts.tolist(),
                              strict=True))
        assert kept(resumed.fronts[epoch]) == kept(fronts)
    for index, probe in enumerate([vector(0.55, 4.2), vector(0.1, 0.5), vector(0.45, 2.0)]):
        assert resumed.decide(f"new-{index}", 1, probe) == live.decide(f"new-{index}", 1, probe)


def test_a_retried_trial_is_not_counted_twice():
    curve = [{"epoch": 1, "val_accuracy": 0.5}]
    dead = optuna.trial.create_trial(state=TrialState.FAIL,
                                     user_attrs={"memrw_mib": 1.0, LEARNING_CURVE: curve})
    retry = optuna.trial.create_trial(
        state=TrialState.PRUNED, user_attrs={"memrw_mib": 1.0, LEARNING_CURVE: curve},
        system_attrs={"failed_trial": 0, "retry_history": [0]})
    dead.number, retry.number = 0, 1
    records = rung_evidence([dead, retry], METRICS, DIRECTIONS, [1])
    assert [record.key for record in records] == ["trial-1"]


@pytest.mark.parametrize(("kind", "ranked"), [
    ("pareto", (["val_accuracy", "memrw_mib"], ["maximize", "minimize"])),
    ("asha", (["val_accuracy"], ["maximize"])),
])
def test_the_kind_chooses_what_is_ranked(kind, ranked):
    space = SearchSpace.from_dict({
        "objectives": [{"metric": "val_accuracy"}, {"metric": "memrw_mib"}],
        "data": {"dataset": "synthetic"}, "train": {"recipe": "quick", "epochs": 4},
        "early_stopping": {"kind": kind, "grace_epochs": 1}})
    assert ranked_objectives(space) == ranked
    stopper = make_early_stopper(space, [])
    assert list(stopper.scheduler.rungs) == [1, 2] and stopper.evidence == 0


def test_no_early_stopping_never_stops():
    space = SearchSpace.from_dict({
        "objectives": [{"metric": "val_accuracy"}], "data": {"dataset": "synthetic"},
        "early_stopping": {"kind": "none"}})
    stopper = make_early_stopper(space, [])
    assert not isinstance(stopper.scheduler, ParetoSuccessiveHalving)
    assert stopper.stop_reasons == {}


def test_a_nan_at_a_rung_is_stopped_and_later_decisions_stay_sound():
    sched = scheduler()
    for key, accuracy, memrw in (("a", 0.5, 4.0), ("b", 0.6, 5.0), ("c", 0.7, 6.0)):
        sched.decide(key, 1, vector(accuracy, memrw))
    assert sched.decide("nan", 1, vector(float("nan"), 1.0)) == STOP
    assert "front 2" in sched.stop_reasons["nan"]
    assert sched.decide("d", 1, vector(0.9, 0.5)) == CONTINUE, "beats every finite one"
    assert sched.decide("e", 1, vector(0.1, 9.0)) == STOP
