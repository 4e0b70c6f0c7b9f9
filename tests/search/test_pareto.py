"""Non-dominated sorting, crowding distance, the rung rank, the hypervolume and IGD+."""

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threshsearch.search.pareto import (
    RungRank,
    crowding_distances,
    hypervolume,
    igd_plus,
    minimised,
    pareto_fronts,
)


# ------------------------------------------------------------------ the simple oracle
# The whole-rung sort the scheduler used before it kept its fronts up to date: O(n^2 m) per
# decision, kept here as the truth the incremental ranking must match.
def oracle_fronts(points: np.ndarray) -> list[np.ndarray]:
    """Indices of ``points`` (n x m, minimised) grouped into fronts: the first holds the
    points no other point dominates, the next those dominated only by the first, and so on;
    points with a non-finite value make up the last front."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return []
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        index = np.flatnonzero(finite)
        fronts = [index[front] for front in oracle_fronts(points[finite])]
        return [*fronts, np.flatnonzero(~finite)]
    no_worse = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    better = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominates = no_worse & better  # dominates[i, j]: i dominates j
    dominated_by = dominates.sum(axis=0)
    remaining = np.ones(len(points), dtype=bool)
    fronts = []
    while remaining.any():
        front = np.flatnonzero(remaining & (dominated_by == 0))
        fronts.append(front)
        remaining[front] = False
        dominated_by -= dominates[front].sum(axis=0)
    return fronts




def oracle_rank(others: Sequence[Sequence[float]], point: Sequence[float],
                 reduction_factor: float) -> RungRank:
    """Rank ``point`` among ``others`` (all minimised) by non-dominated sorting, then by
    crowding distance inside its front. It continues when fewer than ceil(n / reduction
    factor) points rank strictly before it, so ties (the extremes of a front, whose crowding
    distances are all infinite) go on together rather than be cut arbitrarily."""
    points = np.array([*others, point], dtype=float).reshape(len(others) + 1, -1)
    own = len(points) - 1
    ahead = 0
    for index, front in enumerate(oracle_fronts(points)):
        if own in front:
            crowding = crowding_distances(points[front])
            mine = crowding[list(front).index(own)]
            ahead += int((crowding > mine).sum())
            kept = int(np.ceil(len(points) / reduction_factor))
            return RungRank(index, ahead, len(points), kept)
        ahead += len(front)
    raise AssertionError("every point lies on some front")


def rank_at_rung(others, point, reduction_factor) -> RungRank:
    """The production ranking: the others recorded one by one, then the point ranked."""
    fronts = pareto_fronts(len(point))
    for other in others:
        fronts.add(other)
    return fronts.rank(point, reduction_factor)


def test_minimised_negates_maximised_objectives():
    assert minimised([0.9, 3.0], ["maximize", "minimize"]) == (-0.9, 3.0)


def test_fronts_peel_in_order():
    points = np.array([[1, 5], [2, 2], [5, 1], [3, 3], [4, 4], [6, 6]])
    fronts = [sorted(front.tolist()) for front in oracle_fronts(points)]
    assert fronts == [[0, 1, 2], [3], [4], [5]]


def test_equal_points_share_a_front():
    fronts = oracle_fronts(np.array([[1, 1], [1, 1], [2, 2]]))
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
    fronts = [sorted(front.tolist()) for front in oracle_fronts(points)]
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


coordinate = st.one_of(st.integers(-3, 3).map(float),  # small integers: ties and equal points
                       st.floats(-5, 5, allow_nan=False), st.just(math.nan), st.just(math.inf))


@st.composite
def clouds(draw):
    objectives = draw(st.integers(1, 3))
    points = draw(st.lists(st.tuples(*[coordinate] * objectives), min_size=1, max_size=40))
    if draw(st.booleans()):
        # Worst first: each arrival tends to dominate chains of earlier points, so points
        # move back in cascades through many fronts.
        points.sort(key=lambda point: -float(np.nansum(point)))
    return points, draw(st.sampled_from([2, 3, 4]))


@settings(max_examples=150, deadline=None)
@given(clouds())
def test_the_kept_fronts_rank_every_arrival_as_the_whole_sort_does(cloud):
    points, reduction_factor = cloud
    fronts = pareto_fronts(len(points[0]))
    for index, point in enumerate(points):
        assert fronts.rank(point, reduction_factor) == oracle_rank(
            points[:index], point, reduction_factor)
        fronts.add(point)
    # The kept fronts are the whole sort's fronts.
    expected = np.empty(len(points), dtype=int)
    finite = np.isfinite(np.array(points, dtype=float)).all(axis=1)
    for number, front in enumerate(oracle_fronts(np.array(points, dtype=float))):
        expected[front] = number
    expected[~finite] = -1
    assert fronts.fronts.tolist() == expected.tolist()


def test_a_point_that_dominates_a_chain_moves_each_link_back_one_front():
    fronts = pareto_fronts(2)
    for point in [(4.0, 4.0), (3.0, 3.0), (2.0, 2.0), (5.0, -1.0), (1.0, 1.0)]:
        fronts.add(point)
    assert fronts.fronts.tolist() == [3, 2, 1, 0, 0]
    fronts.add((0.0, 0.0))  # dominates the whole chain and nothing else
    assert fronts.fronts.tolist() == [4, 3, 2, 0, 1, 0]


def test_igd_plus_counts_only_where_a_point_falls_short_worked_by_hand():
    front = [(0.0, 1.0), (1.0, 0.0)]
    # (0.5, 0.5) is 0.5 short of (0, 1) on the first objective only and of (1, 0) on the
    # second only: 0.5 from each (plain IGD would say sqrt(0.5) from each).
    assert igd_plus([(0.5, 0.5)], front) == pytest.approx(0.5)
    # (0, 2) is dominated by (0, 1): 1 from it, and (0, 2) vs (1, 0) falls short by 2.
    assert igd_plus([(0.0, 2.0)], front) == pytest.approx(1.5)
    # the nearer of two points counts for each reference point
    assert igd_plus([(0.0, 2.0), (1.0, 0.0)], front) == pytest.approx(0.5)
    # scaled: the second objective's shortfalls halved
    assert igd_plus([(0.0, 2.0)], front, scale=(1.0, 2.0)) == pytest.approx((0.5 + 1.0) / 2)
    assert igd_plus(front, front) == 0.0
    assert igd_plus([(-1.0, -1.0)], front) == 0.0, "beyond the reference front costs nothing"
    assert igd_plus([], front) == math.inf
