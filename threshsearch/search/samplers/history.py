"""A model that learns from a bounded history: the study's front and its most recent
trials, so that a draw costs as much at the 10,000th trial as at the 1,000th.

TPE builds its Parzen estimators from every trial it reads (through ``Study._get_trials``),
so its draw grows with the study: the driver's CPU per trial went from 110 ms at the
1,000th trial to 235 ms at the 10,000th, nearly all of it TPE's (docs/benchmarks.md, scale).
``BoundedHistory`` hands its model a view of the study whose trials are the most recent
``recent`` ones and, from before them, the non-dominated complete ones (kept as trials end,
so the best networks found early stay in the model's "good" group). Below ``recent``
trials the model sees the whole study. Imports no Ray.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

RECENT = 1000  # trials the model sees besides the front; at or below, the whole study


class BoundedHistory(BaseSampler):
    """``model`` drawing from the front and the ``recent`` latest trials of the study."""

    def __init__(self, model: BaseSampler, recent: int = RECENT) -> None:
        self.model, self.recent = model, recent
        self.front: dict[int, np.ndarray] | None = None  # number -> minimised values

    def __str__(self) -> str:
        return f"{self.model} (the front and the latest {self.recent} trials)"

    # ------------------------------------------------------------- the view
    def _minimised(self, study: Study, values: Sequence[float]) -> np.ndarray:
        signs = [1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions]
        return np.asarray(values, dtype=float) * signs

    def _add(self, number: int, point: np.ndarray) -> None:
        if not np.all(np.isfinite(point)):
            return
        for other, kept in list(self.front.items()):
            if np.all(kept <= point):  # dominated, or a tie with a point kept already
                return
            if np.all(point <= kept):
                del self.front[other]
        self.front[number] = point

    def _ensure_front(self, study: Study) -> None:
        if self.front is None:  # the first draw of this driver: a resumed study's front
            self.front = {}
            for trial in study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                           use_cache=True):
                if trial.values is not None:
                    self._add(trial.number, self._minimised(study, trial.values))

    def _trials(self, study: Study, deepcopy: bool = True,
                states: Container[TrialState] | None = None,
                use_cache: bool = False) -> list[FrozenTrial]:
        trials = study._get_trials(deepcopy=deepcopy, states=states, use_cache=use_cache)
        if len(trials) <= self.recent:
            return trials
        self._ensure_front(study)
        cut = len(trials) - self.recent
        return [t for t in trials[:cut] if t.number in self.front] + trials[cut:]

    def view(self, study: Study) -> Study:
        """``study`` as the model sees it: the same study, fewer trials."""
        seen = copy.copy(study)
        seen._get_trials = lambda deepcopy=True, states=None, use_cache=False: self._trials(
            study, deepcopy, states, use_cache)
        return seen

    # ---------------------------------------------------- the sampler's calls
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
        if self.front is not None and state == TrialState.COMPLETE and values is not None:
            self._add(trial.number, self._minimised(study, values))
        self.model.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.model.reseed_rng()
