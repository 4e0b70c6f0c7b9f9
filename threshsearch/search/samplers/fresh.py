"""A model asked again while its draw is a network the study holds; when it keeps
proposing tried networks, a neighbour of its favourite, then a draw at random.

Multivariate TPE proposes the candidate that is likeliest under its good group against the
rest; on a space of a few integers and choices that candidate is, most of the time, a
trial of the good group itself (its kernel's centre), so the model proposes networks it
has tried. A repeat trains nothing and tells the model nothing, yet it went through the
whole trial machinery and was stored: on the surrogate at 1,000 trials about 2.5 repeats
were drawn for every trial of the budget (docs/benchmarks.md, sampler learning).
``FreshDraws`` asks its model up to ``DRAWS`` times for a trial (each draw of TPE takes a
fresh sample of candidates) and keeps the first draw whose network no trial has had. When
all repeat, the model stands still: the draw is the model's first with one parameter
drawn again at random (never one in ``keep``, the recipe's), a step of local search around
what the model likes best, up to ``DRAWS`` such neighbours; then up to ``DRAWS`` draws
wholly at random; and only when every one of those repeats too (a space nearly spent) the
model's own draw, which the searcher records as a repeat. A network is what ``identity``
makes of a trial's parameters (the space's network hash, so that two draws differing only
where the network does not look, such as the harmonic layers' reduction of an all-dense
network, are one), or the parameters themselves where it gives none. A seeded study draws
the same. Each trial's network is worked out once, when the trial is first seen with its
parameters (from the first trial still drawing, the list is read again at the next draw).
Imports no Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.samplers.neighbours import neighbour

DRAWS = 8  # draws of each kind (the model's, neighbours, at random) a trial, at most


Identity = Callable[[Mapping[str, Any]], Hashable | None]


class FreshDraws(BaseSampler):
    """``model``, asked again while its draw is a network a trial of the study has had,
    then its favourite's neighbours, then draws at random; ``identity`` names the network
    of a trial's parameters."""

    def __init__(self, model: BaseSampler, identity: Identity | None = None,
                 keep: Collection[str] = (), seed: int | None = None,
                 draws: int = DRAWS) -> None:
        self.model, self.identity, self.draws = model, identity, draws
        self.keep = frozenset(keep)
        self._random = RandomSampler(seed=None if seed is None else seed + 3)
        self._rng = np.random.default_rng(None if seed is None else seed + 4)
        self.tried: set[Hashable] = set()
        self.read = 0  # the study's trials read so far, in its list

    def __str__(self) -> str:
        return f"{self.model} (asked again, up to {self.draws} times, while it repeats)"

    def _network(self, params: Mapping[str, Any]) -> Hashable:
        network = self.identity(params) if self.identity is not None else None
        return network if network is not None else tuple(sorted(params.items()))

    def _tried(self, study: Study) -> set[Hashable]:
        """The networks of the study's trials that have drawn their parameters."""
        trials = study._get_trials(deepcopy=False, use_cache=True)
        stop = len(trials)
        for index in range(self.read, len(trials)):
            trial = trials[index]
            if trial.params:
                self.tried.add(self._network(trial.params))
            elif trial.state == TrialState.RUNNING and stop == len(trials):
                stop = index  # drawing now (this trial, or another driver's): read it later
        self.read = stop
        return self.tried

    # ---------------------------------------------------- the sampler's calls
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial
                                    ) -> dict[str, BaseDistribution]:
        return self.model.infer_relative_search_space(study, trial)

    def _alternatives(self, study: Study, trial: FrozenTrial,
                      search_space: dict[str, BaseDistribution],
                      favourite: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The draws tried after the model's favourite, in order, made as they are asked."""
        for _ in range(self.draws - 1):
            yield self.model.sample_relative(study, trial, search_space)
        for _ in range(self.draws):
            yield neighbour(favourite, search_space, self.keep, self._rng, self._random,
                            study, trial)
        for _ in range(self.draws):
            yield {name: self._random.sample_independent(study, trial, name, distribution)
                   for name, distribution in search_space.items()}

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        favourite = self.model.sample_relative(study, trial, search_space)
        if not favourite:
            return favourite  # the model's start-up draws are independent, at random
        tried = self._tried(study)
        for draw in chain([favourite],
                          self._alternatives(study, trial, search_space, favourite)):
            if self._network(draw) not in tried:
                return draw
        return favourite

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
        self._random.reseed_rng()
        self._rng = np.random.default_rng()
