"""The search-quality benchmark's statistics: rotation of the strategies, the pooled front and
its nadir, paired ratios and their bootstrap intervals, the table."""

import math

import pytest

from benchmarks.search_quality import (
    FULL_TRAINING,
    mean_interval,
    non_dominated,
    paired_ratios,
    pooled_reference,
    rotated,
    score_runs,
    summary_table,
)


def test_each_strategy_runs_in_each_position_once_over_as_many_seeds():
    strategies = ["a", "b", "c", "d"]
    orders = [rotated(strategies, index) for index in range(4)]
    assert orders[0] == strategies and orders[1] == ["b", "c", "d", "a"]
    for position in range(4):
        assert sorted(order[position] for order in orders) == strategies
    assert rotated(strategies, 5) == orders[1]


def test_non_dominated_keeps_each_front_point_once():
    points = [(0.0, 2.0), (1.0, 1.0), (1.0, 1.0), (2.0, 0.0), (2.0, 2.0), (1.0, 3.0)]
    assert non_dominated(points) == [(0.0, 2.0), (1.0, 1.0), (2.0, 0.0)]


def test_the_pooled_front_nadir_and_scale_come_from_every_runs_front():
    runs = [{"points": [(0.0, 4.0), (3.0, 3.0)]},  # (3, 3) is on this run's front
            {"points": [(2.0, 0.0), (5.0, 5.0)]}]  # (5, 5) is dominated in its own run
    pooled, nadir, scale = pooled_reference(runs)
    assert pooled == [(0.0, 4.0), (2.0, 0.0)]
    # worst over the runs' fronts: 3 and 4; ranges 3 and 4; pushed out by a tenth
    assert nadir == pytest.approx((3.3, 4.4))
    assert scale == pytest.approx((2.0, 4.0))
    with pytest.raises(ValueError, match="no run completed"):
        pooled_reference([{"points": []}])


def test_the_interval_holds_the_mean_and_says_when_it_cannot_be_had():
    mean, low, high = mean_interval([0.9, 1.0, 1.1, 1.05, 0.95, 1.2, 0.85, 1.0, 1.02, 0.98])
    assert mean == pytest.approx(1.005)
    assert 0.9 < low < mean < high < 1.1
    assert mean_interval([1.0, 1.0]) == (1.0, 1.0, 1.0)
    single = mean_interval([1.3])
    assert single[0] == 1.3 and math.isnan(single[1]) and math.isnan(single[2])
    assert all(math.isnan(v) for v in mean_interval([]))


def test_ratios_are_paired_by_seed_and_skip_a_seed_without_full_trainings_volume():
    runs = [{"strategy": FULL_TRAINING, "seed": 0, "hv": 0.2},
            {"strategy": FULL_TRAINING, "seed": 1, "hv": 0.0},
            {"strategy": FULL_TRAINING, "seed": 2, "hv": 0.4},
            {"strategy": "x", "seed": 2, "hv": 0.2},
            {"strategy": "x", "seed": 0, "hv": 0.3},
            {"strategy": "x", "seed": 1, "hv": 0.1}]
    assert paired_ratios(runs, "x", "hv") == pytest.approx([0.5, 1.5])
    assert paired_ratios(runs, FULL_TRAINING, "hv") == [1.0, 1.0]
    assert paired_ratios(runs, FULL_TRAINING, "hv", base="x") == pytest.approx([2 / 3, 0.0, 2.0])


def test_the_table_has_a_row_per_strategy_with_both_references_and_igd_plus():
    runs = []
    for seed in range(3):
        runs.append({"strategy": FULL_TRAINING, "seed": seed, "complete": 4, "pruned": 0,
                     "points": [(-0.95, 1.0), (-0.99, 2.0)]})
        runs.append({"strategy": "pareto+auto", "seed": seed, "complete": 3, "pruned": 5,
                     "points": [(-0.95, 0.5 + 0.1 * seed)]})
    score_runs(runs, (-0.9, 3.0))
    assert runs[0]["igd_plus"] > 0 and runs[1]["igd_plus"] > 0
    table = summary_table(runs, ["pareto+auto", FULL_TRAINING], "header")
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()[4:]}
    assert set(rows) == {"pareto+auto", FULL_TRAINING}
    assert "1.00x [1.00, 1.00] (3 seeds)" in rows[FULL_TRAINING]
    assert rows["pareto+auto"].count("(3 seeds)") == 3
    # the default's over full training's, seed by seed: the inverse of the row's first ratio
    cells = [cell.strip() for cell in rows[FULL_TRAINING].strip("|").split("|")]
    assert len(cells) == 8
    default_over_full = [a["hypervolume"] / b["hypervolume"]
                         for a, b in zip(runs[1::2], runs[0::2], strict=True)]
    assert cells[6].startswith(f"{sum(default_over_full) / 3:.2f}x")
