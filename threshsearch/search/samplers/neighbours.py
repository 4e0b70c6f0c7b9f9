"""A sampler that steps away from networks the study already holds: the draw after a repeat
is a neighbour of the repeated network, one of its parameters drawn again.

A network is a handful of integers and choices, so a model that narrows onto the region it
likes (multivariate TPE above all) soon proposes networks already tried: its best candidate
is the centre of one of its best kernels, an earlier trial. On the surrogate at 1,000
trials under early stopping about seven draws in ten repeated one (docs/benchmarks.md,
sampler learning). A repeat trains nothing (the searcher reuses the record, ``status:
duplicate``) and tells the model nothing new. ``NeighbourAfterRepeat`` wraps the model:
every trial the searcher records as a repeat has the next trial asked draw that network
with one of its parameters (the network's, not the recipe's), chosen at random, drawn
again at random (a different value where the
parameter has one): a step of local search around what the model thinks best, where the
model itself would stand still. A neighbour that repeats too is followed by a draw wholly
at random, so a run of repeats spans the space, not one corner of it (the searcher ends a
search after a long run). The model is told of every trial. Imports no Ray.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.storage import DUPLICATE, STATUS

REDRAWS = 10  # tries for a value other than the repeated one
FIXED_PARAMS = "fixed_params"  # Optuna's system attr on an enqueued trial (a retry)


def neighbour(params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution],
              keep: Collection[str], rng: np.random.Generator, random: RandomSampler,
              study: Study, trial: FrozenTrial) -> dict[str, Any]:
    """``params`` with one of them (chosen by ``rng``, never one in ``keep``) drawn again
    by ``random``, to another value where its distribution has one."""
    params = dict(params)
    free = [name for name, dist in distributions.items()
            if name in params and not dist.single() and name not in keep]
    if free:
        name = free[rng.integers(len(free))]
        for _ in range(REDRAWS):
            value = random.sample_independent(study, trial, name, distributions[name])
            if value != params[name]:
                break
        params[name] = value
    return params


class NeighbourAfterRepeat(BaseSampler):
    """``model``'s draws, except that each trial recorded as a repeat makes the next trial
    asked a neighbour of the repeated network."""

    def __init__(self, model: BaseSampler, seed: int | None = None,
                 keep: Collection[str] = ()) -> None:
        self.model = model
        self.keep = frozenset(keep)  # parameters a neighbour never changes (the recipe's)
        self._random = RandomSampler(seed=None if seed is None else seed + 1)
        self._rng = np.random.default_rng(None if seed is None else seed + 2)
        # Repeats whose follower is still to draw: (the repeat, whether it was a neighbour).
        self.repeated: list[tuple[FrozenTrial, bool]] = []
        # Trial number -> its planned parameters: a neighbour's, or none (all at random).
        self.planned: dict[int, dict[str, Any]] = {}

    def __str__(self) -> str:
        return f"{self.model} (a neighbour after each repeat)"

    def _neighbour(self, study: Study, trial: FrozenTrial, repeat: FrozenTrial
                   ) -> dict[str, Any]:
        return neighbour(repeat.params, repeat.distributions, self.keep, self._rng,
                         self._random, study, trial)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # A queued retry re-runs its network with fixed parameters: the repeat's follower
        # waits for the next trial.
        if self.repeated and FIXED_PARAMS not in trial.system_attrs:
            repeat, was_neighbour = self.repeated.pop(0)
            self.planned[trial.number] = ({} if was_neighbour
                                          else self._neighbour(study, trial, repeat))
        self.model.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        if trial.number in self.planned:
            return {}
        return self.model.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if trial.number in self.planned:
            return {}
        return self.model.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        planned = self.planned.get(trial.number)
        if planned is None:
            return self.model.sample_independent(study, trial, param_name,
                                                 param_distribution)
        value = planned.get(param_name)
        if value is not None and param_distribution._contains(
                param_distribution.to_internal_repr(value)):
            return value
        # A draw at random, or a parameter the repeated network did not have.
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        was_neighbour = bool(self.planned.pop(trial.number, None))  # a neighbour's plan
        if trial.user_attrs.get(STATUS) == DUPLICATE:
            self.repeated.append((trial, was_neighbour))
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.model.reseed_rng()
        self._random.reseed_rng()
        self._rng = np.random.default_rng()
