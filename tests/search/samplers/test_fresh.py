"""The model is asked again while its draw repeats a trial's parameters: the first untried
draw is kept, the last one when all repeat; start-up draws and the trials read as they
come."""

import optuna
import pytest

from threshsearch.search.samplers.fresh import DRAWS, FreshDraws

SPACE = {"a": optuna.distributions.IntDistribution(0, 100),
         "b": optuna.distributions.CategoricalDistribution(["x", "y"])}


class Scripted(optuna.samplers.BaseSampler):
    """A model whose relative draws are the given ones, in order (then the last again)."""

    def __init__(self, draws):
        self.draws, self.asked = list(draws), 0

    def infer_relative_search_space(self, study, trial):
        return dict(SPACE)

    def sample_relative(self, study, trial, search_space):
        self.asked += 1
        return dict(self.draws.pop(0) if len(self.draws) > 1 else self.draws[0])

    def sample_independent(self, study, trial, param_name, param_distribution):
        return {"a": 0, "b": "x"}[param_name]


def _ask(study):
    trial = study.ask()
    params = {"a": trial.suggest_int("a", 0, 100),
              "b": trial.suggest_categorical("b", ["x", "y"])}
    study.tell(trial, 1.0)
    return params


def _study(model):
    study = optuna.create_study(sampler=FreshDraws(model))
    for a in (1, 2):  # two trials tried before the wrapper reads the study
        study.enqueue_trial({"a": a, "b": "x"})
        _ask(study)
    return study


def test_the_first_untried_draw_is_kept():
    model = Scripted([{"a": 1, "b": "x"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}])
    study = _study(model)
    model.asked = 0
    assert _ask(study) == {"a": 2, "b": "y"}
    assert model.asked == 3


@pytest.mark.parametrize("keep", [(), ("b",)])
def test_when_the_model_stands_still_a_neighbour_of_its_favourite_is_drawn(keep):
    model = Scripted([{"a": 1, "b": "x"}])
    study = _study(model)
    study.sampler.keep = frozenset(keep)
    model.asked = 0
    drawn = _ask(study)
    assert model.asked == DRAWS
    changed = [name for name in ("a", "b") if drawn[name] != {"a": 1, "b": "x"}[name]]
    assert len(changed) == 1 and not set(changed) & set(keep)


def _tiny(tried):
    """A space of four networks, ``tried`` of them tried, a model proposing (0, x); forty
    draws of each kind, so that the draws at random miss the last network by chance about
    once in 10^5 seeds (this one's never)."""
    model = Scripted([{"a": 0, "b": "x"}])
    model.infer_relative_search_space = lambda study, trial: dict(TINY)
    study = optuna.create_study(sampler=FreshDraws(model, seed=0, draws=40))
    for a, b in tried:
        study.enqueue_trial({"a": a, "b": b})
        trial = study.ask()
        trial.suggest_int("a", 0, 1)
        trial.suggest_categorical("b", ["x", "y"])
        study.tell(trial, 1.0)
    trial = study.ask()
    return trial.suggest_int("a", 0, 1), trial.suggest_categorical("b", ["x", "y"])


TINY = {"a": optuna.distributions.IntDistribution(0, 1),
        "b": optuna.distributions.CategoricalDistribution(["x", "y"])}


def test_when_the_neighbours_are_tried_too_a_draw_at_random_finds_the_rest():
    assert _tiny([(0, "x"), (1, "x"), (0, "y")]) == (1, "y")


def test_when_every_network_is_tried_the_models_favourite_is_let_through():
    assert _tiny([(0, "x"), (1, "x"), (0, "y"), (1, "y")]) == (0, "x")


def test_an_untried_draw_is_asked_once():
    model = Scripted([{"a": 5, "b": "y"}])
    study = _study(model)
    model.asked = 0
    assert _ask(study) == {"a": 5, "b": "y"}
    assert model.asked == 1


@pytest.mark.parametrize("later", [3, 4])
def test_trials_drawn_after_the_first_read_count_as_tried(later):
    model = Scripted([{"a": 7, "b": "x"}])
    study = _study(model)
    assert _ask(study) == {"a": 7, "b": "x"}  # read the study, then drew a=7
    for a in range(3, later + 1):  # told by another hand after the wrapper's read
        study.enqueue_trial({"a": a, "b": "y"})
        _ask(study)
    model.draws = [{"a": 7, "b": "x"}, {"a": later, "b": "y"}, {"a": 50, "b": "x"}]
    model.asked = 0
    assert _ask(study) == {"a": 50, "b": "x"}
    assert model.asked == 3


def test_start_up_draws_are_the_models_own():
    class StartingUp(Scripted):
        def sample_relative(self, study, trial, search_space):
            self.asked += 1
            return {}

    model = StartingUp([{}])
    study = optuna.create_study(sampler=FreshDraws(model))
    _ask(study)
    _ask(study)
    assert model.asked == 2


def test_draws_of_one_network_count_as_tried():
    # The identity looks at a only: b is a parameter the network does not use.
    model = Scripted([{"a": 1, "b": "y"}, {"a": 2, "b": "y"}, {"a": 3, "b": "y"}])
    study = optuna.create_study(sampler=FreshDraws(model, identity=lambda p: p.get("a")))
    for a in (1, 2):
        study.enqueue_trial({"a": a, "b": "x"})
        _ask(study)
    model.asked = 0
    assert _ask(study) == {"a": 3, "b": "y"}
    assert model.asked == 3
