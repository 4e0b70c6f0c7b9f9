"""A busy share sampled in a thread (the GPU check's part 3): the GPU's utilisation read every
``period_s`` through ``torch.cuda.utilization`` where pynvml is installed, else nvidia-smi,
and averaged over a window of wall-clock time."""

from __future__ import annotations

import importlib.util
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

import torch


class BusySampler:
    """Reads a busy percentage every ``period_s`` in a thread, with wall-clock stamps."""

    def __init__(self, read: Callable[[], float], period_s: float):
        self.read, self.period_s = read, period_s
        self.samples: list[tuple[float, float]] = []
        self.error: str | None = None  # why sampling stopped early, if it did
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.time(), self.read()))
            except Exception as error:  # a broken reader ends sampling, not the run
                self.error = " ".join(f"{type(error).__name__}: {error}".split())[:200]
                return
            self._stop.wait(self.period_s)

    def __enter__(self) -> BusySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

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
