"""Early-stopping schedulers for Ray Tune, chosen by the space's ``early_stopping.kind``:
``pareto`` (successive halving ranked on every objective), ``asha`` (the same, ranked on
validation accuracy alone) and ``none`` (first in, first out; all three choose the next trial
to run as ``fifo.LiveFIFOScheduler`` does). Imported by the driver only: it imports Ray."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from optuna.trial import FrozenTrial
from ray.tune.schedulers import TrialScheduler

from threshsearch.search.evidence import rung_evidence
from threshsearch.search.objectives import METRICS
from threshsearch.search.schedulers.fifo import LiveFIFOScheduler
from threshsearch.search.schedulers.pareto import ParetoSuccessiveHalving, rung_milestones
from threshsearch.search.space import SearchSpace

__all__ = ["EarlyStopper", "LiveFIFOScheduler", "ParetoSuccessiveHalving", "make_early_stopper",
           "rung_milestones"]


@dataclass
class EarlyStopper:
    scheduler: TrialScheduler
    stop_reasons: dict[str, str] = field(default_factory=dict)  # Ray trial id -> why
    evidence: int = 0  # rung records rebuilt from the storage


def ranked_objectives(space: SearchSpace) -> tuple[list[str], list[str]]:
    """The metrics (and directions) a scheduler of this space ranks trials on."""
    if space.early_stopping.kind == "pareto":
        return space.metric_names, space.directions
    # asha: the first objective reported per epoch, else validation accuracy
    for metric, direction in zip(space.metric_names, space.directions, strict=True):
        if not METRICS[metric].cheap:
            return [metric], [direction]
    return ["val_accuracy"], ["maximize"]


def make_early_stopper(space: SearchSpace, trials: Sequence[FrozenTrial]) -> EarlyStopper:
    """The space's scheduler, its rungs rebuilt from the trials already in the study."""
    early = space.early_stopping
    if early.kind == "none":
        return EarlyStopper(LiveFIFOScheduler())
    metrics, directions = ranked_objectives(space)
    milestones = rung_milestones(early.grace_epochs, early.reduction_factor, space.train.epochs)
    evidence = rung_evidence(trials, metrics, directions, milestones)
    scheduler = ParetoSuccessiveHalving(
        metrics, directions, space.train.epochs, early.grace_epochs, early.reduction_factor,
        evidence, label=early.kind if early.kind == "pareto" else f"asha on {metrics[0]}")
    return EarlyStopper(scheduler, scheduler.stop_reasons, len(evidence))
