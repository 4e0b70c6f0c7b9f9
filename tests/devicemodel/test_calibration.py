"""The fits: cost lines through timed operations, a calibration that one disturbed timing does
not bend, held-out predictions, and the error summary."""

import numpy as np
import pytest

from threshsearch.devicemodel.calibration import (
    error_summary,
    fit_calibration,
    fit_cost_line,
    held_out_predictions,
)
from threshsearch.devicemodel.ops import Op


def _features(count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.column_stack([np.ones(count), rng.uniform(1, 10, count),
                            rng.integers(10, 80, count), rng.uniform(0, 5, count),
                            rng.uniform(0, 20, count)])


TRUTH = np.array([0.05, 1.2, -0.004, 0.01, 0.02])


def test_the_calibration_recovers_an_exact_relation():
    features = _features(30)
    assert fit_calibration(features, features @ TRUTH) == pytest.approx(TRUTH, rel=1e-4)


def test_one_disturbed_network_does_not_bend_the_calibration():
    features = _features(30)
    measured = features @ TRUTH
    measured[3] *= 3  # timed while a neighbour held the core
    predicted = features @ np.asarray(fit_calibration(features, measured))
    others = np.arange(30) != 3
    assert np.abs(predicted[others] / measured[others] - 1).max() < 0.02


def test_held_out_predictions_come_from_fits_without_the_network():
    features = _features(10)
    measured = features @ TRUTH
    measured[0] *= 1.5
    predicted = held_out_predictions(features, measured, folds=5, seed=0)
    assert predicted[0] == pytest.approx(measured[0] / 1.5, rel=0.01)


def test_a_cost_line_is_non_negative_and_fits_a_linear_cost():
    ops = [Op("transition_post", 4, cin, cout) for cin, cout in
           ((16, 8), (32, 16), (64, 24), (96, 48), (128, 64))]
    ms = [0.01 + 2e-6 * op.features()[0] for op in ops]
    line = fit_cost_line(ops, ms)
    assert min(line) >= 0
    assert line[0] == pytest.approx(0.01, rel=1e-3) and line[1] == pytest.approx(2e-6, rel=1e-3)


def test_the_error_summary():
    summary = error_summary([1.0, 2.1, 2.85, 4.8], [1.0, 2.0, 3.0, 4.0])
    assert summary["networks"] == 4 and summary["within_10pct"] == 0.75
    assert summary["max_abs_pct"] == pytest.approx(20.0)
    assert summary["median_abs_pct"] == pytest.approx(5.0)
    assert summary["spearman"] == pytest.approx(1.0)
    assert error_summary([1.0], [2.0])["spearman"] == 0.0


def test_the_suspects_are_the_timings_above_their_fit_and_the_call_overhead():
    from tests.devicemodel.fakes import fake_timings
    from threshsearch.devicemodel.calibration import SMALL_GROUP, SUSPECT_ABOVE, suspect_timings
    from threshsearch.devicemodel.layout import table_group

    timings = fake_timings()
    operations, measured = list(timings.operations), timings.measured_ms.copy()
    groups = [table_group(op, timings.layout) for op, _ in operations]
    # Every operation of a group too small to judge it by the others is a suspect anyway.
    small = [1 + index for index, group in enumerate(groups)
             if groups.count(group) <= SMALL_GROUP]
    op_index = next(index for index, group in enumerate(groups)
                    if groups.count(group) > SMALL_GROUP)
    network_index = 7
    slow_op, ms = operations[op_index]
    operations[op_index] = (slow_op, 1.5 * ms + 0.5 * timings.call_overhead_ms)
    measured[network_index] *= 1 + 10 * SUSPECT_ABOVE  # a spell's: one network of ten

    def suspects(ops, networks_ms):
        flags = suspect_timings(ops, timings.call_overhead_ms, timings.calibration,
                                networks_ms, timings.layout, timings.settings.input_size)
        return list(np.flatnonzero(flags))
    assert suspects(timings.operations, timings.measured_ms) == [0, *small]
    found = set(suspects(operations, measured))
    assert found >= {0, *small, 1 + op_index, 1 + len(operations) + network_index}
    # Besides: operations of the slow one's group, whose lines through the others it tilts.
    assert {groups[column - 1] for column in found - {0, *small, 1 + len(operations)
                                                     + network_index}} == {groups[op_index]}
