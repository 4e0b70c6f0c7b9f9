"""Non-dominated sorting, crowding distance, the rung rank and the hypervolume."""

import math

import numpy as np
import pytest

from threshsearch.search.pareto import (
    crowding_distances,
    hypervolume,
    minimised,
    non_dominated_fronts,
    rank_at_rung,
)


def test_minimised_negates_maximised_objectives():
    assert minimised([0.9, 3.0], ["maximize", "minimize"]) == (-0.9, 3.0)


def test_fronts_peel_in_order():
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]])
    fronts = [sorted(front.tolist()) for front in non_dominated_fronts(points)]
    assert fronts == [[0, 1, 2], [3], [4], [5]]


def test_equal_points_share_a_front():
    fronts = non_dominated_fronts(np.array([[1, 1], [1, 1], [2, 2]]))
    assert sorted(fronts[0].tolist()) == [0, 1] and fronts[1].tolist() == [2]


def test_crowding_gives_the_ends_infinity_and_the_middle_its_gap():
    distance = crowding_distances(np.array([[0.0, 4.0], [1.0, 1.0], [4.0, 0.0]]))
    assert math.isinf(distance[0]) and math.isinf(distance[2])
    assert distance[1] == pytest.approx(4 / 4 + 4 / 4)


def test_a_cheap_slow_learner_nothing_dominates_goes_on():
    # (accuracy, memrw) at the rung: three accurate, expensive networks and a cheap one
    # that is far behind in accuracy after its first epochs.
    directions = ["maximize", "minimize"]
    others = [minimised(p, directions) for p in [(0.95, 4.0), (0.94, 4.2), (0.93, 3.9)]]
    cheap = minimised((0.40, 1.0), directions)
    rank = rank_at_rung(others, cheap, reduction_factor=2)
    assert rank.front == 0 and rank.continues
    # Accuracy alone would cut it: it is last of four.
    assert sorted([-p[0] for p in [*others, cheap]]).index(0.40) == 0


def test_a_dominated_trial_stops():
    directions = ["maximize", "minimize"]
    others = [minimised(p, directions) for p in [(0.9, 1.0), (0.95, 2.0)]]
    rank = rank_at_rung(others, minimised((0.8, 2.5), directions), reduction_factor=2)
    assert rank.front == 1 and rank.ahead == 2 and rank.kept == 2 and not rank.continues


def test_ties_at_the_cut_go_on_together():
    # Two mutually non-dominated points: both are ends of the front (infinite crowding), so
    # neither ranks strictly ahead and the second goes on although only one of two is kept.
    rank = rank_at_rung([(0.0, 1.0)], (1.0, 0.0), reduction_factor=2)
    assert rank.kept == 1 and rank.ahead == 0 and rank.continues


def test_the_first_trial_at_a_rung_goes_on():
    assert rank_at_rung([], (5.0, 5.0), reduction_factor=3).continues


def test_a_crowded_middle_point_stops_when_the_front_is_larger_than_the_cut():
    # Five points on one front; the one in the densest spot has the least crowding room.
    front = [(0.0, 10.0), (2.0, 6.0), (6.0, 2.0), (10.0, 0.0)]
    crowded = (2.1, 5.9)
    rank = rank_at_rung(front, crowded, reduction_factor=2)
    assert rank.front == 0 and rank.kept == 3 and rank.ahead >= 3 and not rank.continues


def test_one_objective_is_asha():
    recorded = [(-0.9,), (-0.8,), (-0.7,)]
    assert rank_at_rung(recorded, (-0.95,), 2).continues
    assert not rank_at_rung(recorded, (-0.6,), 2).continues


def test_hypervolume_counts_only_the_region_of_interest():
    reference = (0.0, 3.0)  # minimised: -accuracy <= 0, memrw <= 3
    assert hypervolume([(-0.5, 1.0)], reference) == pytest.approx(0.5 * 2.0)
    assert hypervolume([(-0.5, 1.0), (-0.25, 2.0)], reference) == pytest.approx(1.0)
    assert hypervolume([(-0.5, 4.0)], reference) == 0.0
    assert hypervolume([], reference) == 0.0


def test_non_finite_points_form_the_last_front_and_spread_no_nan():
    points = np.array([[1, 5], [math.nan, 0], [5, 1], [3, 3], [-math.inf, 9], [2, 2]])
    fronts = [sorted(front.tolist()) for front in non_dominated_fronts(points)]
    assert fronts == [[0, 2, 5], [3], [1, 4]]
    distances = crowding_distances(points[[0, 2, 5, 1]])
    assert not np.isnan(distances).any()
    assert distances[3] == 0 and np.isinf(distances[[0, 1]]).all() and distances[2] > 0


def test_a_nan_point_ranks_last_at_a_rung_and_never_blocks_the_others():
    others = [(-0.5, 2.0), (-0.6, 3.0), (-0.7, 4.0)]
    nan = rank_at_rung(others, (math.nan, 1.0), 2)
    assert nan.ahead == 3 and not nan.continues
    after = rank_at_rung([*others, (math.nan, 1.0)], (-0.8, 1.5), 2)
    assert after.front == 0 and after.ahead == 0 and after.continues
