"""The model's reading of a study under early stopping: repeats left out, the stopped trials
deepest rung first and then by their front at that rung; TPE's good group takes them so."""

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from threshsearch.search.samplers.ranked import RankedStops
from threshsearch.search.storage import DUPLICATE, STATUS, STOPPED_AT

X = optuna.distributions.FloatDistribution(0, 1)
NAMES = ["val_accuracy", "memrw_mib"]


def _add(study, x, state, values=None, **attrs):
    study.add_trial(optuna.trial.create_trial(
        params={"x": x}, distributions={"x": X}, state=state, values=values,
        user_attrs=attrs))


def _stopped(study, x, epoch, accuracy, traffic):
    _add(study, x, TrialState.PRUNED, status="pruned", **{
        STOPPED_AT: epoch, "val_accuracy": accuracy, "memrw_mib": traffic})


def _study(sampler=None):
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(NAMES)
    return study


def _read(ranked, study):
    return [t.number for t in ranked.view(study)._get_trials(
        deepcopy=False, states=(TrialState.PRUNED,))]


def test_stopped_trials_are_read_deepest_first_then_by_front():
    study = _study()
    _stopped(study, 0.0, 1, 0.50, 5.0)  # 0: rung 1, front 1 (dominated by 2)
    _stopped(study, 0.1, 3, 0.40, 9.0)  # 1: rung 3, front 1 (dominated by 3)
    _stopped(study, 0.2, 1, 0.60, 4.0)  # 2: rung 1, front 0
    _stopped(study, 0.3, 3, 0.70, 2.0)  # 3: rung 3, front 0
    _add(study, 0.4, TrialState.PRUNED, status="infeasible")  # 4: no rung reached
    _stopped(study, 0.5, 1, 0.90, 8.0)  # 5: rung 1, front 0 (a trade-off with 2)
    assert _read(RankedStops(optuna.samplers.RandomSampler()), study) == [3, 1, 2, 5, 0, 4]


def test_repeats_are_left_out():
    study = _study()
    _add(study, 0.1, TrialState.COMPLETE, [0.9, 1.0], status="complete")
    _add(study, 0.1, TrialState.COMPLETE, [0.9, 1.0], status=DUPLICATE)
    _stopped(study, 0.2, 1, 0.5, 2.0)
    _add(study, 0.2, TrialState.PRUNED, **{STATUS: DUPLICATE, STOPPED_AT: 1})
    seen = RankedStops(optuna.samplers.RandomSampler()).view(study)._get_trials()
    assert [t.number for t in seen] == [0, 2]


def test_a_stop_with_a_missing_objective_ranks_last_at_its_rung():
    study = _study()
    _add(study, 0.0, TrialState.PRUNED, status="pruned", **{STOPPED_AT: 3})
    _stopped(study, 0.1, 3, 0.1, 99.0)
    _stopped(study, 0.2, 1, 0.9, 1.0)
    assert _read(RankedStops(optuna.samplers.RandomSampler()), study) == [1, 0, 2]


@pytest.mark.parametrize("seed", range(3))
def test_trials_stopped_later_join_their_rungs_fronts(seed):
    rng = np.random.default_rng(seed)
    study = _study()
    ranked = RankedStops(optuna.samplers.RandomSampler())
    stops = []
    for number in range(40):
        stop = (int(rng.choice([1, 3])), float(rng.random()), float(rng.random()))
        stops.append(stop)
        _stopped(study, number / 40, *stop)
        if number % 10 == 9:
            _read(ranked, study)  # the wrapper has read part of the study already

    def front(number):
        epoch, accuracy, traffic = stops[number]
        rivals = [(a, t) for e, a, t in stops if e == epoch]
        rank, left = 0, rivals
        while (accuracy, traffic) in left:
            kept = [p for p in left if not any(
                q[0] >= p[0] and q[1] <= p[1] and q != p for q in left)]
            if (accuracy, traffic) in kept:
                return rank
            left, rank = [p for p in left if p not in kept], rank + 1
        raise AssertionError

    expected = sorted(range(40), key=lambda n: (-stops[n][0], front(n), n))
    assert _read(ranked, study) == expected


def test_tpe_puts_the_deepest_best_stops_in_its_good_group(monkeypatch):
    from optuna.samplers._tpe import sampler as tpe_module

    below = []
    split = tpe_module._split_trials

    def spy(study, trials, *args, **kwargs):
        good, rest = split(study, trials, *args, **kwargs)
        below.append({t.number for t in good})
        return good, rest

    monkeypatch.setattr(tpe_module, "_split_trials", spy)
    study = _study(RankedStops(optuna.samplers.TPESampler(n_startup_trials=0, seed=0,
                                                          constant_liar=False)))
    for number in range(18):  # the oldest stopped at the first rung, the best at the third
        _stopped(study, number / 20, 1 if number < 16 else 3, 0.5, 1.0)
    for number in range(2):
        _add(study, 0.9 + number / 20, TrialState.COMPLETE, [0.9, 1.0], status=DUPLICATE)
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    # A tenth of 18 trials read (the two repeats left out): the two stopped at rung 3.
    assert below and below[-1] == {16, 17}


def test_a_bounded_view_ranks_its_stops_among_every_stop_of_the_study():
    from threshsearch.search.samplers.history import BoundedHistory

    study = _study()
    _stopped(study, 0.0, 1, 0.90, 1.0)  # 0: out of the window, dominates 1, 2 and 3
    _stopped(study, 0.1, 1, 0.50, 5.0)  # 1: out of the window, front 2
    _stopped(study, 0.2, 1, 0.60, 4.0)  # 2: front 1 of the study, 0 of the window
    _stopped(study, 0.3, 1, 0.40, 6.0)  # 3: front 3 of the study, 1 of the window
    _stopped(study, 0.4, 1, 0.30, 0.5)  # 4: front 0 (the cheapest)
    ranked = RankedStops(optuna.samplers.RandomSampler())
    history = BoundedHistory(ranked, recent=3)  # the window: trials 2, 3 and 4
    bounded = history.view(study)
    read = ranked.view(bounded)._get_trials(deepcopy=False)
    assert [t.number for t in read] == [4, 2, 3]  # within the window alone: 2, 4, 3
    assert [int(f) for f in ranked.rungs[1].fronts] == [0, 2, 1, 3, 0]
