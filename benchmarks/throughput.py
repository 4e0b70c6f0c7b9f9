"""Trials a second against the yardstick, in rotated pairs: issue 19's comparison of this
driver with plain Ray Tune (Tuner + OptunaSearch + ASHAScheduler, ``benchmarks.yardstick``)
on the same surrogate trials, workers and Ray, repeated so that the machine's drift shows as
spread instead of passing for a difference.

One run of each (as ``benchmarks.scale`` makes them) gave ratios from 0.42x to 1.31x on one
2-core machine, and the yardstick alone 1.44 to 3.51 trials a second: with 64 logical
workers the two cores are busy throughout, mostly with Ray's workers, so a run's pace follows
whatever else the machine does. Here each pair runs both, in an order rotated per pair (this
driver first in the first, third, ... pair), each with a study of its own; the ratio of each
pair is this driver's trials a second over the yardstick's, and the summary is their
geometric mean with a 95 % t interval of the mean log ratio (and the same of epochs a second,
the work the trials did). Beside each run: the epochs a
trial ran (the two early-stopping rules stop differently, and an epoch is most of a trial's
work), how busy the machine was and how much of its time the hypervisor gave to other
guests (Linux's /proc/stat), and how many Ray worker processes the run started (at least):
on two cores, with trials far shorter than a worker's start, Tune asks Ray for new workers,
then hands the trials reused ones and cancels the requests, and the processes Ray starts
meanwhile take much of the machine (docs/benchmarks.md, "What a 64-worker run measures on
two cores"). The
first run of a session, always this driver's, also starts Ray's worker processes cold; an
even number of pairs balances the orders.

    python -m benchmarks.throughput --pairs 4 --trials 300             # 20-36 minutes here
    python -m benchmarks.throughput --pairs 2 --trials 60 --workers 8  # smoke: ~2 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from benchmarks.periodic import Periodic
from benchmarks.scale import (
    SPACE,
    budget_and_draws,
    epochs_trained,
    local_postgres,
    refuse_counts_below_one,
    run_ours,
)
from benchmarks.search_quality import rotated
from benchmarks.yardstick import run_plain_tune

OURS, YARDSTICK = "this driver", "yardstick"


@dataclass
class Run:
    kind: str
    pair: int
    trials: int
    wall_s: float
    epochs: int
    shares: tuple[float, float] | None  # the machine's busy and stolen shares of its CPU time
    workers_started: int | None  # Ray worker processes started during the run

    @property
    def trials_per_s(self) -> float:
        return self.trials / self.wall_s

    @property
    def epochs_per_s(self) -> float:
        return self.epochs / self.wall_s


def machine_cpu_s() -> tuple[float, float, float] | None:
    """(busy, stolen, total) CPU seconds of the whole machine since boot, all cores: busy
    is user, nice, system and interrupts; stolen is the time a hypervisor gave to other
    guests; total is busy, stolen, idle and I/O wait (guests' time is already inside user
    and nice).
    None where /proc/stat is not there to read."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, idle, iowait, irq, softirq, steal = (
                int(value) for value in stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = user + nice + system + irq + softirq
    return busy / ticks, steal / ticks, (busy + steal + idle + iowait) / ticks


def cpu_shares(before: tuple[float, float, float] | None,
               after: tuple[float, float, float] | None) -> tuple[float, float] | None:
    """The busy and stolen shares of the machine's CPU time between two readings."""
    if before is None or after is None or after[2] <= before[2]:
        return None
    total = after[2] - before[2]
    return (after[0] - before[0]) / total, (after[1] - before[1]) / total


RAY_AGENTS = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}  # Ray's own, not workers


def is_ray_worker(argv: list[str]) -> bool:
    """A Ray worker's command line: ``ray::<what it runs>`` once started (Ray's agents
    excepted), ``python .../default_worker.py ...`` while it starts (the raylet's own line
    names that script only inside a longer argument)."""
    if not argv:
        return False
    if argv[0].startswith("ray::"):
        return argv[0].split()[0] not in RAY_AGENTS
    return any(arg.endswith("default_worker.py") for arg in argv[1:])


class WorkerStarts(Periodic):
    """Counts the Ray worker processes this process's Ray starts while it runs: new
    processes (found in /proc every ``every_s``) that descend from this one (a local Ray's
    raylet is its child, the workers the raylet's: another Ray on the machine is left out),
    whose command line is a Ray worker's and whose parent is no worker (a worker's own
    children keep its name). A lower bound: a process started and ended between two looks
    is missed (a worker takes seconds to start here). A process seen before it has exec'd
    into the worker is looked at again for ``rounds`` looks. ``started`` is None where
    /proc could not be read throughout."""

    def __init__(self, every_s: float = 0.5, rounds: int = 4) -> None:
        super().__init__(every_s, at_start=False, at_exit=True)
        self.rounds = rounds
        self.count = 0
        self._root = os.getpid()
        try:
            self._seen = self._pids()
        except OSError as error:  # no /proc here
            self._seen, self.error = set(), f"{type(error).__name__}: {error}"
        self._workers: set[int] = set()
        self._unsure: dict[int, int] = {}  # pid: looks left at it

    @property
    def started(self) -> int | None:
        return None if self.error else self.count

    @staticmethod
    def _pids() -> set[int]:
        return {int(name) for name in os.listdir("/proc") if name.isdigit()}

    @staticmethod
    def _read(pid: int, name: str) -> str | None:
        try:
            with open(f"/proc/{pid}/{name}", "rb") as file:
                return file.read().decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            return None  # gone

    def _parent(self, pid: int) -> int | None:
        stat = self._read(pid, "stat")
        # the parent is the second field after the name, which may hold spaces and ")"
        return None if stat is None else int(stat[stat.rindex(")") + 2:].split()[1])

    def _descends(self, pid: int | None) -> bool:
        """Whether ``pid`` is this process or below it (None: a process gone)."""
        for _ in range(16):  # raylet, worker: a few generations at most
            if pid == self._root:
                return True
            if pid is None or pid <= 1:
                return False
            pid = self._parent(pid)
        return False

    def _judge(self, pid: int) -> bool | None:
        """True: a new worker of this Ray; False: gone, or a worker's command line in no
        process of this Ray; None: no worker's command line (yet: it may not have exec'd)."""
        command = self._read(pid, "cmdline")
        if command is None:
            return False
        if not is_ray_worker(command.split("\0")):
            return None
        parent = self._parent(pid)  # read once: the first step of the descent
        return parent not in self._workers and self._descends(parent)

    def _tick(self) -> None:
        pids = self._pids()
        for pid in pids - self._seen:
            self._unsure[pid] = self.rounds
        self._seen = pids  # only the living: a pid used again later is a new process
        self._workers &= pids
        for pid in list(self._unsure):
            verdict = self._judge(pid)
            if verdict:
                self.count += 1
                self._workers.add(pid)
            if verdict is not None or self._unsure[pid] <= 1:
                del self._unsure[pid]
            else:
                self._unsure[pid] -= 1


def geometric_mean_interval(ratios: list[float], confidence: float = 0.95
                            ) -> tuple[float, float, float]:
    """(geometric mean, low, high) of ``ratios`` (one per pair): the t interval of the mean
    of their logarithms, taken back; the interval is NaN with fewer than two ratios."""
    logs = np.log(np.asarray(ratios, dtype=float))
    mean = float(logs.mean())
    if len(logs) < 2:
        return math.exp(mean), math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(logs) - 1)
                 * logs.std(ddof=1) / math.sqrt(len(logs)))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def run_pair_member(kind: str, pair: int, space, args: argparse.Namespace, folder: Path,
                    postgres: str | None) -> Run:
    before = machine_cpu_s()
    with WorkerStarts() as starts:
        trials, wall, epochs = run_driver(kind, pair, space, args, folder, postgres)
    return Run(kind, pair, trials, wall, epochs, cpu_shares(before, machine_cpu_s()),
               starts.started)


def run_driver(kind: str, pair: int, space, args: argparse.Namespace, folder: Path,
               postgres: str | None) -> tuple[int, float, int]:
    """(budget trials, wall seconds, epochs) of one run of ``kind``."""
    if kind == OURS:
        url = postgres or f"sqlite:///{(folder / f'ours-{pair}.db').resolve()}"
        settings = space.study.replace(n_trials=args.trials, concurrency=args.workers,
                                       storage=url, name=f"throughput-{folder.name}-{pair}")
        study, wall = run_ours(space.replace(study=settings), args.epoch_s,
                               folder / f"progress-{pair}.log")
        stored = study.get_trials(deepcopy=False)
        trials, _ = budget_and_draws(stored)
        epochs = epochs_trained(stored)
    else:
        run = run_plain_tune(space, args.trials, args.workers, args.epoch_s,
                             folder / f"pair-{pair}")
        trials, wall, epochs = run.trials, run.wall_s, run.epochs
    return trials, wall, epochs


def paired(runs: list[Run]) -> list[tuple[Run, Run]]:
    """(this driver's run, the yardstick's) of each pair, in the pairs' order."""
    def member(pair: int, kind: str) -> Run:
        return next(run for run in runs if run.pair == pair and run.kind == kind)

    return [(member(pair, OURS), member(pair, YARDSTICK))
            for pair in sorted({run.pair for run in runs})]


def ratio_line(runs: list[Run], what: str, rate: Callable[[Run], float]) -> str:
    """The pairs' ratios of ``rate`` (this driver's over the yardstick's), summarised."""
    ratios = [rate(ours) / rate(plain) for ours, plain in paired(runs)]
    mean, low, high = geometric_mean_interval(ratios)
    return (f"this driver / yardstick, {what}: geometric mean {mean:.2f}x, 95 % t interval "
            f"[{low:.2f}, {high:.2f}] over {len(ratios)} pairs")


def started(run: Run) -> str:
    return "-" if run.workers_started is None else str(run.workers_started)


def pair_table(runs: list[Run]) -> str:
    rows = ["| pair | order | this driver: trials/s, epochs a trial | yardstick: trials/s, "
            "epochs a trial | ratio | machine busy, stolen (this driver; yardstick) | "
            "Ray worker processes started (this driver; yardstick) |",
            "|---|---|---|---|---|---|---|"]
    for ours, plain in paired(runs):
        first = min((ours, plain), key=runs.index)
        busy = "; ".join("-" if run.shares is None else
                         f"{run.shares[0]:.0%}, {run.shares[1]:.0%}" for run in (ours, plain))
        rows.append(f"| {ours.pair + 1} | {first.kind} first | {ours.trials_per_s:.2f}, "
                    f"{ours.epochs / ours.trials:.2f} | {plain.trials_per_s:.2f}, "
                    f"{plain.epochs / plain.trials:.2f} | "
                    f"{ours.trials_per_s / plain.trials_per_s:.2f}x | {busy} | "
                    f"{started(ours)}; {started(plain)} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=300, help="trials a run")
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--epoch-s", type=float, default=0.02)
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite",
                        help="this driver's storage: a file a run, or a throwaway local "
                             "PostgreSQL server (the yardstick's study is in memory)")
    parser.add_argument("--folder", type=Path, default=Path("runs/throughput"))
    args = parser.parse_args()
    refuse_counts_below_one(parser, args, ("pairs", "trials", "workers"))
    if args.epoch_s < 0:
        parser.error(f"--epoch-s must be at least 0, got {args.epoch_s}")

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from threshsearch.search.cluster import connect_ray, quiet_ray
    from threshsearch.search.space import load_space

    quiet_ray()
    folder = args.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True)
    space = load_space(SPACE)
    runs: list[Run] = []
    with contextlib.ExitStack() as stack:
        postgres = (stack.enter_context(local_postgres()) if args.storage == "postgresql"
                    else None)
        connect_ray(None, num_cpus=args.workers)
        stack.callback(ray.shutdown)  # before the storage's server stops, error or not
        for pair in range(args.pairs):
            for kind in rotated([OURS, YARDSTICK], pair):
                run = run_pair_member(kind, pair, space, args, folder, postgres)
                runs.append(run)
                print(f"pair {pair + 1}/{args.pairs}, {kind}: {run.trials} trials in "
                      f"{run.wall_s:.0f} s, {run.trials_per_s:.2f} a second", flush=True)

    print(f"\n{args.pairs} pairs of {args.trials} trials, {args.workers} logical workers, "
          f"{args.epoch_s * 1e3:g} ms an epoch, this driver on {args.storage} (this machine: "
          f"{os.cpu_count()} cores)")
    print(pair_table(runs))
    print()
    print(ratio_line(runs, "trials a second", lambda run: run.trials_per_s))
    # The work the trials did: the two early-stopping rules keep different shares of epochs.
    print(ratio_line(runs, "epochs a second", lambda run: run.epochs_per_s))
    print(f"runs: {folder}")


if __name__ == "__main__":
    main()
