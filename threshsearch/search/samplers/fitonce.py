"""Multivariate TPE fitted once per draw: asked several times over one read of the study,
it splits the trials and builds its Parzen estimators at the first ask only.

``fresh.FreshDraws`` asks its model again while the model proposes a network the study
holds: in benchmarks/scale.yaml's space a draw asked TPE 5.3 times on average
(docs/benchmarks.md, scale), and every ask split the same trials into a good group and the
rest, ranking them by non-domination, and built the same two estimators from them: about
half of a draw's CPU on the driver. Only the candidates differ between asks (each ask
samples ``n_ei_candidates`` afresh from the good group's estimator and keeps the one the
acquisition favours).

``FittedOnceTPE`` keeps the last few fits, each under the list of trials it was fitted to
(the list itself, held, so that its identity is not reused), the trial drawing and the
search space. An ask over the same list (``view.read_once`` and the views above it hand out
one list per draw), for the same trial and space, samples and scores its candidates from
the kept estimators. Proposals are Optuna's TPESampler's, draw for draw, for the same seed
(a test compares them); only the repeated fits are gone. A study read without
``read_once`` hands out a new list at every read: then every ask fits, as Optuna's does.
Reads Optuna's private TPE helpers (the split, the estimator's build, the acquisition):
the comparison test guards the pinned Optuna's behaviour. Imports no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
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

KEPT_FITS = 4  # a draw fits its joint space and a few single parameters (conditional ones)


@dataclass(frozen=True)
class Fit:
    """The estimators of one draw: ``good`` of the good group, ``rest`` of the others."""

    trials: list[FrozenTrial]  # the list fitted to, held so that its identity stays its own
    number: int  # the trial drawing
    space: tuple[tuple[str, BaseDistribution], ...]
    good: _ParzenEstimator
    rest: _ParzenEstimator


class FittedOnceTPE(TPESampler):
    """Optuna's TPE, whose estimators are fitted once per list of trials read, trial and
    space."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fits: list[Fit] = []  # the latest first
        self.fitted = 0  # fits made, for the tests and the benchmarks' counts

    def _fit(self, study: Study, trial: FrozenTrial,
             search_space: dict[str, BaseDistribution]) -> Fit:
        states = [TrialState.COMPLETE, TrialState.PRUNED]
        if self._constant_liar:
            states.append(TrialState.RUNNING)
        read = study._get_trials(deepcopy=False, states=states,
                                 use_cache=not self._constant_liar)
        space = tuple(search_space.items())
        for fit in self.fits:
            if fit.trials is read and fit.number == trial.number and fit.space == space:
                return fit
        trials = [t for t in read if t.number != trial.number] if self._constant_liar else read
        if self._gamma is None:
            several = len(study.directions) > 1
            self._gamma = default_gamma_multiobjective if several else default_gamma
        settled = sum(t.state != TrialState.RUNNING for t in trials)
        good, rest = _split_trials(study, trials, self._gamma(settled))
        fit = Fit(read, trial.number, space,
                  self._build_parzen_estimator(study, search_space, good, handle_below=True),
                  self._build_parzen_estimator(study, search_space, rest, handle_below=False))
        self.fitted += 1
        self.fits = [fit, *self.fits[:KEPT_FITS - 1]]
        return fit

    def _sample(self, study: Study, trial: FrozenTrial,
                search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        fit = self._fit(study, trial, search_space)
        candidates = fit.good.sample(self._rng.rng, self._n_ei_candidates)
        scores = self._compute_acquisition_func(candidates, fit.good, fit.rest)
        best = self._compare(candidates, scores)
        return {name: distribution.to_external_repr(best[name])
                for name, distribution in search_space.items()}
