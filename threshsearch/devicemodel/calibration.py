"""The arithmetic of a device model: cost lines fitted to timed operations, the network
features built from them, the calibration fitted to timed whole networks, and its error on
networks held out of the fit; and which timings a later profiling round takes again (those
the fit of the earlier rounds finds suspiciously slow).

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

from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel.fileformat import LayoutRule
from threshsearch.devicemodel.layout import table_group
from threshsearch.devicemodel.ops import Op, network_ops

MIB = 2**20
BYTES = 4  # float32
FEATURES = ("network", "table_sum_ms", "operations", "weights_mib", "moved_mib")
FORM = "ms = sum(coefficient * feature) over features ('network' is 1: a per-call cost)"
WITHIN = 0.10
FLOOR_MS = 1e-3  # relative residuals of operations timed at the call overhead or below
SUSPECT_ABOVE = 0.05  # a timing this far above its fit is taken again in a later round
# A group of this many operations or fewer is always taken again: a cost line (op_row's 4
# coefficients) fitted to the others of the group passes through them, and says nothing of
# the one left out.
SMALL_GROUP = 5


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


def table_lines(operations: Sequence[tuple[Op, float]], layout: LayoutRule | None
                ) -> tuple[dict[str, list[tuple[Op, float]]], dict[str, np.ndarray]]:
    """The timed ``operations`` by table group under ``layout``, and each group's cost line."""
    timed: dict[str, list[tuple[Op, float]]] = {}
    for op, ms in operations:
        timed.setdefault(table_group(op, layout), []).append((op, ms))
    return timed, {group: np.asarray(fit_cost_line([op for op, _ in pairs],
                                                   [ms for _, ms in pairs]))
                   for group, pairs in timed.items()}


def calibration_features(configs: Sequence[ArchitectureConfig], input_size: int,
                         lines: dict[str, np.ndarray], layout: LayoutRule | None
                         ) -> np.ndarray:
    """FEATURES of each of ``configs`` (one row each), priced by ``lines``."""
    rows = []
    for config in configs:
        ops = network_ops(config, input_size)
        rows.append(network_features(ops, [table_group(op, layout) for op in ops], lines))
    return np.stack(rows)


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


def suspect_timings(operations: Sequence[tuple[Op, float]], call_overhead_ms: float,
                    calibration: Sequence[ArchitectureConfig], measured_ms: np.ndarray,
                    layout: LayoutRule | None, input_size: int,
                    above: float = SUSPECT_ABOVE) -> np.ndarray:
    """Which timings, in profiling's order (the call overhead, ``operations``, the
    ``calibration`` networks), to take again: each operation whose time (the call overhead
    included) lies more than ``above`` over its group's cost line fitted to the group's other
    operations, every operation of a group too small for such a line to say anything
    (``SMALL_GROUP`` samples or fewer), each network more than ``above`` over the
    calibration fitted to them all, and the call overhead, which every operation's figure
    depends on. A slow spell of the machine only ever slows a timing, and the spell's
    timings stand out from the fit of the others (the calibration's fit is robust; a cost
    line is not, so an operation is judged by the line of the others: its own slow figure
    would pull up the line it is judged by); a timing that only sits above its line by the
    line's own misfit is taken again at no harm."""
    timed, lines = table_lines(operations, layout)
    op_suspect = []
    for op, ms in operations:
        others = [(other, other_ms) for other, other_ms in timed[table_group(op, layout)]
                  if other != op]
        if len(others) < SMALL_GROUP:
            op_suspect.append(True)
            continue
        line = np.asarray(fit_cost_line([other for other, _ in others],
                                        [other_ms for _, other_ms in others]))
        predicted = max(float(line @ op_row(op)), 0.0)
        op_suspect.append(ms + call_overhead_ms > (1 + above) * (predicted + call_overhead_ms))
    features = calibration_features(calibration, input_size, lines, layout)
    predicted = features @ np.asarray(fit_calibration(features, measured_ms))
    return np.array([True, *op_suspect, *(np.asarray(measured_ms) > (1 + above) * predicted)])
