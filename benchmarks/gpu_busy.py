"""A busy share sampled in a thread (the GPU check's part 3): the GPU's utilisation read every
``period_s`` through ``torch.cuda.utilization`` where pynvml is installed, else nvidia-smi,
and averaged over a window of wall-clock time."""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable

import torch

from benchmarks.periodic import Periodic


class BusySampler(Periodic):
    """Reads a busy percentage every ``period_s`` in a thread, with wall-clock stamps; a
    broken reader ends sampling (``error`` says why)."""

    def __init__(self, read: Callable[[], float], period_s: float):
        super().__init__(period_s, at_start=True, at_exit=False)
        self.read = read
        self.samples: list[tuple[float, float]] = []

    def _tick(self) -> None:
        self.samples.append((time.time(), self.read()))

    def share(self, start: float, end: float) -> float | None:
        """The mean busy share of the samples taken from ``start`` to ``end``."""
        inside = [value for stamp, value in self.samples if start <= stamp <= end]
        return statistics.mean(inside) / 100 if inside else None


def _nvidia_smi() -> float:
    out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                          "--format=csv,noheader,nounits", "--id=0"],
                         capture_output=True, text=True, timeout=5, check=True).stdout
    return float(out.split()[0])


def busy_reader(smoke: bool) -> tuple[Callable[[], float] | None, str]:
    """How GPU 0's busy percentage is read, and its name (None: no way to read it)."""
    if smoke:
        return (lambda: min(100.0, 100 * os.getloadavg()[0] / (os.cpu_count() or 1)),
                "smoke stand-in: the machine's 1-minute load per core (no GPU)")
    if importlib.util.find_spec("pynvml") is not None:
        return (lambda: float(torch.cuda.utilization(0)),
                "torch.cuda.utilization (pynvml), GPU 0")
    if shutil.which("nvidia-smi"):
        return _nvidia_smi, "nvidia-smi --query-gpu=utilization.gpu, GPU 0"
    return None, "none: neither pynvml nor nvidia-smi is installed"
