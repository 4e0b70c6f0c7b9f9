"""A model that learns from a bounded history: the study's latest trials and the front of
the ones before them, so that its fit does not grow with the study.

TPE builds its Parzen estimators from every trial it reads (through ``Study._get_trials``),
so its draw grows with the study: the driver's CPU per trial went from 110 ms at the
1,000th trial to 235 ms at the 10,000th, nearly all of it TPE's (docs/benchmarks.md, scale).
``BoundedHistory`` hands its model a view of the study whose trials are the latest
``recent`` ones and, from before them, the non-dominated complete ones (so the best
networks found early stay in the model's "good" group). That front is kept from the
storage as trials leave the window, so a study shared by several drivers keeps every
driver's best. Below ``recent`` trials the model sees the whole study. What still grows is
reading the list of trials (no arrays, no estimators). Imports no Ray.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable

import numpy as np
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.samplers.view import ViewingSampler, minimising_signs

RECENT = 1000  # the latest trials the model sees besides the front; at or below, all


class BoundedHistory(ViewingSampler):
    """``model`` drawing from the latest ``recent`` trials of the study and the front of
    those before them."""

    def __init__(self, model: BaseSampler, recent: int = RECENT) -> None:
        super().__init__(model)
        self.recent = recent
        self.front: dict[int, np.ndarray] = {}  # number -> minimised values, before ``cut``
        self.cut = 0  # the trials numbered below it have been weighed for the front

    def __str__(self) -> str:
        return f"{self.model} (the latest {self.recent} trials and the front before them)"

    # ------------------------------------------------------------- the view
    def state(self) -> Hashable:
        return self.cut  # the front changes only as the cut moves

    def _add(self, number: int, point: np.ndarray) -> None:
        if not np.all(np.isfinite(point)):
            return
        for other, kept in list(self.front.items()):
            if np.all(kept <= point):  # dominated, or a tie with a point kept already
                return
            if np.all(point <= kept):
                del self.front[other]
        self.front[number] = point

    def _weigh_up_to(self, study: Study, cut: int) -> None:
        """Weigh for the front the complete trials numbered from ``self.cut`` to ``cut``."""
        complete = study._get_trials(deepcopy=False, states=(TrialState.COMPLETE,),
                                     use_cache=True)
        signs = minimising_signs(study)
        start = bisect.bisect_left(complete, self.cut, key=lambda trial: trial.number)
        for trial in complete[start:]:
            if trial.number >= cut:
                break
            if trial.values is not None:
                self._add(trial.number, np.asarray(trial.values, dtype=float) * signs)
        self.cut = cut

    def arrange(self, study: Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        if len(trials) <= self.recent:
            return trials
        window = len(trials) - self.recent
        if trials[window].number > self.cut:
            self._weigh_up_to(study, trials[window].number)
        kept = []  # found by bisection (the list is in the study's order), not by a scan
        for number in sorted(self.front):
            index = bisect.bisect_left(trials, number, hi=window, key=lambda t: t.number)
            if index < window and trials[index].number == number:
                kept.append(trials[index])
        return kept + trials[window:]
