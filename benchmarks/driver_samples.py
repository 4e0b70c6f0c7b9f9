"""The driver's samples in the scale benchmark: taken as trials end (CPU time, memory, the
rung decisions' CPU time, a pace probe, the sampler's model's asks), streamed to a file as
they are taken, and summarised by windows of trials, from the run or from the file of a run
cut short. ``benchmarks/scale.py`` runs the searches they measure.

The pace probe: a fixed unit of driver-like work (numpy over arrays the size of TPE's,
Python sorting records) timed in the driver every ``PROBE_EVERY`` trials, its CPU left out of
the driver's, tells a driver doing more from a machine going slower in the same run; the
model's asks per trial tell a draw asking its model more often as the space is spent.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_COLUMNS = ("trials_ended", "cpu_s", "rss_mib", "decisions", "decisions_cpu_s",
                  "slowest_decision_s", "decisions_over_50ms", "probe_cpu_s", "probes",
                  "model_asks")
EARLIER_COLUMNS = SAMPLE_COLUMNS[:7]  # files of runs before the probe: read, without it
PROBE_EVERY = 25  # trial ends between two runs of the pace probe
SLOW_DECISION_S = 0.05  # the bound on one rung decision


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


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


@contextlib.contextmanager
def _patched(owner: type, name: str, replacement: object) -> Iterator[None]:
    """``owner.name`` replaced within, then as it was: its own again, or inherited again."""
    own = name in vars(owner)
    found = vars(owner).get(name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if own:
            setattr(owner, name, found)
        else:
            delattr(owner, name)


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

        with contextlib.ExitStack() as patches:
            patches.enter_context(_patched(StudySearcher, "on_trial_complete",
                                           sampled_complete))
            patches.enter_context(_patched(ParetoSuccessiveHalving, "decide", timed_decide))
            patches.enter_context(_patched(FittedOnceTPE, "sample_relative", counted_ask))
            if stream is not None:
                patches.callback(stream.close)
            yield

    def decision_line(self) -> str | None:
        """The table's line on rung decisions, None when there were none."""
        if not self.decisions:
            return None
        decisions = np.array(self.decisions) * 1e3
        return decision_line(len(decisions), decisions.sum(), decisions.max(),
                             int((decisions > SLOW_DECISION_S * 1e3).sum()))


def _per(samples: list[Sample], end: int, window: int, amount: Callable[[Sample], float],
         count: Callable[[Sample], float]) -> float | None:
    """How much ``amount`` grew for each unit ``count`` grew over the ``window`` trials
    ending at the ``end``-th, from ``samples`` in the order taken (None: the samples do not
    reach that window, or ``count`` did not move in it)."""
    ends = np.array([sample.trials for sample in samples])
    last, first = np.searchsorted(ends, end), np.searchsorted(ends, end - window)
    if last >= len(ends) or first >= last:
        return None
    opened, closed = samples[first], samples[last]
    moved = count(closed) - count(opened)
    return (amount(closed) - amount(opened)) / moved if moved else None


def cpu_ms_per_trial(samples: list[Sample], end: int, window: int) -> float | None:
    """Driver CPU per trial over the ``window`` trials ending at the ``end``-th, the pace
    probe's left out."""
    per = _per(samples, end, window, lambda s: s.cpu_s - s.probe_cpu_s, lambda s: s.trials)
    return None if per is None else per * 1e3


def probe_ms(samples: list[Sample], end: int, window: int) -> float | None:
    """The pace probe's mean CPU ms over its runs in that window (None: no run)."""
    per = _per(samples, end, window, lambda s: s.probe_cpu_s, lambda s: s.probes)
    return None if per is None else per * 1e3


def asks_per_trial(samples: list[Sample], end: int, window: int) -> float | None:
    """The sampler's model's asks per trial ended in that window."""
    return _per(samples, end, window, lambda s: s.asks, lambda s: s.trials)


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
