"""A wrapper passes every call to its model unless it overrides it."""

import optuna

from threshsearch.search.samplers.wrapping import WrappingSampler


class Noting(optuna.samplers.RandomSampler):
    def __init__(self):
        super().__init__(seed=0)
        self.heard = []

    def before_trial(self, study, trial):
        self.heard.append("before")

    def after_trial(self, study, trial, state, values):
        self.heard.append("after")

    def reseed_rng(self):
        self.heard.append("reseed")


def test_every_call_reaches_the_model():
    model = Noting()
    wrapper = WrappingSampler(model)
    study = optuna.create_study(sampler=wrapper)
    trial = study.ask()
    assert 0 <= trial.suggest_float("x", 0, 1) <= 1
    study.tell(trial, 1.0)
    wrapper.reseed_rng()
    assert model.heard == ["before", "after", "reseed"]
