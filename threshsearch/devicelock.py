"""A shared/exclusive lock per device of a node, across processes: training holds it shared
for each batch, a latency measurement holds it exclusive, so no trial is timed while another
trains or measures on the same device.

Operating-system file locks (``flock``) on two files under the node's temporary folder: the
kernel releases them when their process dies, so a trial killed while holding the lock never
blocks the next. A measurement first takes the ``gate`` file exclusive, which stops new
batches from starting, then waits for the batches in flight to end; so it waits one batch
at most, however many trials train (no starvation).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import torch

LOCK_DIR_ENV = "THRESHSEARCH_LOCK_DIR"


def device_key(device: torch.device) -> str:
    """A name for the physical device, the same in every process of the node (CUDA indices
    are not: Ray gives each worker its own CUDA_VISIBLE_DEVICES)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda-{torch.cuda.get_device_properties(index).uuid}"
    return device.type


class DeviceLock:
    """The lock of one device of this node. ``paused_s`` adds up the time this process
    waited to train; ``waited_s`` the time it waited to measure."""

    def __init__(self, key: str, folder: str | Path | None = None):
        folder = Path(folder or os.environ.get(LOCK_DIR_ENV)
                      or Path(tempfile.gettempdir()) / "threshsearch-locks")
        folder.mkdir(parents=True, exist_ok=True)
        self.key = key
        self._gate = os.open(folder / f"{key}.gate", os.O_RDWR | os.O_CREAT, 0o666)
        self._lock = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        self.paused_s = 0.0
        self.waited_s = 0.0

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held around one training step: many at once, none during a measurement."""
        start = time.perf_counter()
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)
        self.paused_s += time.perf_counter() - start
        try:
            yield
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Held around a measurement: alone on the device."""
        start = time.perf_counter()
        fcntl.flock(self._gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self.waited_s += time.perf_counter() - start
            try:
                yield
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)


@cache
def device_lock(key: str) -> DeviceLock:
    """This process's one lock for a device: two in one process would be two holders, and a
    process could then wait on itself."""
    return DeviceLock(key)
