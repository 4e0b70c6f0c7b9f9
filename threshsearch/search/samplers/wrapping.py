"""A sampler that wraps a model: every call passes to the model unless the wrapper says
otherwise. The base of the wrappers around TPE and GP (``view.ViewingSampler``,
``fresh.FreshDraws``), so that each states only what it changes; and ``seed_sampler``, what
``reseed_rng`` does with a seed given. Imports no Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

# Where Optuna's samplers keep their random state and the samplers they fall back on (the
# attributes their ``reseed_rng`` reseeds): TPE and NSGA-II a random sampler, GP an
# independent one; NSGA-II's child generation shares the sampler's own state.
FALLBACKS = ("_random_sampler", "_independent_sampler")


def seed_sampler(sampler: BaseSampler, seed: int) -> None:
    """Seed ``sampler``'s random state and its fallbacks' (each from ``seed`` and its place),
    as ``reseed_rng`` reseeds them from the system's entropy."""
    if isinstance(sampler, WrappingSampler):
        sampler.seed_rng(seed)
        return
    sampler._rng.rng.seed(seed % 2**32)
    for offset, name in enumerate(FALLBACKS, start=1):
        if hasattr(sampler, name):
            seed_sampler(getattr(sampler, name), seed + offset)


class WrappingSampler(BaseSampler):
    """``model``'s calls, unchanged; subclasses override the ones they change."""

    def __init__(self, model: BaseSampler) -> None:
        self.model = model

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.model.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.model.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        self.model.before_trial(study, trial)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.model.reseed_rng()

    def seed_rng(self, seed: int) -> None:
        """``reseed_rng`` from ``seed``: the model's random state, and the wrapper's own."""
        seed_sampler(self.model, seed)
