"""The per-epoch record each trial keeps in the study's storage (its learning curve), and the
rung evidence an early-stopping scheduler rebuilds from it when a study resumes.

A trial's user attribute ``learning_curve`` holds one entry per reported epoch with the
values the trial reported then (validation accuracy, losses, epoch time and throughput so
far); its cheap metrics (profile, latency) are user attributes of their own, written with its
first report. The report's learning curves and the dashboard read the same record (a running
trial's epochs within ``CURVE_WRITE_S`` of its last write wait for its next epoch or end).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from threshsearch.search.objectives import CHEAP_METRICS
from threshsearch.search.pareto import minimised
from threshsearch.search.storage import retried_numbers, set_user_attrs

LEARNING_CURVE = "learning_curve"
CURVE_WRITE_S = 1.0  # a running trial's curve is written at most this often
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
    trial in the storage with its first epoch (and an attempt's first, after a restart),
    then with an epoch that comes ``every_s`` or more after the last write (so that the
    driver's writes stay bounded however fast epochs come: at 64 workers and short epochs
    these writes were a tenth of its event loop, py-spy, benchmarks/scale.py), and whole
    when the trial ends (``finish``: in the trial's last write). An epoch held back waits
    for the next epoch or the end."""

    def __init__(self, every_s: float = CURVE_WRITE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s, self.clock = every_s, clock
        self.curves: dict[str, list[dict[str, Any]]] = {}
        self.restarts: dict[str, int] = {}
        self.written: dict[str, float] = {}  # trial id -> when its curve was last written
        self.unwritten: dict[str, dict[str, Any]] = {}  # trial id -> what the storage lacks

    def _add(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]
             ) -> dict[str, Any]:
        """Add the result's epoch to the trial's curve (once); the attributes that changes,
        none where it adds nothing. An epoch at or before the last one is Tune running the
        trial again (its worker died) under the same id: the curve starts again rather than
        splice two attempts."""
        entry = curve_entry(result)
        curve = self.curves.setdefault(trial_id, [])
        if entry is None or (curve and curve[-1] == entry):  # the same report, seen again
            return {}
        if curve and curve[-1]["epoch"] >= entry["epoch"]:
            curve.clear()
            self.written.pop(trial_id, None)  # the new attempt's first epoch: written now
            self.restarts[trial_id] = self.restarts.get(trial_id, 0) + 1
            trial.set_user_attr(RESTARTS, self.restarts[trial_id])
        # Known before training: written with the first epoch.
        cheap = {} if curve else {key: result[key] for key in CHEAP_METRICS if key in result}
        curve.append(entry)
        return {**cheap, LEARNING_CURVE: curve}

    def record(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]) -> None:
        """Add the result's epoch to the trial's curve, and write the curve when it has its
        first epoch or was last written ``every_s`` ago."""
        changed = self._add(trial_id, trial, result)
        if not changed:
            return
        changed = {**self.unwritten.pop(trial_id, {}), **changed}
        now = self.clock()
        if now - self.written.get(trial_id, -math.inf) < self.every_s:
            self.unwritten[trial_id] = changed
            return
        set_user_attrs(trial, changed)
        self.written[trial_id] = now

    def finish(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any]
               ) -> dict[str, Any]:
        """Add the trial's last result, forget the trial, and return what of its curve the
        storage still lacks, for the trial's last write."""
        changed = {**self.unwritten.get(trial_id, {}), **self._add(trial_id, trial, result)}
        self.forget(trial_id)
        return changed

    def forget(self, trial_id: str) -> None:
        """Drop the record of a trial that ended."""
        self.curves.pop(trial_id, None)
        self.restarts.pop(trial_id, None)
        self.written.pop(trial_id, None)
        self.unwritten.pop(trial_id, None)


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
