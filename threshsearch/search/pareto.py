"""Pareto ranking of objective vectors: crowding distance, a rung's points kept in their
non-dominated fronts as they come and the rank of a new point among them, and the
hypervolume of a front and its IGD+ distance to a reference front. Every vector here is minimised:
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
        mates = self._on(front)
        mates = mates[~_dominated(mates, point)]
        crowding = crowding_distances(np.vstack([mates, point]))
        ahead = int(((self.fronts >= 0) & (self.fronts < front)).sum()) \
            + int((crowding[:-1] > crowding[-1]).sum())
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
        by front and stop at the first front where nothing moves. Dominance is transitive,
        so only the points the new one dominates can move: each front's check compares the
        movers with those alone, not with the whole front."""
        below = np.flatnonzero((self.fronts >= 0) & _dominated(self.points, point))
        if not below.size:
            return
        below = below[np.argsort(self.fronts[below], kind="stable")]
        levels = self.fronts[below]
        movers = point[None, :]
        level = front
        while len(movers):
            here = below[np.searchsorted(levels, level):np.searchsorted(levels, level + 1)]
            if not here.size:
                break
            block, mine = movers[:, None, :], self.points[here][None, :, :]
            moved = here[((block <= mine).all(axis=2) & (block < mine).any(axis=2)).any(axis=0)]
            self.fronts[moved] = level + 1
            movers = self.points[moved]
            level += 1

    def _on(self, front: int) -> np.ndarray:
        """The points on ``front``."""
        return self.points[self.fronts == front]

    def _append(self, point: np.ndarray, front: int) -> None:
        self.points = np.vstack([self.points, point])
        self.fronts = np.append(self.fronts, front)


class SortedValues:
    """``ParetoFronts`` for one objective, where each distinct value is a front of its own:
    the values kept sorted, so ranking and recording a point cost O(log n) comparisons and
    one memory move, where a chain of fronts would move every worse point."""

    def __init__(self) -> None:
        self.values: list[float] = []  # as recorded
        self._sorted = np.empty(0)  # the finite values
        self._distinct = np.empty(0)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def fronts(self) -> np.ndarray:
        values = np.asarray(self.values, dtype=float)
        fronts = np.searchsorted(self._distinct, values)
        fronts[~np.isfinite(values)] = -1
        return fronts

    def rank(self, point: Sequence[float], reduction_factor: float) -> RungRank:
        (value,) = np.asarray(point, dtype=float)
        recorded = len(self) + 1
        kept = int(np.ceil(recorded / reduction_factor))
        if not np.isfinite(value):
            return RungRank(len(self._distinct), len(self._sorted), recorded, kept)
        # Equal values share a front, and the newcomer is at one of its ends (infinite
        # crowding): only the strictly better values rank ahead of it.
        return RungRank(int(np.searchsorted(self._distinct, value)),
                        int(np.searchsorted(self._sorted, value)), recorded, kept)

    def add(self, point: Sequence[float]) -> None:
        (value,) = np.asarray(point, dtype=float)
        self.values.append(float(value))
        if np.isfinite(value):
            self._sorted = np.insert(self._sorted, np.searchsorted(self._sorted, value), value)
            at = np.searchsorted(self._distinct, value)
            if at == len(self._distinct) or self._distinct[at] != value:
                self._distinct = np.insert(self._distinct, at, value)


def pareto_fronts(objectives: int) -> ParetoFronts | SortedValues:
    """An empty set of points kept in their fronts, for vectors of ``objectives`` values."""
    return SortedValues() if objectives == 1 else ParetoFronts(objectives)


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


def igd_plus(points: Sequence[Sequence[float]], reference_front: Sequence[Sequence[float]],
             scale: Sequence[float] | None = None) -> float:
    """IGD+ (Ishibuchi et al., 2015) of ``points`` against ``reference_front``, both minimised:
    the mean, over the reference front's points, of the distance from each to the nearest of
    ``points``, counting only the objectives on which that point is worse. 0 when ``points``
    reach every reference point; unlike plain IGD it never rewards being dominated. Each
    objective's difference is divided by its ``scale`` (e.g. the reference front's range), so
    that objectives in different units weigh alike. Infinite when ``points`` is empty."""
    front = np.asarray(reference_front, dtype=float)
    found = np.asarray(points, dtype=float).reshape(-1, front.shape[1])
    if len(found) == 0:
        return float("inf")
    weights = np.ones(front.shape[1]) if scale is None else np.asarray(scale, dtype=float)
    shortfall = np.maximum(found[:, None, :] - front[None, :, :], 0.0) / weights
    return float(np.sqrt((shortfall ** 2).sum(axis=2)).min(axis=0).mean())
