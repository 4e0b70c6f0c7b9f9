"""The named confirmation protocols (which recipe, how many epochs and seeds, on which
dataset, against which baselines) and the seeds a confirmation trains with."""

from __future__ import annotations

from dataclasses import dataclass, replace

import optuna

from threshsearch.errors import UserError
from threshsearch.search.baselines import PAPER_BASELINES
from threshsearch.train import RECIPES

DEFAULT_SEEDS = 3
# Confirmation seeds are the study's seed plus SEED_OFFSET + k (k = 0, 1, ...): far above
# the search's own (the study's seed plus a trial number; baselines: the study's seed), so
# a confirmation never repeats a search run, and the first k seeds are the same whatever
# the number asked for, so asking for more seeds later trains only the new ones.
SEED_OFFSET = 1_000_000


@dataclass(frozen=True)
class Protocol:
    """``recipe`` None: each network under the recipe it was searched with (a baseline under
    the study's); ``dataset`` None: any study's; ``baselines`` None: the study's trained
    baselines."""

    name: str
    description: str
    recipe: str | None = None
    epochs: int | None = None  # None: the recipe's own
    seeds: int = DEFAULT_SEEDS
    dataset: str | None = None
    baselines: tuple[str, ...] | None = None

    @property
    def key(self) -> str:
        """What makes two confirmations' records comparable: the recipe and epochs (seeds
        are not part of it, so more seeds extend the same records)."""
        recipe = f"recipe {self.recipe}" if self.recipe else "the search's recipe"
        return recipe + (f", {self.epochs} epochs" if self.epochs else "")

    def with_options(self, seeds: int | None = None, recipe: str | None = None,
                     epochs: int | None = None, baselines: tuple[str, ...] | None = None
                     ) -> Protocol:
        """The protocol with the CLI's overrides (None: keep the protocol's)."""
        if seeds is not None and seeds < 1:
            raise UserError(f"--seeds: {seeds} is invalid; expected an integer >= 1")
        if epochs is not None and epochs < 1:
            raise UserError(f"--epochs: {epochs} is invalid; expected an integer >= 1")
        if recipe is not None and recipe not in RECIPES:
            raise UserError(f"--recipe: {recipe!r} is not a recipe; expected one of "
                            f"{', '.join(RECIPES)}")
        changes = {"seeds": seeds, "recipe": recipe, "epochs": epochs, "baselines": baselines}
        return replace(self, **{key: value for key, value in changes.items()
                                if value is not None})


def _paper(dataset: str, recipe: str, epochs: int) -> Protocol:
    return Protocol(
        name=f"paper-{dataset}",
        description=f"the paper's {dataset} recipe ({epochs} epochs), the paper's four models",
        recipe=recipe, dataset=dataset, baselines=PAPER_BASELINES)


PROTOCOLS: dict[str, Protocol] = {
    "search": Protocol(name="search", description="each network under the recipe the "
                                                  "search trained it with"),
    "paper-cifar10": _paper("cifar10", "cifar10", RECIPES["cifar10"].epochs),
    "paper-cifar100": _paper("cifar100", "cifar100", RECIPES["cifar100"].epochs),
    "paper-svhn": _paper("svhn", "svhn", RECIPES["svhn"].epochs),
}


def get_protocol(name: str, study_dataset: str) -> Protocol:
    """The named protocol, checked against the study's dataset (a network is built for its
    study's classes, so a protocol for another dataset cannot retrain it)."""
    if name not in PROTOCOLS:
        raise UserError(f"--protocol: {name!r} is not a protocol; expected one of "
                        f"{', '.join(PROTOCOLS)}")
    protocol = PROTOCOLS[name]
    if protocol.dataset is not None and protocol.dataset != study_dataset:
        fitting = [other for other, p in PROTOCOLS.items()
                   if p.dataset in (None, study_dataset)]
        raise UserError(f"--protocol: {name} is for {protocol.dataset}, but the study "
                        f"searched {study_dataset}; expected one of {', '.join(fitting)}")
    return protocol


def study_seed(study: optuna.Study) -> int:
    """The seed the study was run with: its user attribute, or, for a study stored before
    that was kept, what its trials' seeds (the study's seed plus the trial number) say."""
    if isinstance(study.user_attrs.get("seed"), int):
        return study.user_attrs["seed"]
    seeds = [trial.user_attrs["seed"] - trial.number for trial in study.get_trials(deepcopy=False)
             if isinstance(trial.user_attrs.get("seed"), int)]
    return min(seeds, default=0)


def confirmation_seeds(base_seed: int, count: int) -> list[int]:
    """The ``count`` seeds of a confirmation of a study run with ``base_seed``."""
    return [base_seed + SEED_OFFSET + k for k in range(count)]
