"""A surrogate trial: learning curves from a documented model of the config in place of
training, so that the real driver (searcher, scheduler, sampler, storage, Ray Tune) can run
thousands of trials on a few cores, for benchmarks and tests of schedulers and samplers.

The model of a config (all figures from the profiler, exactly as a real trial prices them;
the driver's when the spec carries them, as the searcher's specs do):

- capacity: ``c = 1 - exp(-max(0, log10(MAdd) - 4) / 2)``, in [0, 1): accuracy rises with
  the work a network does per image, with diminishing returns (1e6 MAdd gives 0.63, 1e8
  gives 0.86);
- overfitting: networks past ``OVERFIT_PARAMS`` parameters lose
  ``0.03 x log10(params / OVERFIT_PARAMS)``;
- the final accuracy: ``chance + (0.95 - chance) x c - overfitting``, chance = 1 / classes;
- the learning curve: at epoch e of E, ``chance + (final - chance) x (1 - exp(-e / tau))``
  with ``tau = E x 0.25 x (1 + 0.3 x log10(1 + params / 1e5))``: bigger networks learn
  slower early, so early stopping has something to get wrong;
- noise: each epoch's accuracy gets N(0, ``NOISE``) from a generator seeded by the trial's
  seed (a trial's curve is reproducible; two trials of one config differ). ``NOISE`` is
  0.003, about the spread of a network's final CIFAR-10 accuracy over training seeds
  (NAS-Bench-201 reports standard deviations of 0.1-0.4 %). It was 0.01 until the
  sampler-learning benchmark showed that a space's expected accuracies at 32x32 span only
  about 0.03 (0.749-0.780 over benchmarks/search_quality.yaml), so that a front of single
  trials was decided by the noise, not by the networks (docs/benchmarks.md);
- an epoch takes ``epoch_s`` seconds of sleep (the worker is free for others); the reported
  epoch time and throughput are modelled from MAdd, and latency (when the study asks for it)
  is ``0.05 ms + MAdd / 2e9 ms`` with 2 % noise.

Reports carry the keys a real trial's do (``search.trial``), so the driver cannot tell the
difference. Imported by Ray workers: no Ray at import time, and no PyTorch at all (the
figures are counted from the config, ``search.reports``), so that many workers start fast
and fit in little memory.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from threshsearch.config import ArchitectureConfig
from threshsearch.search.reports import (
    BASELINE,
    COMPUTE_S,
    DONE,
    INFEASIBLE,
    LATENCY,
    MEASURE_LATENCY,
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

if TYPE_CHECKING:
    from threshsearch.search.trial import ShippedData

TOP_ACCURACY = 0.95
OVERFIT_PARAMS = 5e6
NOISE = 0.003
TRAIN_IMAGES = 50_000  # the epoch size the modelled epoch time and throughput assume
MADD_PER_S = 2e9  # the modelled device's speed, multiply-adds per second


def final_accuracy(madd: float, params: float, classes: int) -> float:
    """The accuracy a config's curve levels off at (see the module docstring)."""
    chance = 1.0 / classes
    capacity = 1.0 - math.exp(-max(0.0, math.log10(max(madd, 1.0)) - 4.0) / 2.0)
    overfit = 0.03 * max(0.0, math.log10(max(params, 1.0) / OVERFIT_PARAMS))
    return chance + (TOP_ACCURACY - chance) * capacity - overfit


def expected_curve(madd: float, params: float, classes: int, epochs: int) -> list[float]:
    """Validation accuracy after each of ``epochs`` epochs without noise: what a config's
    trials give on average, the figure a retraining over many seeds would settle on."""
    chance = 1.0 / classes
    final = final_accuracy(madd, params, classes)
    tau = epochs * 0.25 * (1.0 + 0.3 * math.log10(1.0 + params / 1e5))
    return [chance + (final - chance) * (1.0 - math.exp(-epoch / tau))
            for epoch in range(1, epochs + 1)]


def curve(madd: float, params: float, classes: int, epochs: int, seed: int) -> list[float]:
    """Validation accuracy after each of ``epochs`` epochs, noise included, in [0, 1]."""
    noise = np.random.default_rng(seed).normal(0.0, NOISE, epochs)
    return [float(np.clip(mean + shift, 0.0, 1.0))
            for mean, shift in zip(expected_curve(madd, params, classes, epochs), noise,
                                   strict=True)]


def run_surrogate(spec: dict[str, Any], report: Report, input_size: int,
                  epoch_s: float) -> None:
    """One trial of ``spec`` (``exchange.trial_spec``) by the model: reports as
    ``trial.evaluate_candidate`` makes them, one per epoch, the last carrying DONE."""
    clock = WorkerClock()
    config = ArchitectureConfig.from_dict(spec["architecture"])
    epochs = int(spec["recipe"]["epochs"])
    with clock.phase("pricing"):
        figures = spec.get(PROFILED) or profiled_metrics(config, input_size)
    cheap: dict[str, Any] = {**figures, WARNINGS: [], "device": "surrogate"}
    if spec.get(MEASURE_LATENCY, True):
        jitter = 1.0 + 0.02 * np.random.default_rng(spec["seed"] + 1).standard_normal()
        cheap["latency_ms"] = (0.05 + figures["madd"] / MADD_PER_S * 1e3) * jitter
        cheap[LATENCY] = {"latency_ms": cheap["latency_ms"], "measurement": "surrogate"}
    reason = violated_constraint(spec["constraints"], cheap)
    if reason:
        report({**cheap, INFEASIBLE: reason, DONE: True,
                COMPUTE_S: time.perf_counter() - clock.started, WORKER_TIME: clock.account()})
        return
    accuracies = curve(figures["madd"], figures["params"], config.num_classes, epochs,
                       spec["seed"])
    epoch_time = 3 * figures["madd"] * TRAIN_IMAGES / MADD_PER_S  # forward and backward
    for epoch, accuracy in enumerate(accuracies, start=1):
        with clock.phase("training"):
            time.sleep(epoch_s)
        loss = -math.log(max(accuracy, 1e-3))
        report({**cheap, "epoch": epoch, "val_accuracy": accuracy,
                "val_top5": min(1.0, accuracy + 0.04), "val_loss": loss,
                "train_loss": 0.9 * loss, "epoch_time_s": epoch_time,
                "train_images_per_s": TRAIN_IMAGES / epoch_time,
                THROUGHPUT: {"statistic": "modelled", "epochs": [epoch]}, PAUSED_S: 0.0,
                COMPUTE_S: time.perf_counter() - clock.started, WORKER_TIME: clock.account(),
                **({DONE: True} if epoch == epochs else {})})


def surrogate_trainable(input_size: int, epoch_s: float = 0.02
                        ) -> Callable[[dict[str, Any], ShippedData | None], None]:
    """A Ray Tune function trainable running ``run_surrogate`` (for ``run_search``'s
    ``trainable``): networks priced at ``input_size`` pixels, ``epoch_s`` seconds an epoch."""

    def trainable(spec: dict[str, Any], data: ShippedData | None = None) -> None:
        import ray
        from ray import tune

        node = ray.get_runtime_context().get_node_id()
        # Schedulers leave a baseline's reports alone, as for a real trial.
        tag = {BASELINE: spec[BASELINE]} if spec.get(BASELINE) else {}
        run_surrogate(spec, lambda metrics: tune.report({**metrics, NODE: node, **tag}),
                      input_size, epoch_s)

    return trainable
