"""The arithmetic of a device model: cost lines fitted to timed operations, the network
features built from them, the calibration fitted to timed whole networks, and its error on
networks held out of the fit.

Both fits are least squares on relative residuals (each row divided by its measured time):
a 0.1 ms network counts as much as a 10 ms one, since the target is a relative error. A cost
line is non-negative (an operation only adds time); the calibration is not, since a whole
network can cost less than its operations timed apart (one call's overhead instead of one per
operation, operations fused by the runtime).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.optimize import least_squares, nnls
from scipy.stats import spearmanr

from threshsearch.devicemodel.ops import Op

MIB = 2**20
BYTES = 4  # float32
FEATURES = ("network", "table_sum_ms", "operations", "weights_mib", "moved_mib")
FORM = "ms = sum(coefficient * feature) over features ('network' is 1: a per-call cost)"
WITHIN = 0.10
FLOOR_MS = 1e-3  # relative residuals of operations timed at the call overhead or below


def _relative_fit(rows: np.ndarray, measured: np.ndarray, non_negative: bool) -> np.ndarray:
    """Coefficients minimising the relative residuals. Columns are scaled to unit size first
    (the features span many orders of magnitude)."""
    weighted = rows / np.maximum(measured, FLOOR_MS)[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    target = measured / np.maximum(measured, FLOOR_MS)
    rows = weighted / scale
    if non_negative:
        solution, _ = nnls(rows, target)
    else:
        # Robust (soft L1 beyond 5 %): one network timed while a neighbour took the core
        # must not bend the calibration of all the others.
        start = np.linalg.lstsq(rows, target, rcond=None)[0]
        solution = least_squares(lambda x: rows @ x - target, start, loss="soft_l1",
                                 f_scale=0.05).x
    return solution / scale


def op_row(op: Op) -> np.ndarray:
    """The regressors of one operation's cost line: 1, multiply-adds, elements, weights."""
    return np.array([1.0, *op.features()])


def fit_cost_line(ops: Sequence[Op], ms: Sequence[float]) -> list[float]:
    """A cost line through one group's timed operations."""
    rows = np.stack([op_row(op) for op in ops])
    return [float(value) for value in _relative_fit(rows, np.asarray(ms, dtype=float), True)]


def network_features(ops: Sequence[Op], groups: Sequence[str],
                     lines: dict[str, np.ndarray]) -> np.ndarray:
    """FEATURES of one network: its operations' summed table costs (each priced by the
    line of its table group, ``groups`` in the operations' order), their number, and its
    weight and activation traffic in MiB (what the table's cold copies may over- or
    under-state for a whole network)."""
    table = count = weights = moved = 0.0
    for op, group in zip(ops, groups, strict=True):
        _, op_moved, op_weights = op.features()
        table += float(lines[group] @ op_row(op))
        count += 1
        weights += op_weights
        moved += op_moved
    return np.array([1.0, table, count, weights * BYTES / MIB, moved * BYTES / MIB])


def fit_calibration(features: np.ndarray, measured: np.ndarray) -> list[float]:
    return [float(value) for value in _relative_fit(features, measured, False)]


def held_out_predictions(features: np.ndarray, measured: np.ndarray, folds: int,
                         seed: int) -> np.ndarray:
    """Each network's prediction by a calibration fitted without it (``folds``-fold)."""
    order = np.random.default_rng(seed).permutation(len(measured))
    predicted = np.empty(len(measured))
    for fold in np.array_split(order, folds):
        keep = np.setdiff1d(order, fold)
        coefficients = np.asarray(fit_calibration(features[keep], measured[keep]))
        predicted[fold] = features[fold] @ coefficients
    return predicted


def error_summary(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, float]:
    """Share within ±10 %, median, p90 and max absolute error (% of measured), Spearman."""
    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    errors = np.abs(predicted / measured - 1)
    # Undefined (one network, or constant figures): reported as no correlation at all.
    rho = spearmanr(predicted, measured).statistic if len(measured) > 1 else 0.0
    return {
        "networks": len(measured),
        "within_10pct": float(np.mean(errors <= WITHIN)),
        "median_abs_pct": float(np.median(errors) * 100),
        "p90_abs_pct": float(np.quantile(errors, 0.9) * 100),
        "max_abs_pct": float(errors.max() * 100),
        "spearman": float(rho) if np.isfinite(rho) else 0.0,
    }
