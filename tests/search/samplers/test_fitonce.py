"""TPE fitted once per draw proposes what Optuna's TPE proposes, ask for ask, for the same
seed, and fits once per read of the study instead of once per ask."""

import optuna
import pytest
from optuna.trial import TrialState

from threshsearch.search.samplers.fitonce import FittedOnceTPE
from threshsearch.search.samplers.view import read_once

SPACE = {"a": optuna.distributions.IntDistribution(0, 100),
         "b": optuna.distributions.FloatDistribution(0.0, 1.0),
         "c": optuna.distributions.CategoricalDistribution(["x", "y", "z"])}
EXTRA = optuna.distributions.IntDistribution(1, 4, step=1)
ASKS = 5


def _filled(sampler, directions, pruned_every=3):
    """A study of 30 settled trials (every third one pruned, with an intermediate value
    where it has one objective; objectives from a fixed rule) and two running ones,
    sampling with ``sampler``."""
    study = optuna.create_study(directions=directions, sampler=sampler)
    for number in range(32):
        trial = study.ask()
        a = trial.suggest_int("a", 0, 100)
        b = trial.suggest_float("b", 0.0, 1.0)
        c = trial.suggest_categorical("c", ["x", "y", "z"])
        if number >= 30:
            continue  # left running
        values = [(a - 40) ** 2 / 100 + b, (b - 0.3) ** 2 + (c == "y"), a / 50 - b][
            :len(directions)]
        if number % pruned_every == 0:
            if len(directions) == 1:
                trial.report(values[0], step=1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, values)
    return study


def _draws(sampler, directions, once):
    """Four draws of ASKS asks each (and a single draw of another parameter per ask), read
    once per draw when ``once``; what they proposed, and the fits they made (a
    ``FittedOnceTPE``'s)."""
    study = _filled(sampler, directions)
    fitted = getattr(sampler, "fitted", 0)
    proposals = []
    for _ in range(4):
        trial = study.ask()
        frozen = study._storage.get_trial(trial._trial_id)
        seen = read_once(study) if once else study
        for _ in range(ASKS):
            proposals.append(sampler.sample_relative(seen, frozen, SPACE))
            proposals.append(sampler.sample_independent(seen, frozen, "extra", EXTRA))
        study.tell(trial, state=TrialState.FAIL)
    return proposals, getattr(sampler, "fitted", 0) - fitted


@pytest.mark.parametrize("directions", [["minimize"], ["minimize", "maximize"],
                                        ["minimize", "minimize", "maximize"]])
@pytest.mark.parametrize("liar", [True, False])
def test_proposals_are_optunas_ask_for_ask(directions, liar):
    settings = {"seed": 7, "multivariate": True, "constant_liar": liar,
                "n_startup_trials": 5}
    theirs, _ = _draws(optuna.samplers.TPESampler(**settings), directions, once=True)
    mine, _ = _draws(FittedOnceTPE(**settings), directions, once=True)
    assert mine == theirs
    assert len({str(p) for p in mine[::2]}) > 1  # the asks of a draw differ


def test_a_draw_read_once_fits_once_per_space():
    sampler = FittedOnceTPE(seed=1, multivariate=True, constant_liar=True, n_startup_trials=5)
    _, fitted = _draws(sampler, ["minimize", "maximize"], once=True)
    assert fitted == 4 * 2  # four draws, each its joint space and "extra"


def test_without_a_single_read_every_ask_fits():
    sampler = FittedOnceTPE(seed=1, multivariate=True, constant_liar=True, n_startup_trials=5)
    _, fitted = _draws(sampler, ["minimize", "maximize"], once=False)
    assert fitted == 4 * ASKS * 2


def test_a_trial_that_ended_since_the_last_read_is_in_the_next_fit():
    """The same trial drawing again over a new read (another trial ended meanwhile) is
    fitted again: a fit never outlives its read."""
    sampler = FittedOnceTPE(seed=3, multivariate=True, constant_liar=False,
                            n_startup_trials=5)
    study = _filled(sampler, ["minimize"])
    other, drawing = study.ask(), study.ask()
    frozen = study._storage.get_trial(drawing._trial_id)
    fitted = sampler.fitted
    sampler.sample_relative(read_once(study), frozen, SPACE)
    assert other.number not in {t.number for t in sampler.fits[0].trials}
    study.tell(other, [0.0])
    sampler.sample_relative(read_once(study), frozen, SPACE)
    assert sampler.fitted - fitted == 2
    assert other.number in {t.number for t in sampler.fits[0].trials}
