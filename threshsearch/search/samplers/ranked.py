"""A model that reads a study as early stopping ranked it: each network once, and the
stopped trials deepest rung first, then by their front among those stopped at that rung.

Multivariate TPE splits the trials it reads into a "good" group (a tenth of them for
several objectives) and the rest, and proposes what is likely under the first and unlikely
under the second. It ranks complete trials by non-domination; pruned trials by their
intermediate values, which a study of several objectives does not have (Optuna's
``Trial.report`` takes one objective). So every pruned trial ties, its stable sort keeps
them in study order, and under early stopping (about one trial in nine completes at eta 3,
fewer than the good group holds) the good group was filled up with the study's oldest
pruned trials: its first, random draws. A repeat of a network (status duplicate) is stored
with its twin's state and values, so each repeat put one more copy of a network the model
had proposed into the model's data, and the model narrowed onto it and repeated it more.

``RankedStops`` hands its model a view of the study without the repeats, in which the
trials early stopping stopped come deepest rung first, then by their front among the
trials stopped at the same rung (their objectives as last reported, as the rung weighed
them; every stopped trial of the study counts, not only those in a bounded view), then in
study order. Where the pruned trials tie for TPE, its stable sort keeps
this order, so the good group takes the stopped trials that went furthest and did best.
Trials stopped for a broken constraint (status infeasible) come last. The fronts are kept
as trials are first read (``pareto.ParetoFronts``), so a draw does not sort the study again.
Place it inside ``history.BoundedHistory``, whose window needs the study's order. Imports
no Ray.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from numbers import Real

from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.pareto import ParetoFronts, SortedValues, pareto_fronts
from threshsearch.search.samplers.view import ViewingSampler, minimising_signs
from threshsearch.search.storage import DUPLICATE, STATUS, STOPPED_AT


class RankedStops(ViewingSampler):
    """``model`` reading the study without repeats and with its stopped trials ranked."""

    def __init__(self, model: BaseSampler) -> None:
        super().__init__(model)
        self.rungs: dict[int, ParetoFronts | SortedValues] = {}  # epoch -> stopped there
        self.places: dict[int, tuple[int, int]] = {}  # number -> (epoch, index there)
        self.weighed: set[int] = set()
        self.started = False  # the storage's stopped trials have been weighed

    def __str__(self) -> str:
        return f"{self.model} (reading stopped trials by rung and front, repeats left out)"

    # ------------------------------------------------------------- the view
    def state(self) -> Hashable:
        return self.started, len(self.weighed)  # the rungs change only as trials are weighed

    def _weigh(self, trial: FrozenTrial, names: Sequence[str], signs: Sequence[float]
               ) -> None:
        """Add a trial stopped at a rung to that rung's fronts, by its last objectives
        (``names``, times ``signs`` to minimise them)."""
        epoch = trial.user_attrs.get(STOPPED_AT)
        if not isinstance(epoch, int) or epoch <= 0:
            return
        values = [trial.user_attrs.get(name) for name in names]
        point = ([sign * float(v) for sign, v in zip(signs, values, strict=True)]
                 if len(values) == len(signs) and all(
                     isinstance(v, Real) for v in values)
                 else [float("nan")] * len(signs))
        fronts = self.rungs.setdefault(epoch, pareto_fronts(len(signs)))
        self.places[trial.number] = (epoch, len(fronts))
        fronts.add(point)

    def arrange(self, study: Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        trials = [t for t in trials if t.user_attrs.get(STATUS) != DUPLICATE]
        stopped = [t for t in trials if t.state == TrialState.PRUNED]
        # The first read weighs every stopped trial in the storage, so that a resumed study
        # ranks as one never interrupted (a bounded view holds only the latest trials).
        every = stopped if self.started else study._storage.get_all_trials(
            study._study_id, deepcopy=False, states=(TrialState.PRUNED,))
        self.started = True
        new = [t for t in every if t.number not in self.weighed]
        if new:
            names = study.metric_names or []  # a storage read: once a draw at most
            signs = minimising_signs(study)
            for trial in new:
                self.weighed.add(trial.number)
                self._weigh(trial, names, signs)
        fronts = {epoch: ranks.fronts for epoch, ranks in self.rungs.items()}
        last = {epoch: int(f.max(initial=0)) + 1 for epoch, f in fronts.items()}

        def rank(trial: FrozenTrial) -> tuple[int, int, int]:
            if trial.number not in self.places:  # no rung reached: after every ranked stop
                return 1, 0, trial.number
            epoch, index = self.places[trial.number]
            front = int(fronts[epoch][index])  # -1: a non-finite value, last at its rung
            return -epoch, front if front >= 0 else last[epoch], trial.number

        stopped.sort(key=rank)
        return [t for t in trials if t.state != TrialState.PRUNED] + stopped
