"""One trial's life: build the candidate, price it (profiler and latency), check the
constraints, train it with a report per epoch, and report the objectives.

Latency is measured with the device to itself: the trial takes its node's device lock
exclusive while it measures, and holds it shared for each training step, so no trial is timed
while another trains or measures on the same device (``threshsearch.devicelock``).

``evaluate_candidate`` is plain Python with a ``report`` callback, so it runs and is tested
without Ray; ``ray_trainable`` is the same thing as a Ray Tune function trainable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from threshsearch.api import profile
from threshsearch.config import ArchitectureConfig
from threshsearch.data import ImageDataset, load_dataset
from threshsearch.devicelock import DeviceLock, device_key, device_lock
from threshsearch.latency import LatencySettings, estimate_latency
from threshsearch.measure import resolve_device
from threshsearch.nn import build_model
from threshsearch.train import EpochMetrics, Recipe, Trainer, seed_everything

# Keys of a trial's reports that the driver reads besides the metrics.
DONE = "trial_done"  # only in a trial's last report: absent means it was stopped early
FAILED = "failed"  # the reason a trial failed
INFEASIBLE = "infeasible"  # the constraint a trial violated
COMPUTE_S = "compute_s"  # seconds spent building, pricing, training and evaluating
NODE = "node"  # the Ray node the trial ran on
LATENCY = "latency"  # the latency measurement's record: statistic, quantiles, passes, ...
THROUGHPUT = "throughput"  # which epochs the training figures count, and their spread
WARNINGS = "warnings"  # what the user should know about a trial's figures
MEASURE_S = "measure_s"  # seconds spent measuring latency, waiting for the device included
PAUSED_S = "paused_s"  # seconds training paused for other trials' measurements
SEARCH_MEASUREMENT = "search, device to itself"
BASELINE = "baseline"  # a baseline's preset name: in its spec, its reports and its trial

Report = Callable[[dict[str, Any]], None]


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
def _dataset(name: str, root: str, device: str) -> ImageDataset:
    # A reused Ray worker keeps its dataset on the device between trials.
    return load_dataset(name, root, device)


def latency_setup(measurement: dict[str, Any], batch_size: int, device: torch.device
                  ) -> tuple[LatencySettings, DeviceLock | None]:
    """The estimator's settings from a spec's ``measurement`` record, and the device's lock
    when the measurement is to have the device to itself."""
    settings = dict(measurement)
    exclusive = settings.pop("exclusive", True)
    return (LatencySettings(batch_size=batch_size, **settings),
            device_lock(device_key(device)) if exclusive else None)


def timed_latency(model: torch.nn.Module, input_size: int, device: torch.device,
                  settings: LatencySettings, lock: DeviceLock | None, measurement: str
                  ) -> tuple[dict[str, Any], list[str]]:
    """The latency record (the estimate and how it was obtained, ``measurement`` naming
    which) and any warning about it, measured under ``lock`` held exclusive."""
    start = time.perf_counter()
    waited_before = lock.waited_s if lock else 0.0
    if lock is None:
        estimate = estimate_latency(model, input_size, device, settings)
    else:
        with lock.exclusive():
            estimate = estimate_latency(model, input_size, device, settings)
    record = {**estimate.to_dict(), "measurement": measurement,
              "exclusive": lock is not None,
              "lock_wait_s": (lock.waited_s - waited_before) if lock else 0.0,
              MEASURE_S: time.perf_counter() - start}
    warnings = [] if estimate.stable else [
        f"latency did not settle within measurement.max_time_s ({settings.max_time_s:g} s): "
        f"{estimate.passes} passes timed; the estimate is less certain"]
    return record, warnings


def price(config: ArchitectureConfig, input_size: int, device: torch.device,
          settings: LatencySettings, lock: DeviceLock | None = None
          ) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (built for training) and its cheap metrics: profiler figures and latency."""
    figures = profile(config, input_size)
    model = build_model(config).to(device)
    latency, warnings = timed_latency(model, input_size, device, settings, lock,
                                      SEARCH_MEASUREMENT if lock else "search, shared device")
    return model, {
        "params": figures.params, "madd": figures.madd, "flops": figures.flops,
        "memrw_mib": figures.memrw_mib, "cio": figures.cio,
        "activation_mib": figures.activation_mib, "latency_ms": latency["latency_ms"],
        LATENCY: latency, MEASURE_S: latency[MEASURE_S], WARNINGS: warnings,
        "device": latency["device"], "versions": package_versions(),
    }


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


def violated_constraint(constraints: list[dict[str, Any]], metrics: dict[str, Any]
                        ) -> str | None:
    """The first constraint the metrics break, in words; None when all hold."""
    for constraint in constraints:
        value = metrics[constraint["metric"]]
        upper, lower = constraint.get("max"), constraint.get("min")
        if upper is not None and value > upper:
            return f"{constraint['metric']} {value:.6g} > max {upper:.6g}"
        if lower is not None and value < lower:
            return f"{constraint['metric']} {value:.6g} < min {lower:.6g}"
    return None


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


def evaluate_candidate(spec: dict[str, Any], report: Report, data: ShippedData | None = None
                       ) -> None:
    """Run one trial described by ``spec`` (see ``runner.trial_spec``), calling ``report``
    after pricing if infeasible, after every epoch otherwise; the last report carries DONE.
    The dataset comes from ``data`` when the driver shipped it, else from the data root."""
    start = time.perf_counter()
    device = resolve_device(spec["device"])
    seed_everything(spec["seed"])
    config = ArchitectureConfig.from_dict(spec["architecture"])
    recipe = Recipe.from_dict(spec["recipe"])
    dataset = (shipped_dataset(data, device) if data is not None
               else _dataset(spec["dataset"], spec["data_root"], str(device)))
    config.check_input_size(dataset.input_size)
    settings, lock = latency_setup(spec["measurement"], spec["latency_batch_size"], device)
    model, cheap = price(config, dataset.input_size, device, settings, lock)
    reason = violated_constraint(spec["constraints"], cheap)
    if reason:
        report({**cheap, INFEASIBLE: reason, DONE: True,
                COMPUTE_S: time.perf_counter() - start})
        return
    trainer = Trainer(model, dataset, recipe, seed=spec["seed"], device_lock=lock)
    paused_before = lock.paused_s if lock else 0.0

    def each_epoch(metrics: EpochMetrics) -> None:
        done = metrics.epoch >= recipe.epochs
        paused = (lock.paused_s - paused_before) if lock else 0.0
        report({**cheap, **epoch_metrics(trainer.history), PAUSED_S: paused,
                COMPUTE_S: time.perf_counter() - start, **({DONE: True} if done else {})})

    result = trainer.fit(recipe.epochs, [each_epoch])
    if result.status == "diverged":
        report({**cheap, FAILED: result.reason, DONE: True,
                COMPUTE_S: time.perf_counter() - start})


def run_candidate(spec: dict[str, Any], report: Report, data: ShippedData | None = None
                  ) -> None:
    """``evaluate_candidate``, with any exception (out of memory, an unbuildable config, a
    bug) turned into a FAILED report with its reason, so the study records why and goes on.
    Ray's own stop signal (SystemExit) passes through."""
    start = time.perf_counter()
    try:
        evaluate_candidate(spec, report, data)
    except Exception as error:
        if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()  # so the worker's next trial starts with free memory
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        report({FAILED: reason, DONE: True, COMPUTE_S: time.perf_counter() - start})


RETIMED_MEASUREMENT = "re-timed after the search, one network at a time"


def retime_network(architecture: dict[str, Any], input_size: int, device: str,
                   measurement: dict[str, Any], batch_size: int, cpus: float
                   ) -> dict[str, Any]:
    """Time one network again, as a trial would but with nothing else running: the latency
    record (``measurement`` says which it is) and any warning in it."""
    torch.set_num_threads(max(1, int(cpus)))
    target = resolve_device(device)
    settings, lock = latency_setup(measurement, batch_size, target)
    model = build_model(ArchitectureConfig.from_dict(architecture)).to(target)
    record, warnings = timed_latency(model, input_size, target, settings, lock,
                                     RETIMED_MEASUREMENT)
    return {**record, WARNINGS: warnings}


def ray_trainable(spec: dict[str, Any], data: ShippedData | None = None) -> None:
    """Ray Tune's entry point: one trial on this worker's share of the machine."""
    import ray
    from ray import tune

    torch.set_num_threads(max(1, int(spec.get("cpus", 1))))
    node = ray.get_runtime_context().get_node_id()
    # Schedulers leave a baseline's reports alone: it always trains to the end.
    tag = {BASELINE: spec[BASELINE]} if spec.get(BASELINE) else {}
    run_candidate(spec, lambda metrics: tune.report({**metrics, NODE: node, **tag}), data)
