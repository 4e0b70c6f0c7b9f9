"""The GPU check's sizes, its table rows and its time budget: what its parts share
(``benchmarks/gpu_check.py`` runs them; ``benchmarks/gpu_inside.py`` is parts 2 and 3)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Sizes:
    device: str
    total_s: float  # the whole run's budget; each part's cap is cut to what is left of it
    bench_batch: int
    bench_repeats: int  # interleaved repetitions per run_bench call
    bench_calls: int  # run_bench calls, as many as the cap allows
    bench_cap_s: float
    network: dict[str, Any]  # the one-point space's fixed parameters over ThreshNet-79
    trial_epochs: int
    trial_rounds: int  # part 2's trials inside the search, each between two outside
    trial_cap_s: float  # part 2, the outside trainings included
    # (gpus per trial, trials at once, CUDA graph replays timed)
    latency_settings: tuple[tuple[float, int, bool], ...]
    latency_trials: int
    latency_epochs: int
    latency_max_time_s: float
    latency_cap_s: float  # per run; two runs per setting
    ray_cpus: int
    trial_cpus: int  # part 2's trial, and its twin outside the search
    threads: int | None  # torch threads of this process (None: torch's default)
    sample_period_s: float = 0.2


GPU = Sizes("cuda", total_s=450, bench_batch=64, bench_repeats=3, bench_calls=4,
            bench_cap_s=60, network={}, trial_epochs=60, trial_rounds=3, trial_cap_s=180,
            # The CUDA-graph setting first: a run over its budget starves the last.
            latency_settings=((1, 1, True), (1, 1, False), (0.5, 2, False)), latency_trials=6,
            latency_epochs=2, latency_max_time_s=2.0, latency_cap_s=40, ray_cpus=4,
            trial_cpus=2, threads=None)
# Caps far above the smoke's own time (about a minute on two idle cores): a loaded machine
# (where fresh Ray workers take a minute to import torch) makes it slow, not incomplete. One
# latency setting of one trial per run: the smoke checks part 4's code path, not the
# figures of both settings.
SMOKE = Sizes("cpu", total_s=1200, bench_batch=4, bench_repeats=1, bench_calls=1,
              bench_cap_s=120, network={"num_stages": 3, "depth": 1, "growth": 8},
              trial_epochs=2, trial_rounds=2, trial_cap_s=240,
              latency_settings=((0, 1, False),),
              latency_trials=1, latency_epochs=1, latency_max_time_s=0.3, latency_cap_s=180,
              ray_cpus=2, trial_cpus=1, threads=1)


@dataclass
class Row:
    part: int
    measure: str
    value: float | None  # None: not measured, the note says why
    unit: str  # "img/s", "x" (a ratio) or "share" (shown as %)
    target: str = ""
    note: str = ""


def failure_note(error: BaseException) -> str:
    """An error as one line of a table cell: its type and message, at most 300 characters."""
    return " ".join(f"{type(error).__name__}: {error}".split())[:300]


def now() -> float:
    """The clock every cap is read on (a seam for the tests)."""
    return time.perf_counter()


class Budget:
    """The run's time budget: each part gets its own cap or what is left, if less."""

    def __init__(self, total_s: float):
        self.deadline = now() + total_s

    def cap(self, own_s: float) -> float:
        return max(0.0, min(own_s, self.deadline - now()))
