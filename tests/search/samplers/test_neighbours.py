"""The draw after a repeat is a neighbour of the repeated network (one parameter drawn
again); after a neighbour that repeats too, a draw at random; the model draws all the
others and hears of every trial."""

import optuna

from threshsearch.search.samplers.fresh import FreshDraws
from threshsearch.search.samplers.history import BoundedHistory
from threshsearch.search.samplers.neighbours import NeighbourAfterRepeat
from threshsearch.search.samplers.ranked import RankedStops
from threshsearch.search.storage import DUPLICATE, STATUS

NAMES = ("a", "b", "c")
HIGH = 10_000


class Stubborn(optuna.samplers.BaseSampler):
    """A model that always draws every parameter at 0, and notes the trials it is told of."""

    def __init__(self):
        self.told = []

    def infer_relative_search_space(self, study, trial):
        return {name: optuna.distributions.IntDistribution(0, HIGH) for name in NAMES}

    def sample_relative(self, study, trial, search_space):
        return dict.fromkeys(search_space, 0)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return 0

    def after_trial(self, study, trial, state, values):
        self.told.append(trial.number)


def _ask(study):
    trial = study.ask()
    return trial, tuple(trial.suggest_int(name, 0, HIGH) for name in NAMES)


def _tell(study, trial, repeat=False):
    if repeat:
        trial.set_user_attr(STATUS, DUPLICATE)
    study.tell(trial, 1.0)


def _draw(study, repeat=False):
    trial, params = _ask(study)
    _tell(study, trial, repeat)
    return params


def _changed(params):
    return sum(value != 0 for value in params)


def test_the_draw_after_a_repeat_is_a_neighbour_then_the_model_draws_again():
    model = Stubborn()
    study = optuna.create_study(sampler=NeighbourAfterRepeat(model, seed=0))
    assert _draw(study) == (0, 0, 0)
    assert _draw(study, repeat=True) == (0, 0, 0)  # the model's draw, found to repeat
    assert _changed(_draw(study)) == 1, "one parameter drawn again"
    assert [_draw(study) for _ in range(3)] == [(0, 0, 0)] * 3
    assert model.told == list(range(6)), "the model is told of every trial"


def test_a_neighbour_that_repeats_is_followed_by_a_draw_at_random():
    study = optuna.create_study(sampler=NeighbourAfterRepeat(Stubborn(), seed=0))
    _draw(study, repeat=True)
    assert _changed(_draw(study, repeat=True)) == 1  # the neighbour, found to repeat too
    assert _changed(_draw(study)) == 3, "every parameter at random"
    assert _draw(study) == (0, 0, 0)


def test_trials_asked_before_a_repeat_is_told_stay_the_models_and_each_repeat_owes_one():
    study = optuna.create_study(sampler=NeighbourAfterRepeat(Stubborn(), seed=0))
    (first, p1), (second, p2), (third, p3) = _ask(study), _ask(study), _ask(study)
    assert p1 == p2 == p3 == (0, 0, 0)
    _tell(study, first, repeat=True)
    _tell(study, second, repeat=True)
    _tell(study, third)
    assert [_changed(_draw(study)) for _ in range(3)] == [1, 1, 0]


def test_random_sampling_is_left_as_it_is_and_the_models_are_wrapped():
    from threshsearch.search.samplers import choose_sampler, parse_sampler

    random = choose_sampler(parse_sampler("random"), 2, 40, 1).build(0)
    assert isinstance(random, optuna.samplers.RandomSampler)
    tpe = choose_sampler(parse_sampler("tpe"), 2, 40, 1).build(0)
    assert isinstance(tpe, NeighbourAfterRepeat) and isinstance(tpe.model, FreshDraws)
    assert isinstance(tpe.model.model, BoundedHistory)
    assert isinstance(tpe.model.model.model, RankedStops)
    assert isinstance(tpe.model.model.model.model, optuna.samplers.TPESampler)
    nsga2 = choose_sampler(parse_sampler("nsga2"), 2, 40, 1).build(0)
    assert isinstance(nsga2, optuna.samplers.NSGAIISampler), "its generations left whole"


def test_a_neighbour_never_changes_a_kept_parameter():
    study = optuna.create_study(sampler=NeighbourAfterRepeat(Stubborn(), seed=0,
                                                             keep=("a", "b")))
    for _ in range(5):
        _draw(study, repeat=True)  # the model's repeat
        assert _draw(study)[:2] == (0, 0), "only c may change"


def test_a_queued_retry_keeps_its_parameters_and_the_next_trial_steps_away():
    study = optuna.create_study(sampler=NeighbourAfterRepeat(Stubborn(), seed=0))
    _draw(study, repeat=True)
    study.enqueue_trial({"a": 7, "b": 7, "c": 7})  # as a retry is queued
    assert _draw(study) == (7, 7, 7)
    assert _changed(_draw(study)) == 1
