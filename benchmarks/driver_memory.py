"""Where the driver's memory grows through Ray, by allocation site: the real driver (searcher,
Pareto scheduler, sampler, SQLite storage, Ray Tune) runs the scale benchmark's space with
the surrogate trial on a local Ray, with tracemalloc on, and two snapshots taken as the
study passes two counts of ended trials; what was allocated between them and is still held,
per trial, grouped by the three innermost frames of where it was allocated.

The figures are Python's heap (tracemalloc's traces), not the resident size: tracemalloc's
own records inflate RSS far beyond the driver's (the RSS line is printed for scale only).
benchmarks/scale.py measures RSS without tracemalloc.

    python -m benchmarks.driver_memory --trials 700 --first 200 --second 650 --workers 16
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sqlite3
import sys
import threading
import time
import tracemalloc
from pathlib import Path

from benchmarks.driver_samples import rss_mib
from benchmarks.scale import SPACE


def ended_trials(db: Path) -> int | None:
    """Trials the study in ``db`` has ended (None while it cannot be read yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                                timeout=5)) as connection:
            return connection.execute(
                "SELECT count(*) FROM trials WHERE state != 'RUNNING'").fetchone()[0]
    except sqlite3.Error:
        return None


def growth_lines(diffs: list[tracemalloc.StatisticDiff], trials: int, rows: int = 15
                 ) -> list[str]:
    """The traced growth per trial in all and by the ``rows`` largest sites, each with its
    innermost frames."""
    total = sum(diff.size_diff for diff in diffs)
    lines = [f"traced growth {total / 2**20:.1f} MiB: {total / 1024 / trials:.1f} KiB a trial"]
    for diff in sorted(diffs, key=lambda d: d.size_diff, reverse=True)[:rows]:
        lines.append(f"{diff.size_diff / 1024 / trials:7.2f} KiB a trial, "
                     f"{diff.count_diff:+d} blocks")
        lines += [f"      {frame.filename}:{frame.lineno}" for frame in diff.traceback]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=700)
    parser.add_argument("--first", type=int, default=200, help="ended trials at snapshot 1")
    parser.add_argument("--second", type=int, default=650, help="ended trials at snapshot 2")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--folder", type=Path, default=Path("runs/driver-memory"))
    args = parser.parse_args(argv)
    if not 0 < args.first < args.second <= args.trials:
        parser.error("expected 0 < --first < --second <= --trials")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from threshsearch.search.runner import run_search
    from threshsearch.search.space import load_space
    from threshsearch.search.surrogate import surrogate_trainable

    folder = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / f"study-{time.strftime('%Y%m%d-%H%M%S')}.db"
    base = load_space(SPACE)
    space = base.replace(study=base.study.replace(
        name="driver-memory", n_trials=args.trials, concurrency=args.workers,
        storage=f"sqlite:///{db}"))
    snapshots: dict[int, tuple[tracemalloc.Snapshot, int, float]] = {}

    def watch() -> None:
        while len(snapshots) < 2:
            time.sleep(1)
            ended = ended_trials(db) or 0
            for mark in (args.first, args.second):
                if ended >= mark and mark not in snapshots:
                    snapshots[mark] = (tracemalloc.take_snapshot(), ended, rss_mib())
                    print(f"snapshot at {ended} ended trials", file=sys.stderr, flush=True)

    tracemalloc.start(3)
    threading.Thread(target=watch, daemon=True).start()
    ray.init(num_cpus=args.workers, include_dashboard=False)
    here = os.getcwd()
    os.chdir(folder)  # the study's folder (Tune's files) lands here
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the progress lines
            run_search(space, trainable=surrogate_trainable(32, 0.02))
    finally:
        os.chdir(here)
    if len(snapshots) < 2:
        sys.exit(f"driver_memory: the study ended {ended_trials(db)} trials, short of "
                 f"--second {args.second}")
    (first, ended_1, rss_1), (second, ended_2, rss_2) = (snapshots[args.first],
                                                        snapshots[args.second])
    trials = ended_2 - ended_1
    print(f"trials {ended_1} -> {ended_2}; RSS {rss_1:.0f} -> {rss_2:.0f} MiB (tracemalloc's "
          f"own records included)")
    print("\n".join(growth_lines(second.compare_to(first, "traceback"), trials)))


if __name__ == "__main__":
    main()
