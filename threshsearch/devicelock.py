"""A shared/exclusive lock per device of a node, across processes: training holds it shared
for each batch, a latency measurement holds it exclusive, so no trial is timed while another
trains or measures on the same device.

Operating-system file locks (``flock``) on two files in a lock folder: the kernel releases them
when their process dies, so a trial killed while holding the lock never blocks the next. A
measurement first takes the ``gate`` file exclusive, which stops new batches from starting,
then waits for the batches in flight to end; so it waits one batch at most, however many
trials train (no starvation).

A wait is bounded: a holder wedged on the device (a CUDA hang, a stopped process) is named
(its pid, from ``/proc/locks``) after ``warn_after_s``, and after ``give_up_s`` the wait fails
with ``DeviceLockTimeout``, so the trial fails and says why instead of hanging.

The lock folder serves every user of the node: files are made readable and writable by all
(whatever the umask; ``flock`` needs no more than read access) and a folder made here is
sticky and world-writable, as /tmp is. Lock files that are links are refused (a planted link
could otherwise point the lock, and the mode change, at another file). The folder is
``THRESHSEARCH_LOCK_DIR``, else ``<tmp>/threshsearch-locks``; where that one cannot be used
(another user made it closed), a per-user folder is used instead and a notice says that
trials of other users are then not kept apart. Processes that must coordinate need the same
folder: containers with a private /tmp need THRESHSEARCH_LOCK_DIR on a shared mount.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

LOCK_DIR_ENV = "THRESHSEARCH_LOCK_DIR"
WARN_ENV = "THRESHSEARCH_LOCK_WARN_S"
TIMEOUT_ENV = "THRESHSEARCH_LOCK_TIMEOUT_S"
LOCK_ENV_VARS = (LOCK_DIR_ENV, WARN_ENV, TIMEOUT_ENV)
WARN_AFTER_S = 60.0  # a wait this long is reported, naming the holder
GIVE_UP_S = 900.0  # a wait this long fails the trial (well above measurement.max_time_s)
POLL_MAX_S = 0.01  # the longest pause between two tries of a held lock
SHARED_MODE = 0o666  # lock files: any user may open them
SHARED_FOLDER_MODE = 0o1777  # a lock folder made here: anyone may add files, none delete others'

log = logging.getLogger(__name__)


class DeviceLockError(OSError):
    """A lock folder or file that cannot be used, or a lock setting that is invalid."""


class DeviceLockTimeout(RuntimeError):
    """The device stayed held past the lock's ``give_up_s``."""


@dataclass(frozen=True)
class LockSettings:
    folder: str | None = None  # None: the default folder under the temporary folder
    warn_after_s: float = WARN_AFTER_S
    give_up_s: float = GIVE_UP_S

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LockSettings:
        """The settings in ``env``'s THRESHSEARCH_LOCK_* variables (defaults for the rest)."""
        seconds = {}
        for name, default in ((WARN_ENV, WARN_AFTER_S), (TIMEOUT_ENV, GIVE_UP_S)):
            text = env.get(name)
            try:
                seconds[name] = float(text) if text else default
            except ValueError:
                seconds[name] = -1.0
            if not 0 < seconds[name] < float("inf"):
                raise DeviceLockError(f"{name}: {text!r} is invalid; expected a number of "
                                      f"seconds > 0")
        return cls(env.get(LOCK_DIR_ENV) or None, seconds[WARN_ENV], seconds[TIMEOUT_ENV])


def lock_env() -> dict[str, str]:
    """This process's THRESHSEARCH_LOCK_* variables: a driver hands them to its trials."""
    return {name: os.environ[name] for name in LOCK_ENV_VARS if os.environ.get(name)}


def device_key(device: torch.device) -> str:
    """A name for the physical device, the same in every process of the node (CUDA indices
    are not: Ray gives each worker its own CUDA_VISIBLE_DEVICES)."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda-{torch.cuda.get_device_properties(index).uuid}"
    # The host's name too: a lock folder on a file system nodes share must not make one
    # node's measurement pause every CPU trial of the cluster.
    return f"{device.type}-{socket.gethostname()}"


def holders(fd: int) -> list[int]:
    """The pids of the other processes holding a lock on ``fd``'s file (Linux's
    /proc/locks; empty where it cannot be read)."""
    info = os.fstat(fd)
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = {int(fields[4]) for fields in (line.split() for line in lines)
            if len(fields) > 5 and fields[1] == "FLOCK" and fields[5] == device}
    # A holder in another pid namespace (a container sharing the folder) shows as pid 0.
    return sorted(pids - {os.getpid(), 0})


class DeviceLock:
    """The lock of one device of this node. ``paused_s`` adds up the time this process
    waited to train; ``waited_s`` the time it waited to measure; ``notices`` what a trial
    should report about the lock (long waits, a per-user folder)."""

    def __init__(self, key: str, folder: str | Path | None = None,
                 warn_after_s: float = WARN_AFTER_S, give_up_s: float = GIVE_UP_S):
        self.key = key
        self.warn_after_s, self.give_up_s = warn_after_s, give_up_s
        self.notices: list[str] = []
        self.paused_s = 0.0
        self.waited_s = 0.0
        chosen = folder or os.environ.get(LOCK_DIR_ENV)
        if chosen:
            self.folder = Path(chosen)
            try:
                self._open_files()
            except OSError as error:
                raise DeviceLockError(
                    f"device lock folder {self.folder} ({LOCK_DIR_ENV} or the given folder) "
                    f"cannot be used: {error}") from None
            return
        shared = Path(tempfile.gettempdir()) / "threshsearch-locks"
        self.folder = shared
        try:
            self._open_files()
        except OSError as error:
            self.folder = Path(tempfile.gettempdir()) / f"threshsearch-locks-{os.geteuid()}"
            self._open_files(private=True)
            self.notices.append(
                f"device lock folder {shared} cannot be used ({error.strerror or error}); "
                f"this user's {self.folder} is used, so trials of other users on this device "
                f"are not kept apart; set {LOCK_DIR_ENV} to a folder every user can write")
            log.warning(self.notices[-1])

    def _open_files(self, private: bool = False) -> None:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.folder.mkdir()
            os.chmod(self.folder, 0o700 if private else SHARED_FOLDER_MODE)  # not the umask's
        except FileExistsError:
            pass
        if private and self.folder.stat().st_uid != os.geteuid():
            raise DeviceLockError(f"device lock folder {self.folder} belongs to another user; "
                                  f"set {LOCK_DIR_ENV}")
        self._gate = self._open(self.folder / f"{self.key}.gate")
        self._lock = self._open(self.folder / f"{self.key}.lock")

    @staticmethod
    def _open(path: Path) -> int:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(path, flags)
            except FileNotFoundError:
                try:
                    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, SHARED_MODE)
                except FileExistsError:  # another process made it meanwhile
                    fd = os.open(path, flags)
        except OSError as error:
            # O_CREAT is kept for a file that is not there: on an existing file of another
            # user in a sticky folder, Linux's protected_regular refuses it even to read.
            raise DeviceLockError(f"device lock file {path}: {error.strerror}") from None
        info = os.fstat(fd)
        if info.st_uid == os.geteuid() and info.st_mode & 0o777 != SHARED_MODE:
            os.fchmod(fd, SHARED_MODE)  # the umask took some of it away
        return fd

    def _acquire(self, fd: int, operation: int, name: str) -> None:
        """flock ``fd``, trying again until it is free; a warning naming the holders after
        ``warn_after_s``, DeviceLockTimeout after ``give_up_s``."""
        start = time.monotonic()
        pause, warned = 0.0005, False
        while True:
            try:
                fcntl.flock(fd, operation | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            waited = time.monotonic() - start
            if waited >= self.give_up_s or (waited >= self.warn_after_s and not warned):
                pids = holders(fd)
                who = (f"pid {', '.join(map(str, pids))}" if pids
                       else "a process this node cannot name")
                where = self.folder / f"{self.key}.{name}"
                if waited >= self.give_up_s:
                    raise DeviceLockTimeout(
                        f"device {self.key} held by {who} for over {self.give_up_s:g} s "
                        f"({where}); is it wedged on the device? End it, or raise "
                        f"{TIMEOUT_ENV}")
                warned = True
                self.notices.append(f"waited {waited:.0f} s for device {self.key}, held by "
                                    f"{who} ({where})")
                log.warning(self.notices[-1])
            time.sleep(pause)
            pause = min(2 * pause, POLL_MAX_S)

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Held around one training step: many at once, none during a measurement."""
        start = time.perf_counter()
        self._acquire(self._gate, fcntl.LOCK_EX, "gate")
        try:
            self._acquire(self._lock, fcntl.LOCK_SH, "lock")
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
        self._acquire(self._gate, fcntl.LOCK_EX, "gate")
        try:
            self._acquire(self._lock, fcntl.LOCK_EX, "lock")
            self.waited_s += time.perf_counter() - start
            try:
                yield
            finally:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._gate, fcntl.LOCK_UN)


@cache
def device_lock(key: str, settings: LockSettings = LockSettings()) -> DeviceLock:
    """This process's one lock for a device: two in one process would be two holders, and a
    process could then wait on itself."""
    return DeviceLock(key, settings.folder, settings.warn_after_s, settings.give_up_s)
