"""Multivariate TPE fitted once per draw: asked several times over one read of the study,
it splits the trials and builds its Parzen estimators at the first ask only.

``fresh.FreshDraws`` asks its model again while the model proposes a network the study
holds: in benchmarks/scale.yaml's space a draw asked TPE 5.3 times on average
(docs/benchmarks.md, scale), and every ask split the same trials into a good group and the
rest, ranking them by non-domination, and built the same two estimators from them: about
half of TPE's CPU in a draw (cProfile, the driver alone: docs/benchmarks.md). Only the
candidates differ between asks (each ask samples ``n_ei_candidates`` afresh from the good
group's estimator and keeps the one the acquisition favours).

``FittedOnceTPE`` keeps the fits made over the list of trials it read last (the list itself,
held, so that its identity is not reused), by trial drawing and search space; a new list
drops them. An ask over the same list (``view.read_once`` and the views above it hand out
one list per draw), for the same trial and space, samples and scores its candidates from
the kept estimators. Proposals are Optuna's TPESampler's, ask for ask, for the same seed (a
test compares them); only the repeated fits are gone. A study read without ``read_once``
hands out a new list at every read: then every ask fits, as Optuna's does. Reads Optuna's
private TPE helpers (the split, the estimator's build, the acquisition), hence Optuna's pin
to a minor version (pyproject.toml); the comparison test guards it. Imports no Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import TPESampler
from optuna.samplers._tpe.sampler import (
    _split_trials,
    default_gamma,
    default_gamma_multiobjective,
)
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

Space = tuple[tuple[str, BaseDistribution], ...]


class FittedOnceTPE(TPESampler):
    """Optuna's TPE, whose estimators are fitted once per list of trials read, trial and
    space."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The list read last (held, so that its identity stays its own) and the fits made
        # over it: (trial number, space) -> (the good group's estimator, the rest's).
        self._read: list[FrozenTrial] | None = None
        self._fits: dict[tuple[int, Space], tuple[_ParzenEstimator, _ParzenEstimator]] = {}

    def _fit(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
             ) -> tuple[_ParzenEstimator, _ParzenEstimator]:
        states = [TrialState.COMPLETE, TrialState.PRUNED]
        if self._constant_liar:
            states.append(TrialState.RUNNING)
        read = study._get_trials(deepcopy=False, states=states,
                                 use_cache=not self._constant_liar)
        if read is not self._read:
            self._read, self._fits = read, {}
        key = (trial.number, tuple(search_space.items()))
        if key in self._fits:
            return self._fits[key]
        trials = [t for t in read if t.number != trial.number] if self._constant_liar else read
        if self._gamma is None:
            several = len(study.directions) > 1
            self._gamma = default_gamma_multiobjective if several else default_gamma
        settled = sum(t.state != TrialState.RUNNING for t in trials)
        good, rest = _split_trials(study, trials, self._gamma(settled))
        self._fits[key] = (
            self._build_parzen_estimator(study, search_space, good, handle_below=True),
            self._build_parzen_estimator(study, search_space, rest, handle_below=False))
        return self._fits[key]

    def _sample(self, study: Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        good, rest = self._fit(study, trial, search_space)
        candidates = good.sample(self._rng.rng, self._n_ei_candidates)
        scores = self._compute_acquisition_func(candidates, good, rest)
        best = self._compare(candidates, scores)
        return {name: distribution.to_external_repr(best[name])
                for name, distribution in search_space.items()}
