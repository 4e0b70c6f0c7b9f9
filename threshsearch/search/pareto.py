"""Pareto ranking of objective vectors: non-dominated sorting, crowding distance, the rank of
one point among others, and the hypervolume of a front. Every vector here is minimised:
callers negate the objectives they maximise (``minimised``). A point with a non-finite value
(a NaN loss, an infinite latency) ranks last: it neither dominates nor is dominated in any
useful sense, so it is put on a front of its own behind every finite point and is left out of
the crowding distances of the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def minimised(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    """``values`` with each maximised objective negated, so that smaller is better on all."""
    return tuple(-float(v) if d == "maximize" else float(v)
                 for v, d in zip(values, directions, strict=True))


def non_dominated_fronts(points: np.ndarray) -> list[np.ndarray]:
    """Indices of ``points`` (n x m, minimised) grouped into fronts: the first holds the
    points no other point dominates, the next those dominated only by the first, and so on;
    points with a non-finite value make up the last front."""
    points = np.asarray(points, dtype=float)
    if len(points) == 0:
        return []
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        index = np.flatnonzero(finite)
        fronts = [index[front] for front in non_dominated_fronts(points[finite])]
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


def crowding_distances(points: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front: the sum over objectives of
    the normalised gap between its neighbours; the extremes of each objective get infinity,
    so a front's ends (the cheapest network, the most accurate) always rank first. A point
    with a non-finite value gets 0 and takes no part in the others' distances."""
    points = np.asarray(points, dtype=float)
    count, objectives = points.shape
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        distance = np.zeros(count)
        distance[finite] = crowding_distances(points[finite].reshape(-1, objectives))
        return distance
    distance = np.zeros(count)
    if count <= 2:
        return np.full(count, np.inf)
    for axis in range(objectives):
        order = np.argsort(points[:, axis], kind="stable")
        column = points[order, axis]
        distance[order[0]] = distance[order[-1]] = np.inf
        spread = column[-1] - column[0]
        if spread > 0:
            distance[order[1:-1]] += (column[2:] - column[:-2]) / spread
    return distance


@dataclass(frozen=True)
class RungRank:
    """Where one point stands among the points recorded at a rung."""

    front: int  # 0: nothing recorded there dominates it
    ahead: int  # points ranked strictly before it (better front, or more crowding room)
    recorded: int  # points ranked, itself included
    kept: int  # how many of them go on: ceil(recorded / reduction_factor)

    @property
    def continues(self) -> bool:
        return self.ahead < self.kept


def rank_at_rung(others: Sequence[Sequence[float]], point: Sequence[float],
                 reduction_factor: float) -> RungRank:
    """Rank ``point`` among ``others`` (all minimised) by non-dominated sorting, then by
    crowding distance inside its front. It continues when fewer than ceil(n / reduction
    factor) points rank strictly before it, so ties (the extremes of a front, whose crowding
    distances are all infinite) go on together rather than be cut arbitrarily."""
    points = np.array([*others, point], dtype=float).reshape(len(others) + 1, -1)
    own = len(points) - 1
    ahead = 0
    for index, front in enumerate(non_dominated_fronts(points)):
        if own in front:
            crowding = crowding_distances(points[front])
            mine = crowding[list(front).index(own)]
            ahead += int((crowding > mine).sum())
            kept = int(np.ceil(len(points) / reduction_factor))
            return RungRank(index, ahead, len(points), kept)
        ahead += len(front)
    raise AssertionError("every point lies on some front")


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """The volume that ``points`` (minimised) dominate inside the box bounded by
    ``reference``; points outside that box add nothing."""
    from optuna._hypervolume import compute_hypervolume  # Optuna's exact WFG algorithm

    reference = np.asarray(reference, dtype=float)
    inside = [p for p in np.asarray(points, dtype=float).reshape(-1, len(reference))
              if (p < reference).all()]
    if not inside:
        return 0.0
    return float(compute_hypervolume(np.array(inside), reference))
