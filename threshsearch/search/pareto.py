"""Pareto ranking of objective vectors: crowding distance, a rung's points kept in their
non-dominated fronts as they come and the rank of a new point among them, and the
hypervolume of a front. Every vector here is minimised:
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
        # Strictly before: ties at the cut (the ends of a front, whose crowding distances
        # are all infinite) go on together rather than be cut arbitrarily.
        return self.ahead < self.kept


def _dominating(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which of ``points`` dominate ``point``."""
    return (points <= point).all(axis=1) & (points < point).any(axis=1)


def _dominated(points: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Which of ``points`` ``point`` dominates."""
    return (point <= points).all(axis=1) & (point < points).any(axis=1)


class ParetoFronts:
    """The points recorded at one rung, each with its front, kept up to date as points come,
    so that ranking a new point costs O(n m) instead of sorting the whole rung again.

    Ranks as non-dominated sorting of all the points would (non-finite points on a last
    front of their own), then by crowding distance inside the point's front.
    A point's front is the length of the longest chain of dominating points that ends at it;
    a new point lengthens only chains of points it dominates, by one at most."""

    def __init__(self, objectives: int) -> None:
        self.points = np.empty((0, objectives))
        self.fronts = np.empty(0, dtype=int)  # -1: a point with a non-finite value

    def __len__(self) -> int:
        return len(self.fronts)

    def _front_of(self, point: np.ndarray) -> int:
        """The front a finite ``point`` joins: one behind the last of those dominating it."""
        finite = self.fronts >= 0
        above = _dominating(self.points[finite], point)
        return int(self.fronts[finite][above].max()) + 1 if above.any() else 0

    def rank(self, point: Sequence[float], reduction_factor: float) -> RungRank:
        """Where ``point`` would stand among the recorded points (it is not added)."""
        point = np.asarray(point, dtype=float)
        recorded = len(self) + 1
        kept = int(np.ceil(recorded / reduction_factor))
        finite = self.fronts >= 0
        if not np.isfinite(point).all():
            # Behind every finite point, tied with the other non-finite ones.
            last = int(self.fronts.max()) + 1 if finite.any() else 0
            return RungRank(last, int(finite.sum()), recorded, kept)
        front = self._front_of(point)
        points, fronts = self.points[finite], self.fronts[finite]
        mates = points[(fronts == front) & ~_dominated(points, point)]
        crowding = crowding_distances(np.vstack([mates, point]))
        ahead = int((fronts < front).sum()) + int((crowding[:-1] > crowding[-1]).sum())
        return RungRank(front, ahead, recorded, kept)

    def add(self, point: Sequence[float]) -> None:
        """Record ``point``, moving back the points whose chains it lengthens."""
        point = np.asarray(point, dtype=float)
        if not np.isfinite(point).all():
            self._append(point, -1)
            return
        front = self._front_of(point)
        self._push_back(point, front)
        self._append(point, front)

    def _push_back(self, point: np.ndarray, front: int) -> None:
        """Move back one front each point the new ``point`` (joining ``front``) lengthens
        the longest chain of. A point moves back at most one front (a chain through the new
        point is at most one longer than the chain through whatever dominates the new
        point), and it moves iff it is dominated by the new point while on the same front,
        or by a point that moved from the front before its own: so the moves cascade front
        by front and stop at the first front where nothing moves."""
        movers = point[None, :]
        level = front
        while len(movers):
            here = np.flatnonzero(self.fronts == level)
            if not len(here):
                return
            block, mine = movers[:, None, :], self.points[here][None, :, :]
            moved = here[((block <= mine).all(axis=2) & (block < mine).any(axis=2)).any(axis=0)]
            self.fronts[moved] += 1
            movers = self.points[moved]
            level += 1

    def _append(self, point: np.ndarray, front: int) -> None:
        self.points = np.vstack([self.points, point])
        self.fronts = np.append(self.fronts, front)


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
