"""The device lock across processes: measurements never overlap each other or training, and a
holder that dies releases it."""

import multiprocessing
import os
import signal
import stat
import time

import pytest

from threshsearch.devicelock import DeviceLock


def processes():
    """Processes forked from one server that has imported the lock's module (torch among its
    imports) once, rather than each spawned process importing it again: the same separate
    processes and kernel locks, seconds fewer each."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["threshsearch.devicelock", __name__])
    return context


def _measure(folder: str, log, rounds: int) -> None:
    lock = DeviceLock("cpu", folder)
    for _ in range(rounds):
        with lock.exclusive():
            start = time.monotonic()
            time.sleep(0.02)
            log.put(("exclusive", os.getpid(), start, time.monotonic()))


def _train(folder: str, log, steps: int) -> None:
    lock = DeviceLock("cpu", folder)
    for _ in range(steps):
        with lock.shared():
            start = time.monotonic()
            time.sleep(0.005)
            log.put(("shared", os.getpid(), start, time.monotonic()))


def _hold_and_hang(folder: str, ready) -> None:
    lock = DeviceLock("cpu", folder)
    with lock.exclusive():
        ready.set()
        time.sleep(600)


def test_measurements_never_overlap_training_or_each_other(tmp_path):
    context = processes()
    log = context.Queue()
    workers = [context.Process(target=_measure, args=(str(tmp_path), log, 5)),
               context.Process(target=_measure, args=(str(tmp_path), log, 5)),
               context.Process(target=_train, args=(str(tmp_path), log, 60)),
               context.Process(target=_train, args=(str(tmp_path), log, 60))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    records = [log.get(timeout=10) for _ in range(5 + 5 + 60 + 60)]
    exclusive = [r for r in records if r[0] == "exclusive"]
    assert len(exclusive) == 10
    for kind, pid, start, end in records:
        for _, other_pid, other_start, other_end in exclusive:
            if (kind, pid, start) == ("exclusive", other_pid, other_start):
                continue
            assert end <= other_start or start >= other_end, "a measurement overlapped"
    # Trainers do share the device with each other.
    shared = sorted((r for r in records if r[0] == "shared"), key=lambda r: r[2])
    assert len({r[1] for r in shared}) == 2


def test_a_holder_killed_mid_measurement_does_not_block_the_next(tmp_path):
    context = processes()
    ready = context.Event()
    holder = context.Process(target=_hold_and_hang, args=(str(tmp_path), ready))
    holder.start()
    assert ready.wait(60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(30)
    log = context.Queue()
    waiter = context.Process(target=_measure, args=(str(tmp_path), log, 1))
    waiter.start()
    assert log.get(timeout=60)[0] == "exclusive", "the lock of a dead process was not released"
    waiter.join(60)


def _hold_shared_and_hang(folder: str, ready) -> None:
    lock = DeviceLock("cpu", folder)
    with lock.shared():  # a trainer wedged inside a step
        ready.set()
        time.sleep(600)


def test_a_wedged_holder_is_named_then_the_wait_fails_instead_of_hanging(tmp_path, caplog):
    from threshsearch.devicelock import DeviceLockTimeout

    context = processes()
    ready = context.Event()
    holder = context.Process(target=_hold_shared_and_hang, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(60)
        lock = DeviceLock("cpu", tmp_path, warn_after_s=0.2, give_up_s=1.0)
        with (caplog.at_level("WARNING"), pytest.raises(DeviceLockTimeout) as failure,
              lock.exclusive()):
            pytest.fail("measured while a trainer held the device")
        message = str(failure.value)
        assert f"pid {holder.pid}" in message and "THRESHSEARCH_LOCK_TIMEOUT_S" in message
        assert "\n" not in message
        assert any(f"pid {holder.pid}" in notice for notice in lock.notices)
        assert f"pid {holder.pid}" in caplog.text
        with lock.shared():
            pass  # the failed wait let go of the gate: training goes on
    finally:
        holder.kill()
        holder.join(30)


def test_lock_files_and_folder_serve_every_user_whatever_the_umask(tmp_path):
    folder = tmp_path / "locks"
    old = os.umask(0o077)
    try:
        DeviceLock("cpu", folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o1777, "sticky and world-writable"
    for name in ("cpu.gate", "cpu.lock"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666


def test_a_lock_file_planted_as_a_link_is_refused(tmp_path):
    from threshsearch.devicelock import DeviceLockError

    victim = tmp_path / "victim"
    victim.write_text("secret")
    victim.chmod(0o600)
    (tmp_path / "cpu.gate").symlink_to(victim)
    with pytest.raises(DeviceLockError, match=r"cpu\.gate"):
        DeviceLock("cpu", tmp_path)
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600


def test_an_unusable_default_folder_falls_back_to_one_per_user(tmp_path, monkeypatch):
    import threshsearch.devicelock as devicelock

    monkeypatch.delenv(devicelock.LOCK_DIR_ENV, raising=False)
    monkeypatch.setattr(devicelock.tempfile, "gettempdir", lambda: str(tmp_path))
    (tmp_path / "threshsearch-locks").write_text("not a folder")  # as another user's would be
    lock = DeviceLock("cpu")
    assert lock.folder == tmp_path / f"threshsearch-locks-{os.geteuid()}"
    assert "THRESHSEARCH_LOCK_DIR" in lock.notices[0]
    monkeypatch.setenv(devicelock.LOCK_DIR_ENV, str(tmp_path / "threshsearch-locks"))
    with pytest.raises(devicelock.DeviceLockError, match="THRESHSEARCH_LOCK_DIR"):
        DeviceLock("cpu")


def test_lock_settings_come_from_the_environment_the_driver_passes_on(monkeypatch):
    from threshsearch.devicelock import DeviceLockError, LockSettings, lock_env

    monkeypatch.setenv("THRESHSEARCH_LOCK_DIR", "/shared/locks")
    monkeypatch.setenv("THRESHSEARCH_LOCK_WARN_S", "5")
    monkeypatch.delenv("THRESHSEARCH_LOCK_TIMEOUT_S", raising=False)
    passed = lock_env()
    assert passed == {"THRESHSEARCH_LOCK_DIR": "/shared/locks", "THRESHSEARCH_LOCK_WARN_S": "5"}
    settings = LockSettings.from_env(passed)
    assert (settings.folder, settings.warn_after_s) == ("/shared/locks", 5.0)
    with pytest.raises(DeviceLockError, match="THRESHSEARCH_LOCK_TIMEOUT_S: 'soon' is invalid"):
        LockSettings.from_env({"THRESHSEARCH_LOCK_TIMEOUT_S": "soon"})


def test_an_existing_lock_file_of_another_user_opens_without_creating(tmp_path, monkeypatch):
    """Linux's protected_regular refuses O_CREAT on another user's file in a sticky folder,
    even to read it: an existing lock file must be opened without it."""
    from threshsearch import devicelock

    DeviceLock("gpu0", tmp_path)  # the files exist, as another user would have left them
    real_open = os.open

    def protected_regular(path, flags, *mode):
        if flags & os.O_CREAT and os.path.exists(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *mode)

    monkeypatch.setattr(devicelock.os, "open", protected_regular)
    lock = DeviceLock("gpu0", tmp_path)
    with lock.exclusive():
        pass
