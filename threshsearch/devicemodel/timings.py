"""What profiling a device measured, before any fit: every round of every timing, and the
figures kept from them (each timing's fastest round: disturbance only ever slows a timing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel.fileformat import DeviceInfo, LayoutRule, RuntimeInfo, Settings
from threshsearch.devicemodel.ops import Op


@dataclass(frozen=True)
class DeviceTimings:
    """What profiling measured, before any fit: each timed operation with its fastest round
    less the call overhead, the calibration networks with theirs, and every round of every
    timing (the call overhead's first, then the operations', then the networks'), with the
    seconds each took in each round (``seconds`` is the whole profile's)."""

    device: DeviceInfo
    runtime: RuntimeInfo
    settings: Settings
    layout: LayoutRule | None  # as probed from the runtime
    operations: list[tuple[Op, float]]
    calibration: list[ArchitectureConfig]
    measured_ms: np.ndarray
    call_overhead_ms: float
    by_round: np.ndarray
    seconds_by_round: np.ndarray
    # Taken again by a later round whatever their figures (every timing in a round over all,
    # the sentinels): the rounds' spread is read from these, the suspects' own being larger
    # by their choice.
    retaken_at_random: np.ndarray
    started: str
    seconds: float
    seed: int

    def kept(self, rounds: int, operations: Sequence[int], networks: int) -> DeviceTimings:
        """These timings as if profiling had taken only the operations at the indices
        ``operations``, its first ``networks`` calibration networks, and either its first
        round alone (``rounds`` 1) or all its rounds: each figure the fastest of the rounds
        kept that took it, and the seconds the profile's less those of the timings dropped (an
        estimate of a smaller profile's: its later rounds would have chosen suspects and
        sentinels of their own)."""
        if networks > len(self.calibration):
            raise ValueError(f"{networks} networks asked, the profile timed "
                             f"{len(self.calibration)} whole")
        if rounds not in (1, len(self.by_round)):
            raise ValueError(f"{rounds} rounds asked: 1 or all {len(self.by_round)}")
        first_network = 1 + len(self.operations)
        columns = [0, *(1 + index for index in operations),
                   *range(first_network, first_network + networks)]
        by_round = self.by_round[:rounds, columns]
        spent = self.seconds_by_round[:rounds, columns]
        overhead_ms, timed, measured_ms = fastest_figures(
            [self.operations[index][0] for index in operations], by_round)
        return replace(self, operations=timed, calibration=self.calibration[:networks],
                       measured_ms=measured_ms, call_overhead_ms=overhead_ms,
                       by_round=by_round, seconds_by_round=spent,
                       retaken_at_random=self.retaken_at_random[columns],
                       seconds=round(self.seconds - float(
                           self.seconds_by_round.sum() - spent.sum()), 3))


def fastest_figures(ops: Sequence[Op], by_round: np.ndarray
                    ) -> tuple[float, list[tuple[Op, float]], np.ndarray]:
    """From every round of every timing (the call overhead's first, then ``ops``', then the
    networks', NaN where a round did not take it): the call overhead, each operation less
    it, and the networks' times, each the fastest of its rounds (disturbance only ever slows a
    timing)."""
    fastest = np.nanmin(by_round, axis=0)
    overhead_ms = float(fastest[0])
    return (overhead_ms,
            [(op, max(0.0, float(ms) - overhead_ms))
             for op, ms in zip(ops, fastest[1:1 + len(ops)], strict=True)],
            fastest[1 + len(ops):])
