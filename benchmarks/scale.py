"""Driver at scale: the real driver (searcher, Pareto scheduler, sampler, storage, Ray Tune)
running thousands of surrogate trials (search/surrogate.py) on a local Ray of many logical
workers, and, in the same run, the same surrogate under plain Ray Tune (Tuner + OptunaSearch
+ ASHAScheduler, the same workers) as the yardstick.

Measured on the driver: its process CPU time per trial (sampled as trials end, per window of
``--window`` trials: the window ending at the 1,000th trial, or at a third of a smaller run,
against the last one), the slowest rung decision (the scheduler's ``decide``, its CPU time), its
resident memory (sampled; and the peak), and trials per second. Beside them, two figures
that tell a driver doing more from a machine going slower: the pace probe, a fixed unit of
driver-like work (numpy over arrays the size of TPE's, Python sorting dicts) timed in the
driver every ``PROBE_EVERY`` trials (its CPU is left out of the driver's), and the times the
sampler's model (TPE) was asked per trial. The samples are written to
the run's folder as they are taken (``driver.csv``): a run stopped before its end keeps them.

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
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from benchmarks.yardstick import run_plain_tune

if TYPE_CHECKING:
    import optuna

    from threshsearch.search.space import SearchSpace

SPACE = Path(__file__).with_name("scale.yaml")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_COLUMNS = ("trials_ended", "cpu_s", "rss_mib", "decisions", "decisions_cpu_s",
                  "slowest_decision_s", "decisions_over_50ms", "probe_cpu_s", "probes",
                  "model_asks")
EARLIER_COLUMNS = SAMPLE_COLUMNS[:7]  # files of runs before the probe: read, without it
PROBE_EVERY = 25  # trial ends between two runs of the pace probe


class Sample(NamedTuple):
    """The driver as a trial ended: trials ended, CPU seconds, RSS, and so far the pace
    probe's CPU seconds, its runs, and the model's asks."""

    trials: int
    cpu_s: float
    rss_mib: float
    probe_cpu_s: float = 0.0
    probes: int = 0
    asks: int = 0


def pace_probe() -> float:
    """CPU seconds (this thread's) of one fixed unit of work like the driver's: numpy over
    candidates-by-kernels arrays, as TPE's acquisition, and Python sorting records."""
    start = time.thread_time()
    values = np.linspace(0.1, 1.0, 24 * 1024).reshape(24, 1024)
    for _ in range(4):
        np.log(values).sum(axis=1)
    records = [{"number": index, "value": index * 0.37 % 1.0, "state": index % 3}
               for index in range(3000)]
    sorted(records, key=lambda record: (record["state"], -record["value"]))
    return time.thread_time() - start
SLOW_DECISION_S = 0.05  # the bound on one rung decision


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


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


class DriverMeter:
    """Samples of the driver as trials end, and the scheduler's decision times: installed
    around the searcher's and the scheduler's methods for one run. With ``log``, each sample
    is also appended to that file as it is taken (a line naming the run's ``trials`` and
    ``window``, then SAMPLE_COLUMNS, the decisions so far included), so that a run stopped
    or crashed before its end still leaves its figures (``--from-samples``)."""

    def __init__(self, log: Path | None = None, trials: int = 0, window: int = 1) -> None:
        self.samples: list[Sample] = []
        self.decisions: list[float] = []  # CPU seconds of each rung decision
        self.log, self.trials, self.window = log, trials, window

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from threshsearch.search.samplers.fitonce import FittedOnceTPE
        from threshsearch.search.schedulers.pareto import ParetoSuccessiveHalving
        from threshsearch.search.searcher import StudySearcher

        complete, decide = StudySearcher.on_trial_complete, ParetoSuccessiveHalving.decide
        ask = FittedOnceTPE.sample_relative
        own_ask = "sample_relative" in vars(FittedOnceTPE)  # else inherited: restored so
        stream = None if self.log is None else open(self.log, "w", buffering=1)  # noqa: SIM115
        if stream is not None:
            stream.write(f"# trials={self.trials} window={self.window}\n"
                         + ",".join(SAMPLE_COLUMNS) + "\n")
        # Kept as they come: a sum over every decision at each sample would cost the
        # driver more as the run goes on, inside the very windows being compared.
        total, slowest, over = 0.0, 0.0, 0
        probe_cpu, probes, asks = 0.0, 0, 0

        def counted_ask(sampler, *args, **kwargs):
            nonlocal asks
            asks += 1
            return ask(sampler, *args, **kwargs)

        def timed_decide(scheduler, *args, **kwargs):
            nonlocal total, slowest, over
            # CPU time of the deciding thread: on a shared machine wall time would count
            # the moments the OS gave the core to someone else.
            start = time.thread_time()
            try:
                return decide(scheduler, *args, **kwargs)
            finally:
                took = time.thread_time() - start
                self.decisions.append(took)
                total, slowest, over = total + took, max(slowest, took), \
                    over + (took > SLOW_DECISION_S)

        def sampled_complete(searcher, *args, **kwargs):
            nonlocal probe_cpu, probes
            complete(searcher, *args, **kwargs)
            finished = searcher.index.counts().finished
            # Once each PROBE_EVERY trials ended (the count also moves outside this method:
            # a draw settled on the driver, a repeat, ends no Tune trial).
            if finished // PROBE_EVERY > probes:
                probe_cpu, probes = probe_cpu + pace_probe(), probes + 1
            sample = Sample(finished, time.process_time(), rss_mib(), probe_cpu, probes, asks)
            self.samples.append(sample)
            if stream is not None:
                stream.write(f"{sample.trials},{sample.cpu_s!r},{sample.rss_mib!r},"
                             f"{len(self.decisions)},{total!r},{slowest!r},{over},"
                             f"{probe_cpu!r},{probes},{asks}\n")

        StudySearcher.on_trial_complete = sampled_complete
        ParetoSuccessiveHalving.decide = timed_decide
        FittedOnceTPE.sample_relative = counted_ask
        try:
            yield
        finally:
            StudySearcher.on_trial_complete = complete
            ParetoSuccessiveHalving.decide = decide
            if own_ask:
                FittedOnceTPE.sample_relative = ask
            else:
                del FittedOnceTPE.sample_relative
            if stream is not None:
                stream.close()

    def decision_line(self) -> str | None:
        """The table's line on rung decisions, None when there were none."""
        if not self.decisions:
            return None
        decisions = np.array(self.decisions) * 1e3
        return decision_line(len(decisions), decisions.sum(), decisions.max(),
                             int((decisions > SLOW_DECISION_S * 1e3).sum()))


def _window(samples: list[Sample], end: int, window: int) -> tuple[Sample, Sample] | None:
    """The samples that open and close the ``window`` trials ending at the ``end``-th."""
    ends = np.array([sample.trials for sample in samples])
    last, first = np.searchsorted(ends, end), np.searchsorted(ends, end - window)
    if last >= len(ends) or first >= last:
        return None
    return samples[first], samples[last]


def cpu_ms_per_trial(samples: list[Sample], end: int, window: int) -> float | None:
    """Driver CPU per trial over the ``window`` trials ending at the ``end``-th, from
    ``samples`` in the order taken, the pace probe's left out."""
    opened = _window(samples, end, window)
    if opened is None:
        return None
    first, last = opened
    return ((last.cpu_s - first.cpu_s) - (last.probe_cpu_s - first.probe_cpu_s)) / (
        last.trials - first.trials) * 1e3


def probe_ms(samples: list[Sample], end: int, window: int) -> float | None:
    """The pace probe's mean CPU ms over its runs in that window (None: no run)."""
    opened = _window(samples, end, window)
    if opened is None or opened[1].probes == opened[0].probes:
        return None
    first, last = opened
    return (last.probe_cpu_s - first.probe_cpu_s) / (last.probes - first.probes) * 1e3


def asks_per_trial(samples: list[Sample], end: int, window: int) -> float | None:
    """The sampler's model's asks per trial ended in that window."""
    opened = _window(samples, end, window)
    if opened is None:
        return None
    first, last = opened
    return (last.asks - first.asks) / (last.trials - first.trials)


def decision_line(count: int, total_ms: float, slowest_ms: float, over: int) -> str:
    """The table's line on ``count`` rung decisions of ``total_ms`` CPU time in all."""
    return (f"| rung decisions (CPU time) | {count}, mean {total_ms / count:.2f} ms, slowest "
            f"{slowest_ms:.1f} ms, {over} over {SLOW_DECISION_S * 1e3:g} ms |")


def driver_lines(samples: list[Sample], window: int, trials: int,
                 decisions: str | None, peak_mib: float | None) -> list[str]:
    """The table's lines on the driver: CPU per trial in the window ending at the 1,000th
    trial (or at twice the window in a run of fewer than 1,000 + ``window`` ``trials``)
    against the last window, with the pace probe and the model's asks in the same windows
    where the samples have them, the rung decisions' line, and memory."""
    early_end = 1000 if trials >= 1000 + window else 2 * window
    late_end = samples[-1].trials if samples else 0
    early, late = (cpu_ms_per_trial(samples, early_end, window),
                   cpu_ms_per_trial(samples, late_end, window))
    lines = []
    if early is not None and late is not None:
        lines += [f"| driver CPU per trial, trials {early_end - window + 1}-{early_end} | "
                  f"{early:.1f} ms |",
                  f"| driver CPU per trial, trials {late_end - window + 1}-{late_end} | "
                  f"{late:.1f} ms |",
                  f"| ratio, last window / early window | {late / early:.2f}x |"]
        probes = probe_ms(samples, early_end, window), probe_ms(samples, late_end, window)
        if None not in probes:
            pace = probes[1] / probes[0]
            lines += [f"| the pace probe's CPU, early / last window | {probes[0]:.2f} / "
                      f"{probes[1]:.2f} ms ({pace:.2f}x: the machine's pace) |",
                      f"| ratio in the pace probe's units (a diagnostic, not the target's "
                      f"figure) | {late / early / pace:.2f}x |"]
        asks = asks_per_trial(samples, early_end, window), asks_per_trial(
            samples, late_end, window)
        if asks[0]:
            lines.append(f"| the sampler's model asked a trial, early / last window | "
                         f"{asks[0]:.2f} / {asks[1]:.2f} |")
    if decisions is not None:
        lines.append(decisions)
    if samples:
        peak_text = "" if peak_mib is None else f", peak {peak_mib:.0f} MiB"
        lines.append(f"| driver RSS at the first / last sample"
                     f"{', peak' if peak_text else ''} | {samples[0].rss_mib:.0f} / "
                     f"{samples[-1].rss_mib:.0f} MiB{peak_text} |")
    return lines


def summarise_samples(path: Path) -> list[str]:
    """The driver's lines from a run's samples file (``DriverMeter``'s log), as the run
    printed them or, for a run stopped early, over the windows it reached (decisions taken
    after its last sample left out)."""
    with open(path) as stream:
        lines = stream.readlines()
    run = lines[0].split() if lines else []
    try:
        trials, window = (int(run[index].split("=")[1]) for index in (1, 2))
    except (IndexError, ValueError):
        trials = window = None
    header = lines[1].strip() if len(lines) > 1 else ""
    if (trials is None or run[0] != "#"
            or header not in (",".join(SAMPLE_COLUMNS), ",".join(EARLIER_COLUMNS))):
        sys.exit(f"{path}: not a driver-samples file (expected '# trials=N window=W', then "
                 f"the columns {','.join(SAMPLE_COLUMNS)})")
    width = header.count(",") + 1
    # A run killed while writing leaves its last line without its end.
    rows = [line.split(",") for line in lines[2:] if line.endswith("\n")]
    samples = [Sample(int(row[0]), float(row[1]), float(row[2]),
                      *((float(row[7]), int(row[8]), int(row[9])) if width > 7 else ()))
               for row in rows]
    last = rows[-1] if rows else None
    decisions = (decision_line(int(last[3]), float(last[4]) * 1e3, float(last[5]) * 1e3,
                               int(last[6])) if last and int(last[3]) else None)
    reached = samples[-1].trials if samples else 0
    return [f"{reached} of {trials} trials ended in {path}", "| figure | value |", "|---|---|",
            *driver_lines(samples, window, trials, decisions, None)]


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
