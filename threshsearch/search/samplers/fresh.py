"""A model whose draw is checked against the networks the study holds: asked again while it
proposes one of them, then a neighbour of its favourite, then a draw at random.

Multivariate TPE proposes the candidate that is likeliest under its good group against the
rest; on a space of a few integers and choices that candidate is, most of the time, a
trial of the good group itself (its kernel's centre), so the model proposes networks it
has tried. A repeat trains nothing and tells the model nothing, yet it went through the
whole trial machinery and was stored: on the surrogate at 1,000 trials about 2.5 repeats
were drawn for every trial of the budget (docs/benchmarks.md, sampler learning).

``FreshDraws`` asks its model for a trial's draw, and while the draw is a network the
study holds, asks again (each draw of TPE takes a fresh sample of candidates, so a
proposal repeated once may still give way to a new one), up to ``DRAWS`` draws in all.
Then the draw is a neighbour of its first proposal, one of the
network's parameters (never one in ``keep``, the recipe's) drawn again at random, up to
``DRAWS`` of them: a step of local search around what the model likes best; then up to
``RANDOM_DRAWS`` draws wholly at random (cheap: no model is fitted; many, because they are
needed where the space is nearly spent: near the 10,000th trial of benchmarks/scale.yaml,
8 of them let through a third of a repeat per trial, each repeat a whole draw of the
driver's); and when every one of those repeats too (a space nearly spent), the model's
first proposal, which the searcher records as a repeat (it ends a search after a long run
of them).

A network is what ``identity`` makes of a draw: the space's network hash, with the
parameters the model's joint draw leaves out (conditional ones, such as a fifth stage's
depth when the number of stages is searched) drawn by the model one at a time as the trial
would draw them, and handed to the trial when it asks (``sample_independent``); two draws
differing only where the network does not look (the harmonic layers' reduction of an
all-dense network) are one network; a draw that builds no network is passed over too. The
study's networks are the hashes its trials recorded (user attribute ``config_hash``, the
searcher's duplicate check's; a failed trial's network counts as tried, though the
searcher would run it again), each read once, in the study's order (from the first trial
still drawing, read again next time). A seeded study draws the same. Imports no Ray.
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

from threshsearch.search.samplers.view import read_once
from threshsearch.search.samplers.wrapping import WrappingSampler, seed_sampler
from threshsearch.search.storage import CONFIG_HASH

DRAWS = 8  # the model's draws, and its favourite's neighbours, a trial, at most
RANDOM_DRAWS = 64  # draws at random after those, at most
REDRAWS = 10  # tries for a neighbour's parameter to take a value other than its own

Fill = Callable[[str, BaseDistribution], Any]
# The network of a draw (None: it builds none) and the parameters ``fill`` drew for it.
Identity = Callable[[Mapping[str, Any], Fill], tuple[Hashable | None, dict[str, Any]]]


def neighbour(params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution],
              keep: Collection[str], rng: np.random.Generator, random: RandomSampler,
              study: Study, trial: FrozenTrial) -> dict[str, Any]:
    """``params`` with one of them (chosen by ``rng``, never one in ``keep``) drawn again
    by ``random``, to another value where its distribution has one."""
    params = dict(params)
    free = [name for name, distribution in distributions.items()
            if name in params and not distribution.single() and name not in keep]
    if free:
        name = free[rng.integers(len(free))]
        for _ in range(REDRAWS):
            value = random.sample_independent(study, trial, name, distributions[name])
            if value != params[name]:
                break
        params[name] = value
    return params


class FreshDraws(WrappingSampler):
    """``model``'s draws, checked against the study's networks (``identity``): asked
    again, then a neighbour of its favourite, then at random, while they repeat one."""

    def __init__(self, model: BaseSampler, identity: Identity, keep: Collection[str] = (),
                 seed: int | None = None, draws: int = DRAWS,
                 random_draws: int = RANDOM_DRAWS) -> None:
        super().__init__(model)
        self.identity, self.draws = identity, draws
        self.random_draws = random_draws
        self.keep = frozenset(keep)
        self._random = RandomSampler(seed=None if seed is None else seed + 3)
        self._rng = np.random.default_rng(None if seed is None else seed + 4)
        self.tried: set[Hashable] = set()
        self.read = 0  # the study's trials read so far, in its list
        self.filled: dict[int, dict[str, Any]] = {}  # trial number -> what identity drew

    def __str__(self) -> str:
        return (f"{self.model} (asked again while it repeats a network, then {self.draws} "
                f"neighbours of its favourite, then {self.random_draws} draws at random)")

    def _tried(self, study: Study) -> set[Hashable]:
        """The networks of the study's trials that have recorded theirs."""
        trials = study._get_trials(deepcopy=False, use_cache=True)
        stop = len(trials)
        for index in range(self.read, len(trials)):
            trial = trials[index]
            network = trial.user_attrs.get(CONFIG_HASH)
            if network is not None:
                self.tried.add(network)
            elif trial.state == TrialState.RUNNING and stop == len(trials):
                stop = index  # drawing now (this trial, or another driver's): read it later
        self.read = stop
        return self.tried

    def _alternatives(self, study: Study, trial: FrozenTrial,
                      search_space: dict[str, BaseDistribution],
                      favourite: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The draws tried after the model's favourite, in order, made as they are asked."""
        for _ in range(self.draws - 1):
            yield self.model.sample_relative(study, trial, search_space)
        for _ in range(self.draws):
            yield neighbour(favourite, search_space, self.keep, self._rng, self._random,
                            study, trial)
        for _ in range(self.random_draws):
            yield {name: self._random.sample_independent(study, trial, name, distribution)
                   for name, distribution in search_space.items()}

    # ---------------------------------------------------- the sampler's calls
    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        study = read_once(study)  # the draws below see one list of trials
        favourite = self.model.sample_relative(study, trial, search_space)
        if not favourite:
            return favourite  # the model's start-up draws are independent, at random
        tried = self._tried(study)

        def fill(name: str, distribution: BaseDistribution) -> Any:
            return self.model.sample_independent(study, trial, name, distribution)

        first: dict[str, Any] | None = None
        for draw in chain([favourite], self._alternatives(study, trial, search_space,
                                                          favourite)):
            network, filled = self.identity(draw, fill)
            first = filled if first is None else first
            if network is not None and network not in tried:
                self.filled[trial.number] = filled
                return draw
        self.filled[trial.number] = first or {}
        return favourite

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        filled = self.filled.get(trial.number, {})
        if param_name in filled:
            return filled[param_name]
        return self.model.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.filled.pop(trial.number, None)
        super().after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._random.reseed_rng()
        self._rng = np.random.default_rng()

    def seed_rng(self, seed: int) -> None:
        super().seed_rng(seed)
        seed_sampler(self._random, seed + 3)
        self._rng = np.random.default_rng(seed + 4)
