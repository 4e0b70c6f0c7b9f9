"""One (network, seed) pair of a confirmation, on a worker: built from scratch, priced as a
trial is, trained under the pair's recipe, tested once on the test split, and its latency
measured with the device to itself, the same way for every pair."""

from __future__ import annotations

import time
from typing import Any

import torch

from threshsearch.config import ArchitectureConfig
from threshsearch.data import ImageDataset
from threshsearch.measure import resolve_device
from threshsearch.nn import build_model
from threshsearch.search.reports import COMPUTE_S, FAILED, LATENCY, NODE, WARNINGS, profiled_metrics
from threshsearch.search.trial import (
    ShippedData,
    epoch_metrics,
    latency_setup,
    package_versions,
    shipped_dataset,
    timed_latency,
)
from threshsearch.train import Recipe, Trainer, seed_everything

CONFIRM_MEASUREMENT = "confirmation, trained network, device to itself"


def confirm_pair(spec: dict[str, Any], dataset: ImageDataset) -> dict[str, Any]:
    """Train and test one pair (``spec``: architecture, recipe, seed, device, measurement,
    latency_batch_size); the figures, or ``FAILED`` with the reason."""
    start = time.perf_counter()
    try:
        device = resolve_device(spec["device"])
        dataset = dataset.to(device)
        seed_everything(spec["seed"])
        config = ArchitectureConfig.from_dict(spec["architecture"])
        recipe = Recipe.from_dict(spec["recipe"])
        config.check_input_size(dataset.input_size)
        settings, lock = latency_setup(spec["measurement"], spec["latency_batch_size"], device)
        figures = profiled_metrics(config, dataset.input_size)
        model = build_model(config).to(device)
        trainer = Trainer(model, dataset, recipe, seed=spec["seed"], device_lock=lock)
        result = trainer.fit(recipe.epochs)
        if result.status != "completed":
            return {FAILED: result.reason, COMPUTE_S: time.perf_counter() - start}
        trainer.test(result)
        latency, warnings = timed_latency(trainer.model, dataset.input_size, device, settings,
                                          lock, CONFIRM_MEASUREMENT)
    except Exception as error:  # out of memory, an unbuildable config, a bug: say which
        if isinstance(error, torch.OutOfMemoryError) and torch.cuda.is_available():
            torch.cuda.empty_cache()
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:500]
        return {FAILED: reason, COMPUTE_S: time.perf_counter() - start}
    trained = epoch_metrics(trainer.history)
    return {
        "test_accuracy": result.test_accuracy, "test_top5": result.test_top5,
        "val_accuracy": trained["val_accuracy"], "val_top5": trained["val_top5"],
        "epoch_time_s": trained["epoch_time_s"],
        "train_images_per_s": trained["train_images_per_s"],
        **figures,
        "latency_ms": latency["latency_ms"], LATENCY: latency, WARNINGS: warnings,
        "epochs": len(trainer.history), "device": latency["device"],
        "versions": package_versions(), COMPUTE_S: time.perf_counter() - start,
    }


def ray_confirm_pair(spec: dict[str, Any], data: ShippedData) -> dict[str, Any]:
    """The Ray task: one pair on this worker's share of the node, with the shipped data."""
    import ray

    torch.set_num_threads(max(1, int(spec["cpus"])))
    dataset = shipped_dataset(data, resolve_device(spec["device"]))
    return {**confirm_pair(spec, dataset), NODE: ray.get_runtime_context().get_node_id()}
