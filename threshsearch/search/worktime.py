"""Where a worker's time goes: one trial's account phase by phase, and a run's sum of them.

A trial's worker clocks each phase of its life (``WorkerClock``) and sends the account with
every report; the driver adds the time the trial held a worker slot outside the trial
function (actor start, scheduling, waiting for the driver) and sums the accounts of a run
(``WorkTally``), so that a search can say what share of its workers' time trained.
Imported by Ray workers: plain Python only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

WORKER_TIME = "worker_time"  # the account's key in a trial's reports and user attrs
WORKER_S = "worker_s"  # the trial function's wall time, from its start to its last report
OUTSIDE = "outside"  # slot time outside the trial function: actor start, scheduling, driver

# The phases, in the order a trial meets them; together they make up the worker's wall time.
PHASES: dict[str, str] = {
    "setup": "seeding, parsing the spec",
    "data": "fetching the dataset onto the device",
    "pricing": "profiling the network (params, MAdd, memory traffic)",
    "build": "building the model and its optimiser",
    "latency": "measuring latency, waiting for the device included",
    "training": "training passes",
    "evaluation": "validation passes",
    "paused": "paused while a neighbour measured latency",
    "reporting": "handing results to the driver",
    "bookkeeping": "between passes: schedules, checkpoints, callbacks",
}
TRAINING_PHASES = ("training", "evaluation")


class WorkerClock:
    """Seconds per phase of one trial, from the moment it is made."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def begin_fit(self) -> None:
        """Training starts: from here ``fit_so_far`` splits the time into its parts."""
        self._fit = (time.perf_counter(), dict(self.seconds))

    def fit_so_far(self, epochs: Iterable[Any]) -> None:
        """Split the time since ``begin_fit`` into the passes (from the epochs' own
        timings), the reports made meanwhile and the bookkeeping between them."""
        started, base = self._fit
        elapsed = time.perf_counter() - started
        passes = {"training": 0.0, "evaluation": 0.0, "paused": 0.0}
        for epoch in epochs:
            passes["training"] += epoch.epoch_time_s
            passes["evaluation"] += epoch.eval_time_s
            passes["paused"] += epoch.paused_s
        for phase, seconds in passes.items():
            self.seconds[phase] = base[phase] + seconds
        reporting = self.seconds["reporting"] - base["reporting"]
        self.seconds["bookkeeping"] = base["bookkeeping"] + max(
            0.0, elapsed - sum(passes.values()) - reporting)

    def account(self) -> dict[str, float]:
        """The phases so far and the wall time they add up to."""
        return {**self.seconds, WORKER_S: time.perf_counter() - self.started}


def outside_s(account: dict[str, Any] | None, slot_s: float) -> float:
    """Of a trial's time in its worker slot (as the driver saw it), what passed outside the
    trial function: actor start, scheduling, the driver's own work."""
    return max(0.0, slot_s - float((account or {}).get(WORKER_S) or 0.0))


class WorkTally:
    """A run's worker time: the trials' accounts summed, plus the time each held a worker
    slot outside its trial function (its wall time as the driver saw it, less the account)."""

    def __init__(self) -> None:
        self.seconds = dict.fromkeys([*PHASES, OUTSIDE], 0.0)

    def add(self, account: dict[str, Any] | None, slot_s: float) -> None:
        account = account or {}
        for phase in PHASES:
            self.seconds[phase] += float(account.get(phase) or 0.0)
        self.seconds[OUTSIDE] += outside_s(account, slot_s)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())

    def shares(self) -> dict[str, float]:
        total = self.total_s
        return {phase: seconds / total for phase, seconds in self.seconds.items()} \
            if total else {}

    def training_share(self) -> float:
        shares = self.shares()
        return sum(shares.get(phase, 0.0) for phase in TRAINING_PHASES)

    def describe(self) -> str:
        """One line: the phases by share, largest first, the negligible left out."""
        shares = sorted(self.shares().items(), key=lambda item: -item[1])
        return " · ".join(f"{phase} {share:.1%}" for phase, share in shares
                          if share >= 0.0005)
