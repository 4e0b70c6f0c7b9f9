"""A viewing sampler's model reads the study through the view in both of its draws, and
hears every other call unchanged."""

import optuna

from threshsearch.search.samplers.view import ViewingSampler

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
    def trials(self, study, deepcopy=True, states=None, use_cache=False):
        return [t for t in study._get_trials(deepcopy=deepcopy, states=states,
                                             use_cache=use_cache) if t.number % 2 == 0]


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
