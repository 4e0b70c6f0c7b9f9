"""Rung decisions at scale: the cost of one early-stopping decision as a rung fills.

Ranks and records 10,000 points one by one in one rung's kept fronts (search/pareto.py), for
one, two and three objectives, on uniform clouds and on drifting ones (later points better,
as a sampler that learns makes them), and prints the mean cost of a decision over the first
and the last thousand points, the 99th percentile, the slowest one and how many took over
50 ms, in its thread's CPU time (a virtual machine's pauses and other processes add wall
time the arithmetic did not spend), with the slowest in wall time beside it. No Ray, no
training: the scheduler's own arithmetic, which runs in Tune's event loop on the driver.

    python benchmarks/rung_decisions.py            # about a minute
"""

from __future__ import annotations

import time

import numpy as np

from threshsearch.search.pareto import pareto_fronts

POINTS = 10_000


def main() -> None:
    rng = np.random.default_rng(0)
    print("| objectives | cloud | mean ms, points 1-1000 | mean ms, 9001-10000 | p99 ms "
          "| slowest ms | over 50 ms | slowest ms, wall | fronts |")
    print("|---|---|---|---|---|---|---|---|---|")
    for objectives in (1, 2, 3):
        for drift in (False, True):
            fronts, times, walls = pareto_fronts(objectives), [], []
            for index in range(POINTS):
                point = rng.random(objectives)
                if drift:
                    point[0] -= index / POINTS
                start, began = time.thread_time(), time.perf_counter()
                fronts.rank(point, 3)
                fronts.add(point)
                times.append(time.thread_time() - start)
                walls.append(time.perf_counter() - began)
            ms = np.array(times) * 1e3
            print(f"| {objectives} | {'drifting' if drift else 'uniform'} | "
                  f"{ms[:1000].mean():.3f} | {ms[-1000:].mean():.3f} | "
                  f"{np.quantile(ms, 0.99):.2f} | {ms.max():.1f} | {int((ms > 50).sum())} | "
                  f"{max(walls) * 1e3:.1f} | {int(fronts.fronts.max()) + 1} |", flush=True)


if __name__ == "__main__":
    main()
