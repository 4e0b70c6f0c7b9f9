"""A model that reads the study through a view: the same study, its trials as ``arrange``
hands them (fewer, or in another order); every other call passes to the model.

Optuna's samplers read a study's trials through ``Study._get_trials``; the view is a
shallow copy of the study whose ``_get_trials`` is the wrapper's, so the model's own code
reads it unchanged; every other call passes to the model (``WrappingSampler``). Imports
no Ray.
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Collection, Container, Hashable
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.samplers.wrapping import WrappingSampler
from threshsearch.search.studycache import CachedStudyStorage

KEPT_ARRANGEMENTS = 4  # lists whose arrangement is kept, the latest first


def minimising_signs(study: Study) -> list[float]:
    """1 for each objective ``study`` minimises, -1 for each it maximises: its values times
    these are all minimised (``pareto``'s convention)."""
    return [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]


def read_once(study: Study) -> Study:
    """``study`` with its trials read from the storage at the first read and handed out
    from that list after (the same list for the same states, not to be changed): one draw
    that asks its model several times reads the storage once, and the views above it
    arrange it once. (TPE with the constant liar reads past Optuna's per-trial cache, a
    whole storage sync per ask: most of a draw's cost at 10,000 trials.) A list of some
    states comes from the driver's cache as it holds the study then, where the study has
    one (``studycache``: no pass over its settled trials; nothing reads the storage between
    the first read and it within a draw), else from the first read. The first read is
    Optuna's per-trial cache (reset at each ask, filled at its first read): in one driver
    nothing starts or ends during a draw; trials another driver starts meanwhile are seen
    at the next draw."""
    held = copy.copy(study)
    read: dict[frozenset[TrialState] | None, list[FrozenTrial]] = {}

    def get_trials(deepcopy: bool = True, states: Collection[TrialState] | None = None,
                   use_cache: bool = False) -> list[FrozenTrial]:
        if None not in read:
            read[None] = study._get_trials(deepcopy=False, use_cache=True)
        key = None if states is None else frozenset(states)
        if key not in read:
            read[key] = (study._storage.trials_in_order(study._study_id, states)
                         if isinstance(study._storage, CachedStudyStorage)
                         else [t for t in read[None] if t.state in states])
        return copy.deepcopy(read[key]) if deepcopy else read[key]

    held._get_trials = get_trials
    return held


class ViewingSampler(WrappingSampler):
    """``model`` drawing from ``view(study)``; subclasses say what it holds (``arrange``)."""

    def __init__(self, model: BaseSampler) -> None:
        super().__init__(model)
        # The lists arranged last (a model reads a few, for different states), with the
        # state they were arranged in and the arrangement; held, so that no list's identity
        # is reused while it is here.
        self._arranged: list[tuple[list[FrozenTrial], Hashable, list[FrozenTrial]]] = []

    @abstractmethod
    def arrange(self, study: Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        """The trials the model reads, from ``trials`` as ``study._get_trials`` handed them
        (any states, in the study's order)."""

    def state(self) -> Hashable:
        """What ``arrange`` depends on besides its list (what it has weighed, the band of
        the draw): an arrangement is reused only for the same list in the same state."""
        return None

    def view(self, study: Study) -> Study:
        """``study`` as the model reads it. The same list read again in the same ``state``
        (``read_once``: every ask of one draw) is arranged once."""
        seen = copy.copy(study)

        def get_trials(deepcopy: bool = True, states: Container[TrialState] | None = None,
                       use_cache: bool = False) -> list[FrozenTrial]:
            trials = study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
            state = self.state()
            for read, arranged_in, arranged in self._arranged:
                if read is trials and arranged_in == state:
                    return arranged
            arranged = self.arrange(study, trials)
            self._arranged = [(trials, self.state(), arranged),
                              *self._arranged[:KEPT_ARRANGEMENTS - 1]]
            return arranged

        seen._get_trials = get_trials
        return seen

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.model.sample_relative(self.view(study), trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.model.sample_independent(self.view(study), trial, param_name,
                                             param_distribution)
