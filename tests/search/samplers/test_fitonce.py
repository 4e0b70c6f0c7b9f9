"""TPE fitted once per draw proposes what Optuna's TPE proposes, ask for ask, for the same
seed, and fits once per read of the study instead of once per ask."""

import optuna
import pytest
from optuna.trial import TrialState

from threshsearch.search.samplers import SamplerChoice, fresh
from threshsearch.search.samplers.fitonce import FittedOnceTPE
from threshsearch.search.samplers.view import read_once

SPACE = {"a": optuna.distributions.IntDistribution(0, 100),
         "b": optuna.distributions.FloatDistribution(0.0, 1.0),
         "c": optuna.distributions.CategoricalDistribution(["x", "y", "z"])}
EXTRA = optuna.distributions.IntDistribution(1, 4, step=1)
ASKS, DRAWS = 5, 4


def _values(params, directions):
    a, b, c = params["a"], params["b"], params["c"]
    return [(a - 40) ** 2 / 100 + b, (b - 0.3) ** 2 + (c == "y"), a / 50 - b][
        :len(directions)]


def _filled(sampler, directions):
    """A study of 30 settled trials (every third one pruned, with an intermediate value
    where it has one objective) and two running ones, sampling with ``sampler``."""
    study = optuna.create_study(directions=directions, sampler=sampler)
    for number in range(32):
        trial = study.ask()
        params = {"a": trial.suggest_int("a", 0, 100), "b": trial.suggest_float("b", 0.0, 1.0),
                  "c": trial.suggest_categorical("c", ["x", "y", "z"])}
        if number >= 30:
            continue  # left running
        if number % 3 == 0:
            if len(directions) == 1:
                trial.report(_values(params, directions)[0], step=1)
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, _values(params, directions))
    return study


def _counting(sampler):
    """``sampler`` with a count of its fits (two estimators a fit) in ``sampler.fits``."""
    build = sampler._build_parzen_estimator
    sampler.fits = 0

    def counted(*args, **kwargs):
        sampler.fits += 0.5
        return build(*args, **kwargs)

    sampler._build_parzen_estimator = counted
    return sampler


def _draws(sampler, directions, once):
    """DRAWS draws of ASKS asks each (and a single draw of another parameter per ask), read
    once per draw when ``once``; after each, its first proposal joins the study as a
    complete trial (so that every draw fits new data). What they proposed, and the fits
    they made."""
    study = _filled(_counting(sampler), directions)
    fits, proposals = sampler.fits, []
    for _ in range(DRAWS):
        trial = study.ask()
        frozen = study._storage.get_trial(trial._trial_id)
        seen = read_once(study) if once else study
        for _ in range(ASKS):
            proposals.append(sampler.sample_relative(seen, frozen, SPACE))
            proposals.append(sampler.sample_independent(seen, frozen, "extra", EXTRA))
        study.tell(trial, state=TrialState.FAIL)
        first = proposals[-2 * ASKS]
        study.add_trial(optuna.trial.create_trial(
            params=first, distributions=SPACE, values=_values(first, directions)))
    return proposals, sampler.fits - fits


@pytest.mark.parametrize("directions", [["minimize"], ["minimize", "maximize"],
                                        ["minimize", "minimize", "maximize"]])
@pytest.mark.parametrize("liar", [True, False])
def test_proposals_are_optunas_ask_for_ask(directions, liar):
    settings = {"seed": 7, "multivariate": True, "constant_liar": liar,
                "n_startup_trials": 5}
    theirs, _ = _draws(optuna.samplers.TPESampler(**settings), directions, once=True)
    mine, fits = _draws(FittedOnceTPE(**settings), directions, once=True)
    assert mine == theirs
    assert fits == DRAWS * 2  # each draw: its joint space and "extra", once each
    assert len({str(p) for p in mine[::2]}) > DRAWS  # the asks of a draw differ


def test_without_a_single_read_every_ask_fits():
    sampler = FittedOnceTPE(seed=1, multivariate=True, constant_liar=True, n_startup_trials=5)
    _, fits = _draws(sampler, ["minimize", "maximize"], once=False)
    assert fits == DRAWS * ASKS * 2


def test_the_same_trial_drawing_over_a_new_read_is_fitted_again():
    """Another trial ended between two reads: the second fit holds it; a fit never outlives
    its read."""
    sampler = FittedOnceTPE(seed=3, multivariate=True, constant_liar=False,
                            n_startup_trials=5)
    study = _filled(sampler, ["minimize"])
    other, drawing = study.ask(), study.ask()
    frozen = study._storage.get_trial(drawing._trial_id)
    seen = []
    build = sampler._build_parzen_estimator
    sampler._build_parzen_estimator = lambda study, space, trials, handle_below: (
        seen.append({t.number for t in trials}) or build(study, space, trials, handle_below))
    sampler.sample_relative(read_once(study), frozen, SPACE)
    assert not any(other.number in numbers for numbers in seen)
    study.tell(other, [0.0])
    sampler.sample_relative(read_once(study), frozen, SPACE)
    assert len(seen) == 4 and any(other.number in numbers for numbers in seen[2:])


def test_the_searchs_sampler_fits_once_a_draw():
    """Through the wrappers the search builds (fresh draws over a bounded, ranked view), a
    draw that asks TPE again and again fits it once."""
    choice = SamplerChoice("tpe", {"multivariate": True, "constant_liar": True,
                                   "n_startup_trials": 5})
    sampler = choice.build(seed=0, identity=lambda params, fill: ("one network", {}))
    model = sampler.model.model.model.model
    assert isinstance(model, FittedOnceTPE)
    _counting(model)
    study = _filled(sampler, ["minimize", "maximize"])
    study.add_trial(optuna.trial.create_trial(  # the only network, tried: every ask repeats
        params={"a": 1, "b": 0.5, "c": "x"}, distributions=SPACE, values=[1.0, 1.0],
        user_attrs={"config_hash": "one network"}))
    fits, asks = model.fits, []
    ask = model.sample_relative
    model.sample_relative = lambda *args: asks.append(1) or ask(*args)
    trial = study.ask()
    trial.suggest_int("a", 0, 100)
    assert len(asks) == fresh.DRAWS and model.fits - fits == 1
