"""The device lock across processes: measurements never overlap each other or training, and a
holder that dies releases it."""

import multiprocessing
import os
import signal
import time

from threshsearch.devicelock import DeviceLock


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
    context = multiprocessing.get_context("spawn")
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
    context = multiprocessing.get_context("spawn")
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
