"""One trial's life: build the candidate, price it (profiler and latency), check the
constraints, train it with a report per epoch, and report the objectives.

Latency is measured only when an objective or constraint asks for it, with the device to
itself: where other trials may use the device (a CPU, a GPU shared by fractions), the trial
takes its node's device lock exclusive while it measures, and holds it shared for all its
other work on the device (fetching the data, pricing, building, each training step with its
batch, each evaluation with the epoch's bookkeeping), letting go only where it waits anyway
(between steps, while it reports), so no trial is timed while another does anything on the
same device (``threshsearch.devicelock``); a trial with a whole GPU needs no lock. Each
report carries the worker-time account so far (``search.worktime``).

``evaluate_candidate`` is plain Python with a ``report`` callback, so it runs and is tested
without Ray; ``ray_trainable`` is the same thing as a Ray Tune function trainable.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from threshsearch.config import ArchitectureConfig
from threshsearch.data import ImageDataset, load_dataset
from threshsearch.devicelock import DeviceLock, LockSettings, device_key, device_lock
from threshsearch.latency import LatencySettings, estimate_latency
from threshsearch.measure import device_name, resolve_device
from threshsearch.nn import build_model
from threshsearch.search.reports import (
    BASELINE,
    COMPUTE_S,
    DONE,
    FAILED,
    INFEASIBLE,
    LATENCY,
    MEASURE_LATENCY,
    MEASURE_S,
    NODE,
    PAUSED_S,
    PROFILED,
    THROUGHPUT,
    WARNINGS,
    Report,
    profiled_metrics,
    violated_constraint,
)
from threshsearch.search.worktime import WORKER_TIME, WorkerClock
from threshsearch.train import EpochMetrics, Recipe, Trainer, seed_everything

SEARCH_MEASUREMENT = "search, device to itself"


@dataclass(frozen=True)
class ShippedData:
    """A dataset the driver put in Ray's object store once: workers fetch it by reference
    and need no data root, download or file system of the driver's."""

    key: str  # unique to one driver's run
    ref: Any  # ray.ObjectRef of the ImageDataset (on the CPU)


_SHIPPED: dict[str, ImageDataset] = {}


def shipped_dataset(data: ShippedData, device: torch.device) -> ImageDataset:
    """The shipped dataset on ``device``: a reused Ray worker keeps it there between trials
    (one dataset at a time)."""
    key = f"{data.key}@{device}"
    if key not in _SHIPPED:
        import ray

        _SHIPPED.clear()
        _SHIPPED[key] = ray.get(data.ref).to(device)
    return _SHIPPED[key]


@lru_cache(maxsize=2)
def _dataset(name: str, root: str, device: str, test_fraction: float, max_pixels: int
             ) -> ImageDataset:
    # A reused Ray worker keeps its dataset on the device between trials.
    return load_dataset(name, root, device, test_fraction=test_fraction,
                        max_pixels=max_pixels)


def latency_setup(measurement: dict[str, Any], batch_size: int, device: torch.device,
                  lock_env: dict[str, str] | None = None, shared: bool = True
                  ) -> tuple[LatencySettings, DeviceLock | None]:
    """The estimator's settings from a spec's ``measurement`` record, and the device's lock
    when the measurement is to have the device to itself and other trials may use it
    (``shared``); set up by the THRESHSEARCH_LOCK_* variables the driver passed
    (``lock_env``), where this node sets none of its own."""
    settings = dict(measurement)
    exclusive = settings.pop("exclusive", True)
    lock = None
    if exclusive and shared:
        lock_settings = LockSettings.from_env({**(lock_env or {}), **os.environ})
        lock = device_lock(device_key(device), lock_settings)
    return LatencySettings(batch_size=batch_size, **settings), lock


def shares_device(device: torch.device, gpus: float) -> bool:
    """Whether other trials may run on ``device`` beside a trial given ``gpus``: always on a
    CPU; on a GPU only when trials get fractions of one (Ray gives a whole GPU to one)."""
    return device.type != "cuda" or gpus < 1


def timed_latency(model: torch.nn.Module, input_size: int, device: torch.device,
                  settings: LatencySettings, lock: DeviceLock | None, measurement: str,
                  alone: bool = False) -> tuple[dict[str, Any], list[str]]:
    """The latency record (the estimate and how it was obtained, ``measurement`` naming
    which) and any warning about it, measured under ``lock`` held exclusive; ``alone``: the
    device is the trial's own, so no lock is needed to have it to itself."""
    start = time.perf_counter()
    waited_before = lock.waited_s if lock else 0.0
    notices_before = len(lock.notices) if lock else 0
    if lock is None:
        estimate = estimate_latency(model, input_size, device, settings)
    else:
        with lock.exclusive():
            estimate = estimate_latency(model, input_size, device, settings)
    record = {**estimate.to_dict(), "measurement": measurement,
              "exclusive": lock is not None or alone,
              "lock_wait_s": (lock.waited_s - waited_before) if lock else 0.0,
              MEASURE_S: time.perf_counter() - start}
    warnings = [] if estimate.stable else [
        f"latency did not settle within measurement.max_time_s ({settings.max_time_s:g} s): "
        f"{estimate.passes} passes timed; the estimate is less certain"]
    warnings += lock.notices[notices_before:] if lock else []
    return record, warnings


@contextmanager
def device_work(lock: DeviceLock | None, clock: WorkerClock, phase: str) -> Iterator[None]:
    """Work on the device outside a training step, in ``phase`` of the worker's account:
    held under ``lock`` shared, so that a neighbour's measurement never runs beside it; the
    wait for the lock counts as paused, not as the phase."""
    with clock.phase(phase):
        if lock is None:
            yield
            return
        paused_before = lock.paused_s
        with lock.shared():
            waited = lock.paused_s - paused_before
            clock.seconds[phase] -= waited
            clock.seconds["paused"] += waited
            yield


def price(config: ArchitectureConfig, input_size: int, device: torch.device,
          settings: LatencySettings, lock: DeviceLock | None = None,
          measure_latency: bool = True, clock: WorkerClock | None = None, alone: bool = False,
          profiled: dict[str, float] | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (built for training) and its cheap metrics: the profiler's figures, and
    latency when ``measure_latency`` (only when an objective or constraint asks for it),
    under ``lock``, or ``alone`` on a device of the trial's own. ``profiled``: the
    profiler's figures when the driver computed them already."""
    clock = clock or WorkerClock()
    with device_work(lock, clock, "pricing"):
        figures = profiled or profiled_metrics(config, input_size)
    with device_work(lock, clock, "build"):
        model = build_model(config).to(device)
    cheap = {**figures, WARNINGS: [], "device": device_name(device),
             "versions": package_versions()}
    if measure_latency:
        with clock.phase("latency"):
            latency, warnings = timed_latency(
                model, input_size, device, settings, lock,
                SEARCH_MEASUREMENT if lock or alone else "search, shared device", alone)
        cheap |= {"latency_ms": latency["latency_ms"], LATENCY: latency,
                  MEASURE_S: latency[MEASURE_S], WARNINGS: warnings,
                  "device": latency["device"]}
    return model, cheap


def package_versions() -> dict[str, str]:
    """The versions that produced a result, recorded with it."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("threshsearch", "torch", "torchvision", "optuna", "ray"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def epoch_metrics(history: list[EpochMetrics]) -> dict[str, Any]:
    """The last epoch's figures, and the training speed as the median over the epochs so
    far less the first (warm-up: allocator, kernel choice, caches), when there are others."""
    last = history[-1]
    counted = history[1:] or history
    speeds = [epoch.images_per_s for epoch in counted]
    times = [epoch.epoch_time_s for epoch in counted]
    return {
        "epoch": last.epoch, "train_loss": last.train_loss, "val_accuracy": last.val_accuracy,
        "val_top5": last.val_top5, "val_loss": last.val_loss,
        "epoch_time_s": statistics.median(times),
        "train_images_per_s": statistics.median(speeds),
        THROUGHPUT: {"statistic": "median", "epochs": [e.epoch for e in counted],
                     "images_per_s_min": min(speeds), "images_per_s_max": max(speeds),
                     "epoch_time_s_min": min(times), "epoch_time_s_max": max(times)},
    }


def evaluate_candidate(spec: dict[str, Any], report: Report, data: ShippedData | None = None,
                       clock: WorkerClock | None = None) -> None:
    """Run one trial described by ``spec`` (see ``exchange.trial_spec``), calling ``report``
    after pricing if infeasible, after every epoch otherwise; the last report carries DONE.
    The dataset comes from ``data`` when the driver shipped it, else from the data root.
    Every report carries the worker-time account so far (``clock``)."""
    clock = clock or WorkerClock()
    start = clock.started

    def send(metrics: dict[str, Any]) -> None:
        account = clock.account()
        with clock.phase("reporting"):
            report({**metrics, WORKER_TIME: account})

    with clock.phase("setup"):
        device = resolve_device(spec["device"])
        measure = spec.get(MEASURE_LATENCY, True)
        shared = shares_device(device, spec.get("gpus", 0))
        # No lock where no measurer needs room (a study measuring no latency) or where the
        # device is the trial's own: its work then never waits nor synchronises.
        settings, lock = latency_setup(spec["measurement"], spec["latency_batch_size"],
                                       device, spec.get("lock_env"), shared=measure and shared)
        alone = spec["measurement"].get("exclusive", True) and not shared
    paused_before = lock.paused_s if lock else 0.0
    notices_before = len(lock.notices) if lock else 0
    with device_work(lock, clock, "setup"):
        seed_everything(spec["seed"])
        config = ArchitectureConfig.from_dict(spec["architecture"])
        recipe = Recipe.from_dict(spec["recipe"])
    with device_work(lock, clock, "data"):
        dataset = (shipped_dataset(data, device) if data is not None
                   else _dataset(spec["dataset"], spec["data_root"], str(device),
                                 spec["test_fraction"], spec["max_image_pixels"]))
    config.check_input_size(dataset.input_size)
    model, cheap = price(config, dataset.input_size, device, settings, lock, measure, clock,
                         alone, spec.get(PROFILED))
    reason = violated_constraint(spec["constraints"], cheap)
    if reason:
        send({**cheap, INFEASIBLE: reason, DONE: True, COMPUTE_S: time.perf_counter() - start})
        return
    with device_work(lock, clock, "build"):
        trainer = Trainer(model, dataset, recipe, seed=spec["seed"], device_lock=lock)

    def each_epoch(metrics: EpochMetrics) -> None:
        done = metrics.epoch >= recipe.epochs
        paused = (lock.paused_s - paused_before) if lock else 0.0
        notices = lock.notices[notices_before:] if lock else []
        clock.fit_so_far(trainer.history)
        send({**cheap, **epoch_metrics(trainer.history), PAUSED_S: paused,
              WARNINGS: [*cheap[WARNINGS], *notices],
              COMPUTE_S: time.perf_counter() - start, **({DONE: True} if done else {})})

    clock.begin_fit()
    try:
        result = trainer.fit(recipe.epochs, [each_epoch])
    finally:
        clock.fit_so_far(trainer.history)
    if result.status == "diverged":
        send({**cheap, FAILED: result.reason, DONE: True, COMPUTE_S: time.perf_counter() - start})


def run_candidate(spec: dict[str, Any], report: Report, data: ShippedData | None = None,
                  clock: WorkerClock | None = None) -> None:
    """``evaluate_candidate``, with any exception (out of memory, an unbuildable config, a
    bug) turned into a FAILED report with its reason, so the study records why and goes on.
    Ray's own stop signal (SystemExit) passes through."""
    clock = clock or WorkerClock()
    try:
        evaluate_candidate(spec, report, data, clock)
    except Exception as error:
        if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()  # so the worker's next trial starts with free memory
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        report({FAILED: reason, DONE: True, COMPUTE_S: time.perf_counter() - clock.started,
                WORKER_TIME: clock.account()})


RETIMED_MEASUREMENT = "re-timed after the search, one network at a time"


def retime_network(architecture: dict[str, Any], input_size: int, device: str,
                   measurement: dict[str, Any], batch_size: int, cpus: float,
                   lock_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Time one network again, as a trial would but with nothing else running: the latency
    record (``measurement`` says which it is) and any warning in it."""
    torch.set_num_threads(max(1, int(cpus)))
    target = resolve_device(device)
    settings, lock = latency_setup(measurement, batch_size, target, lock_env)
    model = build_model(ArchitectureConfig.from_dict(architecture)).to(target)
    record, warnings = timed_latency(model, input_size, target, settings, lock,
                                     RETIMED_MEASUREMENT)
    return {**record, WARNINGS: warnings}


def ray_trainable(spec: dict[str, Any], data: ShippedData | None = None) -> None:
    """Ray Tune's entry point: one trial on this worker's share of the machine."""
    import ray
    from ray import tune

    clock = WorkerClock()
    with clock.phase("setup"):
        torch.set_num_threads(max(1, int(spec.get("cpus", 1))))
        node = ray.get_runtime_context().get_node_id()
    # Schedulers leave a baseline's reports alone: it always trains to the end.
    tag = {BASELINE: spec[BASELINE]} if spec.get(BASELINE) else {}
    run_candidate(spec, lambda metrics: tune.report({**metrics, NODE: node, **tag}), data,
                  clock)
