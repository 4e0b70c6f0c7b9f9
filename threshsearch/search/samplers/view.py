"""A model that reads the study through a view: the same study, its trials as ``trials``
hands them (fewer, or in another order); every other call passes to the model.

Optuna's samplers read a study's trials through ``Study._get_trials``; the view is a
shallow copy of the study whose ``_get_trials`` is the wrapper's, so the model's own code
reads it unchanged. Imports no Ray.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


class ViewingSampler(BaseSampler):
    """``model`` drawing from ``view(study)``; subclasses say what it holds (``trials``)."""

    def __init__(self, model: BaseSampler) -> None:
        self.model = model

    @abstractmethod
    def trials(self, study: Study, deepcopy: bool = True,
               states: Container[TrialState] | None = None,
               use_cache: bool = False) -> list[FrozenTrial]:
        """The trials the model reads, as ``study._get_trials`` would hand them."""

    def view(self, study: Study) -> Study:
        """``study`` as the model reads it."""
        seen = copy.copy(study)
        seen._get_trials = lambda deepcopy=True, states=None, use_cache=False: self.trials(
            study, deepcopy, states, use_cache)
        return seen

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.model.sample_relative(self.view(study), trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.model.sample_independent(self.view(study), trial, param_name,
                                             param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.model.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.model.reseed_rng()
