"""One trial's life: build the candidate, price it (profiler and latency), check the
constraints, train it with a report per epoch, and report the objectives.

``evaluate_candidate`` is plain Python with a ``report`` callback, so it runs and is tested
without Ray; ``ray_trainable`` is the same thing as a Ray Tune function trainable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch

from threshsearch.api import profile
from threshsearch.config import ArchitectureConfig
from threshsearch.data import ImageDataset, load_dataset
from threshsearch.measure import measure_latency, resolve_device
from threshsearch.nn import build_model
from threshsearch.train import EpochMetrics, Recipe, Trainer, seed_everything

# Keys of a trial's reports that the driver reads besides the metrics.
DONE = "trial_done"  # only in a trial's last report: absent means it was stopped early
FAILED = "failed"  # the reason a trial failed
INFEASIBLE = "infeasible"  # the constraint a trial violated
COMPUTE_S = "compute_s"  # seconds spent building, pricing, training and evaluating
NODE = "node"  # the Ray node the trial ran on

Report = Callable[[dict[str, Any]], None]


@lru_cache(maxsize=2)
def _dataset(name: str, root: str, device: str) -> ImageDataset:
    # A reused Ray worker keeps its dataset on the device between trials.
    return load_dataset(name, root, device)


def price(config: ArchitectureConfig, input_size: int, device: torch.device,
          latency_batch_size: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (built for training) and its cheap metrics: profiler figures and latency."""
    figures = profile(config, input_size)
    model = build_model(config).to(device)
    latency = measure_latency(model, input_size, latency_batch_size, device, warmup=3,
                              repeats=10)
    return model, {
        "params": figures.params, "madd": figures.madd, "flops": figures.flops,
        "memrw_mib": figures.memrw_mib, "cio": figures.cio,
        "activation_mib": figures.activation_mib, "latency_ms": latency.median_ms,
        "device": latency.device, "versions": package_versions(),
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


def _epoch_metrics(history: list[EpochMetrics]) -> dict[str, Any]:
    last = history[-1]
    return {
        "epoch": last.epoch, "train_loss": last.train_loss, "val_accuracy": last.val_accuracy,
        "val_top5": last.val_top5, "val_loss": last.val_loss,
        "epoch_time_s": statistics.median(epoch.epoch_time_s for epoch in history),
        "train_images_per_s": statistics.median(epoch.images_per_s for epoch in history),
    }


def evaluate_candidate(spec: dict[str, Any], report: Report) -> None:
    """Run one trial described by ``spec`` (see ``runner.trial_spec``), calling ``report``
    after pricing if infeasible, after every epoch otherwise; the last report carries DONE."""
    start = time.perf_counter()
    device = resolve_device(spec["device"])
    seed_everything(spec["seed"])
    config = ArchitectureConfig.from_dict(spec["architecture"])
    recipe = Recipe.from_dict(spec["recipe"])
    dataset = _dataset(spec["dataset"], spec["data_root"], str(device))
    config.check_input_size(dataset.input_size)
    model, cheap = price(config, dataset.input_size, device, spec["latency_batch_size"])
    reason = violated_constraint(spec["constraints"], cheap)
    if reason:
        report({**cheap, INFEASIBLE: reason, DONE: True,
                COMPUTE_S: time.perf_counter() - start})
        return
    trainer = Trainer(model, dataset, recipe, seed=spec["seed"])

    def each_epoch(metrics: EpochMetrics) -> None:
        done = metrics.epoch >= recipe.epochs
        report({**cheap, **_epoch_metrics(trainer.history),
                COMPUTE_S: time.perf_counter() - start, **({DONE: True} if done else {})})

    result = trainer.fit(recipe.epochs, [each_epoch])
    if result.status == "diverged":
        report({**cheap, FAILED: result.reason, DONE: True,
                COMPUTE_S: time.perf_counter() - start})


def run_candidate(spec: dict[str, Any], report: Report) -> None:
    """``evaluate_candidate``, with any exception (out of memory, an unbuildable config, a
    bug) turned into a FAILED report with its reason, so the study records why and goes on.
    Ray's own stop signal (SystemExit) passes through."""
    start = time.perf_counter()
    try:
        evaluate_candidate(spec, report)
    except Exception as error:
        if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()  # so the worker's next trial starts with free memory
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        report({FAILED: reason, DONE: True, COMPUTE_S: time.perf_counter() - start})


def ray_trainable(spec: dict[str, Any]) -> None:
    """Ray Tune's entry point: one trial on this worker's share of the machine."""
    import ray
    from ray import tune

    torch.set_num_threads(max(1, int(spec.get("cpus", 1))))
    node = ray.get_runtime_context().get_node_id()
    run_candidate(spec, lambda metrics: tune.report({**metrics, NODE: node}))
