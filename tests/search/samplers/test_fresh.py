"""A draw is checked against the study's networks: the model is asked again while it
repeats one (up to a limit), then a neighbour of its favourite is drawn, then a
draw at random; the parameters its network needs besides the draw are handed to the trial;
the study's networks are read as trials record them."""

import optuna
import pytest

from threshsearch.search.samplers.fresh import DRAWS, RANDOM_DRAWS, FreshDraws
from threshsearch.search.storage import CONFIG_HASH

SPACE = {"a": optuna.distributions.IntDistribution(0, 100),
         "b": optuna.distributions.CategoricalDistribution(["x", "y"])}
C = optuna.distributions.IntDistribution(0, 9)


class Scripted(optuna.samplers.BaseSampler):
    """A model whose joint draws are the given ones, in order (then the last again), and
    whose single draws are 0 (or 'x')."""

    def __init__(self, draws, space=SPACE):
        self.draws, self.space, self.asked = list(draws), space, 0

    def infer_relative_search_space(self, study, trial):
        return dict(self.space)

    def sample_relative(self, study, trial, search_space):
        self.asked += 1
        return dict(self.draws.pop(0) if len(self.draws) > 1 else self.draws[0])

    def sample_independent(self, study, trial, param_name, param_distribution):
        return param_distribution.to_external_repr(0)


def network(params, fill):
    """A stand-in for the space's network hash: a and b, and c when a is even (a
    conditional parameter: drawn by ``fill`` when the draw lacks it)."""
    filled = {}
    if params["a"] % 2 == 0 and "c" not in params:
        filled["c"] = fill("c", C)
    c = {**params, **filled}.get("c") if params["a"] % 2 == 0 else None
    return f"{params['a']}{params['b']}{c}", filled


def _ask(study, tried=None):
    """Ask a trial (with ``tried``'s parameters queued), draw as the space would, record
    its network as the searcher does, and tell it."""
    if tried is not None:
        study.enqueue_trial(tried)
    trial = study.ask()
    params = {"a": trial.suggest_int("a", 0, 100),
              "b": trial.suggest_categorical("b", ["x", "y"])}
    if params["a"] % 2 == 0:
        params["c"] = trial.suggest_int("c", 0, 9)
    trial.set_user_attr(CONFIG_HASH, network(params, None)[0])
    study.tell(trial, 1.0)
    return params


def _study(model, tried=((1, "x"), (3, "x")), **settings):
    study = optuna.create_study(sampler=FreshDraws(model, network, **settings))
    for a, b in tried:  # tried before the wrapper reads the study
        _ask(study, {"a": a, "b": b})
    model.asked = 0
    return study


def test_the_first_untried_draw_is_kept():
    model = Scripted([{"a": 1, "b": "x"}, {"a": 3, "b": "x"}, {"a": 3, "b": "y"}])
    assert _ask(_study(model)) == {"a": 3, "b": "y"}
    assert model.asked == 3


def test_an_untried_draw_is_asked_once():
    model = Scripted([{"a": 5, "b": "y"}])
    assert _ask(_study(model)) == {"a": 5, "b": "y"}
    assert model.asked == 1


def test_a_model_repeating_itself_is_still_asked_up_to_the_limit():
    model = Scripted([{"a": 1, "b": "x"}, {"a": 3, "b": "x"}, {"a": 1, "b": "x"},
                      {"a": 5, "b": "x"}])
    assert _ask(_study(model)) == {"a": 5, "b": "x"}
    assert model.asked == 4


@pytest.mark.parametrize("keep", [(), ("b",)])
def test_then_a_neighbour_of_its_favourite_is_drawn(keep):
    model = Scripted([{"a": 1, "b": "x"}])
    study = _study(model, keep=keep, seed=0)
    for _ in range(5):
        drawn = _ask(study)
        changed = [name for name in ("a", "b") if drawn[name] != {"a": 1, "b": "x"}[name]]
        assert changed and len(changed) == 1 and not set(changed) & set(keep), drawn
    assert model.asked == 5 * DRAWS  # each time: the model's draws, all repeating


def _tiny(tried, draws=40, random_draws=40):
    """A space of four networks, ``tried`` of them tried, a model proposing (1, x); forty
    draws of each kind, so that the draws at random miss the last network by chance about
    once in 10^5 seeds (this one's never)."""
    space = {"a": optuna.distributions.IntDistribution(1, 3, step=2),
             "b": optuna.distributions.CategoricalDistribution(["x", "y"])}
    model = Scripted([{"a": 1, "b": "x"}], space)
    study = optuna.create_study(sampler=FreshDraws(model, network, seed=0, draws=draws,
                                                   random_draws=random_draws))
    for a, b in tried:
        study.enqueue_trial({"a": a, "b": b})
        trial = study.ask()
        trial.set_user_attr(CONFIG_HASH, network({"a": a, "b": b}, None)[0])
        study.tell(trial, 1.0)
    trial = study.ask()
    return trial.suggest_int("a", 1, 3, step=2), trial.suggest_categorical("b", ["x", "y"])


def test_when_the_neighbours_are_tried_too_a_draw_at_random_finds_the_rest():
    assert _tiny([(1, "x"), (3, "x"), (1, "y")]) == (3, "y")


def test_the_draws_at_random_outnumber_the_models_where_the_space_is_nearly_spent():
    # One model draw and one neighbour; the draws at random, cheap, find the last network.
    assert _tiny([(1, "x"), (3, "x"), (1, "y")], draws=1, random_draws=64) == (3, "y")
    assert _tiny([(1, "x"), (3, "x"), (1, "y")], draws=1, random_draws=0) == (1, "x")
    assert FreshDraws(Scripted([{}]), network).random_draws == RANDOM_DRAWS > 4 * DRAWS


def test_when_every_network_is_tried_the_models_favourite_is_let_through():
    assert _tiny([(1, "x"), (3, "x"), (1, "y"), (3, "y")]) == (1, "x")


def test_a_conditional_parameter_is_drawn_with_the_network_and_handed_to_the_trial():
    # (2, x) with c = 0 (the model's single draw) is tried; so is every neighbour but c.
    model = Scripted([{"a": 2, "b": "x"}])
    study = _study(model, tried=((2, "x"),))
    assert _ask(study) != {"a": 2, "b": "x", "c": 0}


def test_the_conditional_value_the_network_was_checked_with_is_the_trials():
    class Counting(Scripted):
        """Single draws that differ at each call: 0, 1, 2, ..."""

        def sample_independent(self, study, trial, param_name, param_distribution):
            self.singles = getattr(self, "singles", -1) + 1
            return self.singles

    seen = []

    def noting(params, fill):
        found = network(params, fill)
        seen.append(found[1])
        return found

    model = Counting([{"a": 4, "b": "y"}])
    study = optuna.create_study(sampler=FreshDraws(model, noting))
    drawn = _ask(study)
    assert seen == [{"c": 0}] and drawn == {"a": 4, "b": "y", "c": 0}, \
        "the trial's c is the one drawn for the check, not a second draw (1)"


def test_trials_recorded_after_the_first_read_count_as_tried():
    model = Scripted([{"a": 7, "b": "x"}])
    study = _study(model)
    assert _ask(study) == {"a": 7, "b": "x"}  # read the study while this one drew
    _ask(study, {"a": 9, "b": "y"})  # another hand's trial, after the wrapper's read
    model.draws = [{"a": 7, "b": "x"}, {"a": 9, "b": "y"}, {"a": 51, "b": "x"}]
    model.asked = 0
    assert _ask(study) == {"a": 51, "b": "x"}
    assert model.asked == 3


def test_start_up_draws_are_the_models_own():
    model = Scripted([{}])
    study = optuna.create_study(sampler=FreshDraws(model, network))
    _ask(study)
    _ask(study)
    assert model.asked == 2


def test_the_draws_of_a_seeded_study_repeat():
    def draws():
        study = _study(Scripted([{"a": 1, "b": "x"}]), seed=3)
        return [_ask(study) for _ in range(6)]

    assert draws() == draws()


def test_a_draw_that_builds_no_network_is_not_kept():
    def fussy(params, fill):
        return (None, {}) if params["a"] == 5 else network(params, fill)

    model = Scripted([{"a": 5, "b": "x"}, {"a": 11, "b": "x"}])
    study = optuna.create_study(sampler=FreshDraws(model, fussy))
    assert _ask(study) == {"a": 11, "b": "x"}


class ReadingScripted(Scripted):
    """A scripted model that reads the study's trials at each ask, past Optuna's per-trial
    cache, as TPE with the constant liar does."""

    def sample_relative(self, study, trial, search_space):
        study._get_trials(deepcopy=False, use_cache=False)
        return super().sample_relative(study, trial, search_space)


def test_a_draw_that_asks_its_model_again_reads_the_storage_once():
    repeating = ReadingScripted([{"a": 1, "b": "x"}])
    once = ReadingScripted([{"a": 5, "b": "y"}])
    reads = {}
    for name, model in (("repeating", repeating), ("once", once)):
        study = _study(model)
        get_all = study._storage.get_all_trials
        calls = []
        study._storage.get_all_trials = lambda *a, _calls=calls, _get=get_all, **k: (
            _calls.append(1) or _get(*a, **k))
        _ask(study)
        reads[name] = len(calls)
    assert repeating.asked == DRAWS
    assert reads["repeating"] == reads["once"]
