"""A surrogate trial: learning curves from a documented model of the config in place of
training, so that the real driver (searcher, scheduler, sampler, storage, Ray Tune) can run
thousands of trials on a few cores, for benchmarks and tests of schedulers and samplers.

The model of a config, fitted to real training (``benchmarks/surrogate_fit.py`` over the
studies ``benchmarks/search_quality.py`` leaves: 1,031 trainings of its space on
scikit-learn's digits, 6 epochs, 4,640 epoch accuracies; docs/benchmarks.md, "The
surrogate's landscape"). Accuracy is modelled on the logit scale of the way from chance to
``TOP_ACCURACY``, ``z = logit((accuracy - chance) / (TOP_ACCURACY - chance))``:

- the mean: ``z = A + B x + S ln(epoch) + F ln(epoch)^2`` with ``x = log10(params) - 5`` and
  ``S = max(0, C + D min(x, 0))``: bigger networks start higher and, below 100k parameters,
  learn more slowly with each epoch the fewer their parameters; the curves level off (F < 0)
  and, past the epoch where this quadratic in ln(epoch) peaks, stay there (the data end at
  epoch 6; the peak is past epoch 12 for every network of the fitted sizes, so any epoch
  past 6 is an extrapolation). R^2 0.905 in z;
- the network's own effect: ``CONFIG_SD x u x sqrt(min(epoch, 6) / 6)``, u ~ N(0, 1) drawn
  from the config's hash: networks of equal size differ, the more the longer they train
  (between-network variance 0.09 at epoch 2, 0.23 at 6); every trial of a network shares it;
- a training seed's effect: an AR(1) over epochs (``SEED_SD``, the mean of epochs 2-6's
  seed variance; correlation ``SEED_MEMORY`` from one epoch to the next), plus
  ``FIRST_EPOCH_SD`` on the first epoch alone (its accuracies varied most), drawn from a
  generator seeded by the trial's seed (a trial's curve is reproducible; two trials of one
  config differ);
- overfitting, an assumption outside the data (no network there had over 0.82 M
  parameters): networks past ``OVERFIT_PARAMS`` parameters lose
  ``0.03 x log10(params / OVERFIT_PARAMS)``;
- an epoch takes ``epoch_s`` seconds of sleep (the worker is free for others); the reported
  epoch time and throughput are modelled from MAdd, and latency (when the study asks for it)
  is ``0.05 ms + MAdd / 2e9 ms`` with 2 % noise.

Until this fit the model was hand-made (capacity from MAdd, bigger networks learning
slower): over the search-quality space its expected accuracies spanned only 0.749-0.780, where
the real trials' span 0.36-0.99 (median 0.967 at epoch 6), so no sampler could be told from
another on it (docs/benchmarks.md, "Sampler learning under early stopping").

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

TOP_ACCURACY = 0.995  # where the fitted curves level off (digits): above every accuracy seen
INTERCEPT, PER_LOG_PARAMS = -1.303, 2.245  # z at epoch 1 of a 100k-parameter network, slope
PER_LOG_EPOCH, SMALL_NETWORK_SLOWDOWN = 3.774, 2.181  # C and D of the module docstring
LEVELLING = -0.464  # F: the curve's bend in ln(epoch)
CONFIG_SD = 0.48
SEED_SD, SEED_MEMORY, FIRST_EPOCH_SD = 0.41, 0.59, 0.79
FITTED_EPOCHS = 6  # the network's own effect grows until here, as far as the data went
OVERFIT_PARAMS = 5e6
TRAIN_IMAGES = 50_000  # the epoch size the modelled epoch time and throughput assume
MADD_PER_S = 2e9  # the modelled device's speed, multiply-adds per second
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)  # E[f(z)], z normal: quadrature


def network_effect(config_hash: str) -> float:
    """The network's own u ~ N(0, 1), fixed by its config hash (16 hex digits)."""
    return float(np.random.default_rng(int(config_hash, 16)).standard_normal())


def mean_logits(params: float, config_hash: str, epochs: int) -> np.ndarray:
    """The mean of z at epochs 1 .. ``epochs`` over training seeds."""
    x = math.log10(max(params, 1.0)) - 5.0
    slope = max(0.0, PER_LOG_EPOCH + SMALL_NETWORK_SLOWDOWN * min(x, 0.0))
    epoch = np.arange(1, epochs + 1)
    log_epoch = np.minimum(np.log(epoch), slope / (-2.0 * LEVELLING))  # flat past the peak
    own = CONFIG_SD * network_effect(config_hash) * np.sqrt(
        np.minimum(epoch, FITTED_EPOCHS) / FITTED_EPOCHS)
    return (INTERCEPT + PER_LOG_PARAMS * x + slope * log_epoch + LEVELLING * log_epoch ** 2
            + own)


def accuracy_at(z: np.ndarray | float, classes: int) -> np.ndarray | float:
    """The accuracy at logit ``z`` of the way from chance to TOP_ACCURACY (the model's scale;
    ``benchmarks/surrogate_fit.py`` fits on it)."""
    chance = 1.0 / classes
    return chance + (TOP_ACCURACY - chance) / (1.0 + np.exp(-z))


def _accuracy(z: np.ndarray, params: float, classes: int) -> np.ndarray:
    overfit = 0.03 * max(0.0, math.log10(max(params, 1.0) / OVERFIT_PARAMS))
    return np.clip(accuracy_at(z, classes) - overfit, 0.0, 1.0)


def seed_sds(epochs: int) -> np.ndarray:
    """The standard deviation of a training seed's effect on z at each epoch."""
    sds = np.full(epochs, SEED_SD)
    sds[0] = math.hypot(SEED_SD, FIRST_EPOCH_SD)
    return sds


def expected_curve(params: float, config_hash: str, classes: int, epochs: int) -> list[float]:
    """Validation accuracy after each of ``epochs`` epochs averaged over training seeds (the
    seed's effect integrated out): the figure a retraining over many seeds settles on."""
    z = mean_logits(params, config_hash, epochs)
    spread = z[:, None] + seed_sds(epochs)[:, None] * _NODES[None, :]
    weights = _WEIGHTS / _WEIGHTS.sum()
    return [float(v) for v in _accuracy(spread, params, classes) @ weights]


def curve(params: float, config_hash: str, classes: int, epochs: int, seed: int
          ) -> list[float]:
    """Validation accuracy after each of ``epochs`` epochs of one trial trained with
    ``seed``, in [0, 1]."""
    rng = np.random.default_rng(seed)
    effect = np.empty(epochs)
    effect[0] = rng.normal(0.0, SEED_SD)  # stationary from the first epoch on
    renewed = SEED_SD * math.sqrt(1.0 - SEED_MEMORY ** 2)
    for epoch in range(1, epochs):
        effect[epoch] = SEED_MEMORY * effect[epoch - 1] + rng.normal(0.0, renewed)
    effect[0] += rng.normal(0.0, FIRST_EPOCH_SD)
    z = mean_logits(params, config_hash, epochs) + effect
    return [float(v) for v in _accuracy(z, params, classes)]


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
    accuracies = curve(figures["params"], config.hash, config.num_classes, epochs,
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
