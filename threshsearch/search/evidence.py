"""The per-epoch record each trial keeps in the study's storage (its learning curve), and the
rung evidence an early-stopping scheduler rebuilds from it when a study resumes.

A trial's user attribute ``learning_curve`` holds one entry per reported epoch with the
values the trial reported then (validation accuracy, losses, epoch time and throughput so
far); its cheap metrics (profile, latency) are user attributes of their own, written with its
first report. The report's learning curves and the dashboard read the same record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from threshsearch.search.objectives import CHEAP_METRICS
from threshsearch.search.pareto import minimised
from threshsearch.search.storage import retried_numbers, set_user_attrs

LEARNING_CURVE = "learning_curve"
RESTARTS = "restarts"  # user attr: how often Tune re-ran the trial (its worker died)
CURVE_FIELDS = ("epoch", "train_loss", "val_loss", "val_accuracy", "val_top5", "epoch_time_s",
                "train_images_per_s")


def curve_entry(result: dict[str, Any]) -> dict[str, Any] | None:
    """The learning-curve entry of one trial report; None for a report of no epoch (an
    infeasible or failed trial's)."""
    if not isinstance(result.get("epoch"), int):
        return None
    return {key: result[key] for key in CURVE_FIELDS if key in result}


class LearningCurves:
    """The learning curves of the trials running now, by Ray trial id, each written to its
    trial in the storage as its epochs come."""

    def __init__(self) -> None:
        self.curves: dict[str, list[dict[str, Any]]] = {}
        self.restarts: dict[str, int] = {}

    def record(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """Add the result's epoch to the trial's stored learning curve (once). An epoch at or
        before the last one is Tune running the trial again (its worker died) under the same
        id: the curve starts again rather than splice two attempts."""
        entry = curve_entry(result)
        curve = self.curves.setdefault(trial_id, [])
        if entry is None or (curve and curve[-1] == entry):  # the same report, seen again
            return
        if curve and curve[-1]["epoch"] >= entry["epoch"]:
            curve.clear()
            self.restarts[trial_id] = self.restarts.get(trial_id, 0) + 1
            trial.set_user_attr(RESTARTS, self.restarts[trial_id])
        # Known before training: written with the first epoch.
        cheap = {} if curve else {key: result[key] for key in CHEAP_METRICS if key in result}
        curve.append(entry)
        set_user_attrs(trial, {**cheap, LEARNING_CURVE: curve})

    def forget(self, trial_id: str) -> None:
        """Drop the record of a trial that ended."""
        self.curves.pop(trial_id, None)
        self.restarts.pop(trial_id, None)


def objective_vector(values: dict[str, Any], metrics: Sequence[str],
                     directions: Sequence[str]) -> tuple[float, ...] | None:
    """The objectives in ``values``, minimised; None when one is missing."""
    found = [values.get(metric) for metric in metrics]
    if any(not isinstance(value, int | float) for value in found):
        return None
    return minimised(found, directions)


@dataclass(frozen=True)
class RungRecord:
    key: str  # who recorded it: "trial-<number>" for evidence from the storage
    epoch: int
    values: tuple[float, ...]  # minimised objectives at that epoch


def rung_evidence(trials: Sequence[FrozenTrial], metrics: Sequence[str],
                  directions: Sequence[str], milestones: Sequence[int]) -> list[RungRecord]:
    """What every finished trial showed at each rung it reached, as it showed it then. A
    trial still running (perhaps of a driver that died, and soon to be retried) or one that
    a retry re-runs is left out: the re-run will record its own evidence, as it would have
    once in an uninterrupted study, and is never ranked against its own earlier attempt."""
    superseded = retried_numbers(list(trials))
    records = []
    for trial in trials:
        if trial.number in superseded or not trial.state.is_finished():
            continue
        cheap = {key: value for key, value in trial.user_attrs.items() if key in CHEAP_METRICS}
        for entry in trial.user_attrs.get(LEARNING_CURVE) or []:
            if entry.get("epoch") not in milestones:
                continue
            vector = objective_vector({**cheap, **entry}, metrics, directions)
            if vector is not None:
                records.append(RungRecord(f"trial-{trial.number}", entry["epoch"], vector))
    return records
