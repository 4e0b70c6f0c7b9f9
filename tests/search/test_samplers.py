"""study.sampler: names, settings, validation and auto's choice."""

import inspect

import optuna
import pytest

from threshsearch.config import ConfigError
from threshsearch.search.samplers import (
    NSGA2_FROM_TRIALS,
    OPTUNA_SAMPLERS,
    SETTINGS,
    AutoSampler,
    choose_sampler,
    parse_sampler,
)


def parse(data):
    try:
        return parse_sampler(data), []
    except ConfigError as error:
        return None, error.problems


def test_auto_takes_tpe_for_small_budgets_and_nsga2_with_a_fitted_population_for_large():
    small = choose_sampler(AutoSampler(), n_objectives=3, n_trials=16, concurrency=2)
    assert small.kind == "tpe" and small.settings["n_startup_trials"] == 3
    assert small.settings["constant_liar"] is True and "auto" in small.reason
    assert isinstance(small.build(0).model.model.model, optuna.samplers.TPESampler)
    large = choose_sampler(AutoSampler(), 2, NSGA2_FROM_TRIALS, 1)
    assert large.kind == "nsga2" and large.settings["population_size"] == 25
    assert isinstance(large.build(0).model, optuna.samplers.NSGAIISampler)
    assert choose_sampler(AutoSampler(), 2, 5000, 1).settings["population_size"] == 50
    single = choose_sampler(AutoSampler(), 1, 5000, 1)
    assert single.kind == "tpe" and single.settings["constant_liar"] is False


def test_named_samplers_keep_their_settings():
    spec, problems = parse({"kind": "nsga2", "population_size": 12, "crossover_prob": 0.8})
    assert not problems
    choice = choose_sampler(spec, 2, 16, 1)
    assert choice.kind == "nsga2" and choice.settings["population_size"] == 12
    assert choice.settings["crossover_prob"] == 0.8 and choice.reason == "named in the space"
    spec, problems = parse("gp")
    assert not problems
    assert isinstance(choose_sampler(spec, 2, 40, 1).build(0).model.model.model,
                      optuna.samplers.GPSampler)
    assert isinstance(choose_sampler(parse("random")[0], 2, 40, 1).build(0).model,
                      optuna.samplers.RandomSampler)


@pytest.mark.parametrize(("data", "expected"), [
    ("cmaes", "study.sampler: 'cmaes' is invalid; expected one of auto, tpe, nsga2, gp"),
    ({"kind": "cmaes"}, "study.sampler.kind: 'cmaes' is invalid"),
    ({"kind": "tpe", "population_size": 10},
     "study.sampler.population_size: not a setting of the tpe sampler"),
    ({"kind": "nsga2", "populaton_size": 10}, "did you mean 'population_size'?"),
    ({"kind": "random", "seed": 1}, "its settings: none"),
    ({"kind": "auto", "n_startup_trials": 3}, "auto takes no settings"),
    ({"kind": "nsga2", "population_size": 1}, "study.sampler.population_size: 1 is invalid"),
    ({"kind": "tpe", "multivariate": "yes"}, "study.sampler.multivariate: 'yes' is invalid"),
    (7, "study.sampler: 7 is invalid"),
])
def test_bad_sampler_settings_name_the_key_and_the_valid_values(data, expected):
    _, problems = parse(data)
    assert any(expected in problem for problem in problems), problems


def test_every_setting_is_a_parameter_of_its_optuna_sampler():
    for kind, settings in SETTINGS.items():
        if kind == "auto":
            continue
        parameters = inspect.signature(OPTUNA_SAMPLERS[kind]).parameters
        assert set(settings.model_fields) - {"kind"} <= set(parameters), kind


def test_auto_keeps_tpe_at_every_budget_under_early_stopping():
    for rule in ("pareto", "asha"):
        choice = choose_sampler(AutoSampler(), 2, 5000, 2, early_stopping=rule)
        assert choice.kind == "tpe" and rule in choice.reason
    assert choose_sampler(AutoSampler(), 2, 5000, 2, early_stopping="none").kind == "nsga2"
    named = choose_sampler(parse("nsga2")[0], 2, 5000, 2, early_stopping="pareto")
    assert named.kind == "nsga2", "a sampler named in the space is kept"


def _proposals_after(pruned_at: list[float], sampler: optuna.samplers.BaseSampler) -> list[float]:
    """Where ``sampler`` proposes x next in a two-objective study of 3 completed trials and
    the stopped (PRUNED, as early stopping leaves them) trials at ``pruned_at``."""
    x = optuna.distributions.FloatDistribution(0.0, 1.0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for value in (0.45, 0.5, 0.55):
        study.add_trial(optuna.trial.create_trial(params={"x": value}, distributions={"x": x},
                                                  values=[value, 1.0 - value]))
    for value in pruned_at:
        study.add_trial(optuna.trial.create_trial(params={"x": value}, distributions={"x": x},
                                                  state=optuna.trial.TrialState.PRUNED))
    proposals = []
    for _ in range(8):
        trial = study.ask({"x": x})
        proposals.append(trial.params["x"])
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return proposals


def test_the_sampler_advances_under_early_stopping():
    """A large study where nearly every trial is stopped early: auto's sampler proposes from
    what the stopped trials showed (NSGA-II, which counts only completed trials, would draw
    the same random points whichever networks were stopped)."""
    choice = choose_sampler(AutoSampler(), 2, 1000, 1, early_stopping="pareto")
    low = [i / 100 for i in range(0, 30)]  # stopped networks all at small x ...
    high = [1 - v for v in low]  # ... or all at large x
    after_low = _proposals_after(low, choice.build(0))
    after_high = _proposals_after(high, choice.build(0))
    assert after_low != after_high
    assert sum(after_low) / 8 > sum(after_high) / 8, "away from where trials were stopped"


def test_random_sampling_is_left_as_it_is_and_the_models_are_wrapped():
    from threshsearch.search.samplers.fresh import FreshDraws
    from threshsearch.search.samplers.history import BoundedHistory
    from threshsearch.search.samplers.ranked import RankedStops
    from threshsearch.search.samplers.trialseeded import TrialSeeded

    def identity(params, fill):
        return str(params), {}

    def build(kind):
        seeded = choose_sampler(parse(kind)[0], 2, 40, 1).build(0, ("lr",), identity)
        assert isinstance(seeded, TrialSeeded)
        return seeded.model

    assert isinstance(build("random"), optuna.samplers.RandomSampler)
    assert isinstance(build("nsga2"), optuna.samplers.NSGAIISampler), "its generations whole"
    unseeded = choose_sampler(parse("tpe")[0], 2, 40, 1).build(None, ("lr",), identity)
    assert isinstance(unseeded, FreshDraws), "no seed: nothing to seed a trial's draw by"
    tpe = build("tpe")
    assert isinstance(tpe, FreshDraws) and tpe.keep == {"lr"}
    assert isinstance(tpe.model, BoundedHistory) and isinstance(tpe.model.model, RankedStops)
    assert isinstance(tpe.model.model.model, optuna.samplers.TPESampler)
