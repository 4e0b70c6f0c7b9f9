"""Driver at scale: the real driver (searcher, Pareto scheduler, sampler, storage, Ray Tune)
running thousands of surrogate trials (search/surrogate.py) on a local Ray of many logical
workers, and, in the same run, the same surrogate under plain Ray Tune (Tuner + OptunaSearch
+ ASHAScheduler, the same workers) as the yardstick.

Measured on the driver: its process CPU time per trial (sampled as trials end, per window of
``--window`` trials: the window ending at the 1,000th trial, or at a third of a smaller run,
against the last one), the slowest rung decision (the scheduler's ``decide``, its CPU time), its
resident memory (sampled; and the peak), and trials per second; beside them, a pace probe
and the sampler's model's asks per trial (``driver_samples``: the samples, taken, streamed
and summarised). The samples are written to the run's folder as they are taken
(``driver.csv``): a run stopped before its end keeps them.

    python -m benchmarks.scale --trials 120 --workers 16 --window 40   # smoke: 7 minutes
    python -m benchmarks.scale --trials 2000 --without-ray             # the driver alone
    python -m benchmarks.scale --trials 10000 --storage postgresql     # the issue's size
    python -m benchmarks.scale --from-samples runs/scale/RUN/driver.csv  # a run cut short

``--stored-yardstick`` runs the yardstick a second time with its Optuna study in the run's
storage (the issue's yardstick keeps it in memory): how much of the difference between the
two drivers is a persistent study.

The surrogate's workers import no PyTorch (the driver's spec carries the profiler's figures,
counted from the config; the yardstick's workers count them from the drawn config), so 64
of them start in seconds and fit in a few GiB.

Storage: ``sqlite`` (a file under --folder), ``postgresql`` (a throwaway server started
with this machine's PostgreSQL binaries, Debian's ``postgresql`` package: initdb and pg_ctl;
not a dependency of the project) or any storage URL. The surrogate's trials mostly sleep
(``--epoch-s`` an epoch), so 64 logical workers fit a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import itertools
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.driver_samples import DriverMeter, driver_lines, summarise_samples
from benchmarks.yardstick import run_plain_tune

if TYPE_CHECKING:
    import optuna

    from threshsearch.search.space import SearchSpace

SPACE = Path(__file__).with_name("scale.yaml")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def local_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on 127.0.0.1 and its database's URL."""
    initdb = shutil.which("initdb") or next(iter(sorted(glob.glob(
        "/usr/lib/postgresql/*/bin/initdb"))), None)
    if initdb is None:
        sys.exit("--storage postgresql: no initdb here (apt-get install postgresql); give "
                 "a server's URL instead")
    binaries = os.path.dirname(os.path.realpath(initdb))
    root = Path(tempfile.mkdtemp(prefix="scale-postgres-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:  # PostgreSQL refuses to run as root
        shutil.chown(root, user="postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, f"{binaries}/initdb", "-D", str(data), "-A", "trust", "-U",
                    "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, f"{binaries}/pg_ctl", "-D", str(data), "-w", "-l",
                    str(root / "log"), "-o", f"-p {port} -k {root} -c "
                    f"listen_addresses=127.0.0.1 -c max_connections=200", "start"],
                   check=True, capture_output=True)
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(f"postgresql://postgres@127.0.0.1:{port}/postgres",
                                          isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("CREATE DATABASE scale"))
        engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:{port}/scale"
    finally:
        subprocess.run([*as_user, f"{binaries}/pg_ctl", "-D", str(data), "-w", "-m", "fast",
                        "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def run_driver_alone(space: SearchSpace, log: Path) -> tuple[optuna.Study, float]:
    """(study, wall seconds): the driver's own work with no Ray: the searcher, the
    scheduler's decisions, the sampler and the storage, each trial run by the surrogate in
    this process, one after another, without sleeping."""
    from ray.tune.schedulers import TrialScheduler

    from threshsearch.search.evidence import objective_vector
    from threshsearch.search.progress import Progress
    from threshsearch.search.runner import open_study
    from threshsearch.search.schedulers import make_early_stopper
    from threshsearch.search.searcher import StudySearcher
    from threshsearch.search.surrogate import run_surrogate

    study = open_study(space)
    stopper = make_early_stopper(space, study.get_trials(deepcopy=False))
    scheduler = stopper.scheduler
    start = time.perf_counter()
    with open(log, "w") as stream, contextlib.redirect_stdout(stream):
        searcher = StudySearcher(space, study, 32, Progress(space), stopper.stop_reasons)
        for count in itertools.count():
            trial_id = f"t{count}"
            spec = searcher.suggest(trial_id)
            if spec == "FINISHED":
                break
            if not isinstance(spec, dict):
                continue
            reports = []
            run_surrogate(spec, reports.append, 32, 0.0)
            for report in reports:
                searcher.on_trial_result(trial_id, report)
                vector = objective_vector(report, scheduler.metrics, scheduler.directions)
                if scheduler.decide(trial_id, report.get("epoch"), vector) == \
                        TrialScheduler.STOP:
                    break
            searcher.on_trial_complete(trial_id, report)
        searcher.close()
    return study, time.perf_counter() - start


def budget_and_draws(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """(trials the budget counts, draws) of a study's ``trials``: a repeat of a network
    already tried is a draw the driver settles from the record, outside the budget."""
    from threshsearch.search.storage import DUPLICATE, STATUS

    repeats = sum(t.user_attrs.get(STATUS) == DUPLICATE for t in trials)
    return len(trials) - repeats, len(trials)


def epochs_trained(trials: list[optuna.trial.FrozenTrial]) -> int:
    """The epochs a study's budget ``trials`` ran (a repeat runs none)."""
    from threshsearch.search.storage import DUPLICATE, STATUS

    return sum(int(trial.user_attrs.get("epochs") or 0) for trial in trials
               if trial.user_attrs.get(STATUS) != DUPLICATE)


def wall_ms_by_window(trials: list[optuna.trial.FrozenTrial], window: int) -> list[float]:
    """Wall time per budget trial over the windows of ``window`` budget trials that end at
    the 2 ``window``-th, 3 ``window``-th, ... trial to end (each from the end of the trial
    before it; the first ``window`` trials only start the count), from a study's
    ``trials``' end times: how the driver's pace moved through the study, the storage's
    time included."""
    from threshsearch.search.storage import DUPLICATE, STATUS

    ends = sorted(t.datetime_complete.timestamp() for t in trials
                  if t.datetime_complete and t.user_attrs.get(STATUS) != DUPLICATE)
    return [(ends[last] - ends[last - window]) / window * 1e3
            for last in range(2 * window - 1, len(ends), window)]


def run_ours(space, epoch_s: float, log: Path) -> tuple[optuna.Study, float]:
    from threshsearch.search.runner import run_search
    from threshsearch.search.surrogate import surrogate_trainable

    with open(log, "w") as stream, contextlib.redirect_stdout(stream):  # the progress lines
        summary = run_search(space, trainable=surrogate_trainable(32, epoch_s))
    return summary.study, summary.wall_s


def refuse_counts_below_one(parser: argparse.ArgumentParser, args: argparse.Namespace,
                            names: tuple[str, ...]) -> None:
    """Exit with argparse's usage error when one of the ``names`` counts is below 1."""
    for name in names:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got "
                         f"{getattr(args, name)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--workers", type=int, default=64)
    parser.add_argument("--epoch-s", type=float, default=0.02)
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--storage", default="sqlite",
                        help="sqlite, postgresql (a throwaway local server) or a URL")
    parser.add_argument("--sampler", help="the study's sampler (the space's: auto)")
    parser.add_argument("--no-yardstick", action="store_true")
    parser.add_argument("--stored-yardstick", action="store_true",
                        help="also the yardstick with its Optuna study in the run's storage "
                             "(a diagnostic: the issue's yardstick keeps it in memory)")
    parser.add_argument("--without-ray", action="store_true",
                        help="the driver's own work alone: trials one after another in "
                             "this process (no Ray, no yardstick)")
    parser.add_argument("--folder", type=Path, default=Path("runs/scale"))
    parser.add_argument("--from-samples", type=Path, metavar="CSV",
                        help="only print the driver's figures from a run's driver.csv (one "
                             "stopped before its end included)")
    args = parser.parse_args()
    if args.from_samples is not None:
        print("\n".join(summarise_samples(args.from_samples)))
        return
    refuse_counts_below_one(parser, args, ("trials", "workers", "window"))
    if args.stored_yardstick and (args.no_yardstick or args.without_ray):
        parser.error("--stored-yardstick runs a yardstick: not with --no-yardstick or "
                     "--without-ray")

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from threshsearch.search.cluster import connect_ray, quiet_ray
    from threshsearch.search.space import load_space

    quiet_ray()
    folder = args.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    folder.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        url = {"sqlite": f"sqlite:///{folder / 'study.db'}",
               "postgresql": None}.get(args.storage, args.storage)
        if url is None:
            url = stack.enter_context(local_postgres())
        space = load_space(SPACE)
        settings = space.study.replace(n_trials=args.trials, concurrency=args.workers,
                                       storage=url, name=f"scale-{folder.name}",
                                       **({"sampler": args.sampler} if args.sampler else {}))
        space = space.replace(study=settings)
        window = min(args.window, max(1, args.trials // 3))
        meter = DriverMeter(folder / "driver.csv", args.trials, window)
        plain, stored = None, None
        if args.without_ray:
            with meter.installed():
                study, wall = run_driver_alone(space, folder / "progress.log")
            peak = peak_rss_mib()
        else:
            connect_ray(None, num_cpus=args.workers)
            stack.callback(ray.shutdown)  # before the storage's server stops, error or not
            with meter.installed():
                study, wall = run_ours(space, args.epoch_s, folder / "progress.log")
            peak = peak_rss_mib()
        # Read before the storage closes: a throwaway PostgreSQL server stops with the stack.
        stored_trials = study.get_trials(deepcopy=False)
        trials, draws = budget_and_draws(stored_trials)
        epochs = epochs_trained(stored_trials)
        paces = wall_ms_by_window(stored_trials, window)
        if not args.without_ray and not args.no_yardstick:  # as many trials as counted here
            plain = run_plain_tune(space, trials, args.workers, args.epoch_s, folder)
            if args.stored_yardstick:
                stored = run_plain_tune(space, trials, args.workers, args.epoch_s, folder, url)

    storage_name = url.split(":", 1)[0]
    where = ("no Ray, one trial at a time" if args.without_ray else
             f"{args.workers} logical workers, {args.epoch_s * 1e3:g} ms an epoch")
    print(f"\n{trials} trials ({draws - trials} repeats besides, settled on the driver), "
          f"{where}, storage {storage_name}, sampler {space.sampler_choice.kind} (this "
          f"machine: {os.cpu_count()} cores, shared)")
    print("| figure | value |\n|---|---|")
    print("\n".join(driver_lines(meter.samples, window, args.trials, meter.decision_line(),
                                 peak)))
    print(f"| trials per second, this driver (repeats not counted) | {trials / wall:.2f} "
          f"({wall:.0f} s; {epochs / trials:.2f} epochs a trial) |")
    for name, yardstick in (("", plain), (f" (its study in {storage_name})", stored)):
        if yardstick is not None:
            print(f"| trials per second, plain Ray Tune + OptunaSearch{name} + ASHA | "
                  f"{yardstick.trials / yardstick.wall_s:.2f} ({yardstick.wall_s:.0f} s; "
                  f"driver CPU {yardstick.driver_cpu_s / yardstick.trials * 1e3:.1f} ms, "
                  f"{yardstick.epochs / yardstick.trials:.2f} epochs a trial) |")
    print(f"\nwall per budget trial by windows of {window}, ending at trials {2 * window:,}, "
          f"{3 * window:,}, ... (from the trials' end times): "
          + (", ".join(f"{ms:.0f}" for ms in paces) + " ms" if paces else "too few trials"))
    print(f"progress lines: {folder / 'progress.log'}")


if __name__ == "__main__":
    main()
