"""A viewing sampler's model reads the study through the view in both of its draws, and
hears every other call unchanged; a study read once takes its lists of some states from the
driver's cache."""

import optuna

from threshsearch.search.samplers.view import ViewingSampler, read_once

X = optuna.distributions.FloatDistribution(0, 1)


class Noting(optuna.samplers.RandomSampler):
    """A random model that notes the trial numbers it reads and the calls it hears."""

    def __init__(self):
        super().__init__(seed=0)
        self.read, self.heard = [], []

    def sample_independent(self, study, trial, param_name, param_distribution):
        self.read.append([t.number for t in study._get_trials(deepcopy=False)])
        return super().sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.heard.append(("before", trial.number))

    def after_trial(self, study, trial, state, values):
        self.heard.append(("after", trial.number))


class EvenOnly(ViewingSampler):
    def arrange(self, study, trials):
        return [t for t in trials if t.number % 2 == 0]


def test_the_model_reads_the_view_and_hears_every_call():
    model = Noting()
    study = optuna.create_study(sampler=EvenOnly(model))
    for _ in range(5):
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, 1.0)
    assert model.read[-1] == [0, 2, 4]  # trial 4 drawing, the odd ones out of view
    assert model.heard == [(when, n) for n in range(5) for when in ("before", "after")]
    assert len(study.trials) == 5, "the study itself is untouched"


class Counting(ViewingSampler):
    def __init__(self, model):
        super().__init__(model)
        self.arranged = 0

    def arrange(self, study, trials):
        self.arranged += 1
        return list(trials)


def test_a_study_read_once_reads_the_storage_once_and_its_views_arrange_it_once():
    study = optuna.create_study()
    for value in (1.0, 2.0):
        study.enqueue_trial({"x": value / 4})
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        study.tell(trial, value)
    reads = []
    get_all = study._storage.get_all_trials
    study._storage.get_all_trials = lambda *a, **k: reads.append(1) or get_all(*a, **k)
    held = read_once(study)
    complete = (optuna.trial.TrialState.COMPLETE,)
    first = held._get_trials(deepcopy=False, states=complete)
    assert held._get_trials(deepcopy=False, states=complete) is first
    assert [t.number for t in held._get_trials(deepcopy=False)] == [0, 1]
    assert len(reads) == 1
    copied = held._get_trials(deepcopy=True)
    assert copied[0] is not held._get_trials(deepcopy=False)[0]

    viewing = Counting(Noting())
    for _ in range(3):
        viewing.view(held)._get_trials(deepcopy=False)
    viewing.view(study)._get_trials(deepcopy=False)
    assert viewing.arranged == 2, "the same list once, a fresh read again"


class Weighing(Counting):
    """Arranges by what it has weighed: its state."""

    def __init__(self, model):
        super().__init__(model)
        self.weighed = 0

    def state(self):
        return self.weighed


def test_a_new_read_or_a_new_state_is_arranged_again():
    study = optuna.create_study()
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 1.0)
    viewing = Weighing(Noting())
    held = read_once(study)
    complete = [optuna.trial.TrialState.COMPLETE]
    assert held._get_trials(deepcopy=False, states=complete) is held._get_trials(
        deepcopy=False, states=tuple(complete))
    viewing.view(held)._get_trials(deepcopy=False)
    viewing.weighed += 1
    viewing.view(held)._get_trials(deepcopy=False)
    assert viewing.arranged == 2, "the same list in a new state"
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, 2.0)
    numbers = [t.number for t in viewing.view(read_once(study))._get_trials(deepcopy=False)]
    assert viewing.arranged == 3 and numbers == [0, 1]


def test_a_study_read_once_takes_its_lists_of_states_from_the_drivers_cache(tmp_path,
                                                                            monkeypatch):
    from optuna.trial import TrialState

    from threshsearch.search.storage import open_storage
    from threshsearch.search.studycache import CachedStudyStorage

    storage = CachedStudyStorage(open_storage(f"sqlite:///{tmp_path / 'study.db'}"))
    study = optuna.create_study(storage=storage)
    for value in range(4):
        study.tell(study.ask(), value)
    study.tell(study.ask(), state=TrialState.PRUNED)
    study.ask()
    asked = []
    in_order = storage.trials_in_order
    monkeypatch.setattr(storage, "trials_in_order", lambda *args: asked.append(args[1:])
                        or in_order(*args))
    held = read_once(study)
    everything = held._get_trials(deepcopy=False)
    states = (TrialState.COMPLETE, TrialState.PRUNED)
    stopped = held._get_trials(deepcopy=False, states=states)
    # The first read (all states), then the list of some states from the cache as well,
    # not by a pass over the first read.
    assert asked == [(None,), (states,)]
    assert [t.number for t in stopped] == [0, 1, 2, 3, 4]
    assert all(got is held_there for got, held_there in zip(
        stopped, [t for t in everything if t.state in states], strict=True))
    assert held._get_trials(deepcopy=False, states=states) is stopped and len(asked) == 2
