"""The model's view: the whole study up to ``recent`` trials, then the latest ``recent``
and the front of those before them, kept from the storage as trials leave the window; TPE
reads the view."""

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from threshsearch.search.samplers.history import BoundedHistory

X = optuna.distributions.FloatDistribution(0, 1)


def _study(values, sampler=None):
    study = optuna.create_study(directions=["maximize", "minimize"],
                                sampler=sampler or optuna.samplers.RandomSampler(seed=0))
    for number, pair in enumerate(values):
        study.add_trial(optuna.trial.create_trial(params={"x": number / len(values)},
                                                  distributions={"x": X}, values=pair))
    return study


def _front(values):
    """The numbers of the non-dominated pairs (maximise the first, minimise the second)."""
    points = [(-a, b) for a, b in values]
    return {i for i, p in enumerate(points)
            if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)}


def _seen(history, study):
    return [t.number for t in history.view(study)._get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))]


def test_a_small_study_is_seen_whole():
    study = _study(np.random.default_rng(0).random((8, 2)).tolist())
    assert _seen(BoundedHistory(optuna.samplers.RandomSampler(), recent=8), study) == \
        list(range(8))


@pytest.mark.parametrize("seed", range(5))
def test_a_large_study_is_seen_as_its_latest_trials_and_the_front_before_them(seed):
    values = np.random.default_rng(seed).random((60, 2)).tolist()
    study = _study(values)  # written before the wrapper saw it (another driver, a resume)
    history = BoundedHistory(optuna.samplers.RandomSampler(), recent=20)
    assert _seen(history, study) == sorted(_front(values[:40]) | set(range(40, 60)))
    # Trials told later, by this driver or another, move the window and the front on.
    more = np.random.default_rng(seed + 100).random((30, 2)).tolist()
    for pair in more:
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, pair)
    everything = values + more
    assert _seen(history, study) == sorted(_front(everything[:70]) | set(range(70, 90)))


def test_the_front_is_found_among_trials_of_other_states():
    values = np.random.default_rng(7).random((60, 2)).tolist()
    study = optuna.create_study(directions=["maximize", "minimize"])
    for number, pair in enumerate(values):  # every third trial stopped, every fifth failed
        state = (TrialState.PRUNED if number % 3 == 1 else
                 TrialState.FAIL if number % 5 == 4 else TrialState.COMPLETE)
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": X}, state=state,
            values=pair if state == TrialState.COMPLETE else None))
    complete = [i for i, t in enumerate(study.trials) if t.state == TrialState.COMPLETE]
    for states in ((TrialState.COMPLETE, TrialState.PRUNED), (TrialState.COMPLETE,)):
        history = BoundedHistory(optuna.samplers.RandomSampler(), recent=20)
        window = study._get_trials(deepcopy=False, states=states)[-20:]
        before = [n for n in complete if n < window[0].number]
        front = sorted(before[i] for i in _front([values[n] for n in before]))
        seen = [t.number for t in history.view(study)._get_trials(deepcopy=False,
                                                                  states=states)]
        assert seen == front + [t.number for t in window]


def test_tpe_draws_from_the_view(monkeypatch):
    from optuna.samplers._tpe import sampler as tpe_module

    sizes = []
    split = tpe_module._split_trials

    def spy(study, trials, *args, **kwargs):
        sizes.append(len(trials))
        return split(study, trials, *args, **kwargs)

    monkeypatch.setattr(tpe_module, "_split_trials", spy)
    values = np.random.default_rng(0).random((50, 2)).tolist()
    history = BoundedHistory(optuna.samplers.TPESampler(n_startup_trials=0, seed=0,
                                                        constant_liar=False),
                             recent=10)
    study = _study(values, history)
    trial = study.ask()
    assert 0 <= trial.suggest_float("x", 0, 1) <= 1
    assert sizes and max(sizes) == 10 + len(_front(values[:40]))


def test_a_list_read_again_after_the_front_moved_on_is_arranged_again():
    from threshsearch.search.samplers.view import read_once

    # Trials 0-29 complete (15 dominating every other), 30-59 stopped: the complete ones'
    # window starts at 10, every trial's at 40, so reading every trial weighs 10-39 and
    # trial 15 empties the front kept from before 10.
    study = optuna.create_study(directions=["maximize", "minimize"])
    rng = np.random.default_rng(3)
    for number in range(60):
        complete = number < 30
        pair = [1.0, 0.0] if number == 15 else rng.uniform(0.1, 0.9, 2).tolist()
        study.add_trial(optuna.trial.create_trial(
            params={"x": 0.5}, distributions={"x": X},
            state=TrialState.COMPLETE if complete else TrialState.PRUNED,
            values=pair if complete else None))
    history = BoundedHistory(optuna.samplers.RandomSampler(), recent=20)
    held = history.view(read_once(study))
    complete = (TrialState.COMPLETE,)
    first = [t.number for t in held._get_trials(deepcopy=False, states=complete)]
    held._get_trials(deepcopy=False)
    again = [t.number for t in held._get_trials(deepcopy=False, states=complete)]
    assert first[:len(first) - 20] and min(first) < 10, "a front kept from before 10"
    assert again == list(range(10, 30)), "trial 15 dominates it now"
