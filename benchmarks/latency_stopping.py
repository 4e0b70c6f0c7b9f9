"""When the latency estimator may stop: the shipped rule against a shorter candidate, on the
same recorded passes.

For each of ``--networks`` networks drawn from each space, one thread, batch 1, 32x32 (as a
trial measures): two traces, each a warm-up (the estimator's own) then ``--seconds`` of
single timed passes. Each rule is then replayed on each trace on a fake clock, so both rules
see the very same passes and only where they stop differs:

- ``shipped``: ``latency.time_passes`` itself: rounds doubling from ``min_passes``, stable
  when the p10 moved less than ``tolerance`` since the round before, and ``min_time_s``
  passed. Its rounds overshoot ``min_time_s`` (0.25 s) to 0.32-0.5 s for fast networks.
- ``at-min-time``: the same, plus one check at the first pass past ``min_time_s``,
  comparing the p10 of all passes with that of their first half (what the doubling rule
  compares at each round's end).

Per rule: the timed seconds (mean, max), the share of networks whose two traces' estimates
agree within 5 % and 10 %, and the error of each estimate against its whole trace's p10
(median, p90, max). Replaying needs no second timing, so the rules' comparison is exact for
the passes recorded; what the passes are is the machine's at that moment.

    python benchmarks/latency_stopping.py --networks 30   # about 4 minutes, alone on the machine
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from threshsearch.latency import QUANTILE, LatencySettings, _pass_time, _warm_up, time_passes
from threshsearch.measure import conv_weights_in
from threshsearch.nn import build_model
from threshsearch.search.deviceprofile import space_networks
from threshsearch.search.space import load_space

ROOT = Path(__file__).resolve().parent.parent
SPACES = {"search-quality": ROOT / "benchmarks" / "search_quality.yaml",
          "quickstart": ROOT / "search_spaces" / "quickstart.yaml"}


def record(model: torch.nn.Module, seconds: float, settings: LatencySettings) -> list[float]:
    """A warm-up as the estimator's, then single passes for ``seconds`` (their times)."""
    x = torch.randn(1, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    with conv_weights_in(model, torch.channels_last), torch.inference_mode():
        def run() -> object:
            return model(x)
        _warm_up(run, lambda: None, settings, time.perf_counter)
        passes, start = [], time.perf_counter()
        while time.perf_counter() - start < seconds:
            passes.append(_pass_time(run, lambda: None, time.perf_counter))
    return passes


class Replay:
    """A trace's passes as a callable on a fake clock: each call advances the clock by the
    next recorded pass."""

    def __init__(self, passes: list[float]):
        self.passes, self.index, self.now = passes, 0, 0.0

    def clock(self) -> float:
        return self.now

    def __call__(self) -> None:
        if self.index == len(self.passes):
            raise IndexError("the trace ran out: record longer traces (--seconds)")
        self.now += self.passes[self.index]
        self.index += 1


def at_min_time(run: Callable[[], object], settings: LatencySettings,
                clock: Callable[[], float]) -> list[float]:
    """The candidate rule: ``time_passes``'s, plus a check at the first pass past
    ``min_time_s`` (p10 of all passes against that of their first half)."""
    _warm_up(run, lambda: None, settings, clock)
    times: list[float] = []
    timed_from, checkpoint, crossed = clock(), settings.min_passes, False
    while True:
        times.append(_pass_time(run, lambda: None, clock))
        spent = clock() - timed_from
        first_past = not crossed and spent >= settings.min_time_s
        crossed = crossed or first_past
        if len(times) >= checkpoint or first_past:
            estimate = float(np.quantile(times, QUANTILE))
            half = float(np.quantile(times[:len(times) // 2], QUANTILE))
            if abs(estimate - half) <= settings.tolerance * half and crossed:
                return times
            if len(times) >= checkpoint:
                checkpoint = 2 * len(times)
        if spent >= settings.max_time_s:
            return times


RULES: dict[str, Callable[[Callable[[], object], LatencySettings, Callable[[], float]],
                          list[float]]] = {
    "shipped": lambda run, settings, clock: time_passes(run, settings, clock).times,
    "at-min-time": at_min_time,
}


def replayed(rule: str, passes: list[float], settings: LatencySettings) -> tuple[float, float]:
    """(the estimate in ms, the seconds timed and warmed up) of ``RULES[rule]`` on
    ``passes``."""
    replay = Replay(passes)
    times = RULES[rule](replay, settings, replay.clock)
    return float(np.quantile(times, QUANTILE)) * 1000, replay.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--networks", type=int, default=30, help="per space")
    parser.add_argument("--seconds", type=float, default=3.0, help="of passes per trace")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = LatencySettings()
    rows = []
    for space_name, path in SPACES.items():
        networks = space_networks(load_space(path), args.networks, 32, seed=args.seed)
        traces = []
        for index, config in enumerate(networks):
            model = build_model(config).eval()
            traces.append([record(model, args.seconds, settings) for _ in range(2)])
            print(f"{space_name} {index + 1}/{len(networks)}: p10 "
                  f"{np.quantile(traces[-1][0], QUANTILE) * 1000:.3f} ms", flush=True)
        for rule in RULES:
            seconds, errors, within5, within10 = [], [], 0, 0
            for pair in traces:
                estimates = []
                for passes in pair:
                    estimate, spent = replayed(rule, passes, settings)
                    whole = float(np.quantile(passes, QUANTILE)) * 1000
                    estimates.append(estimate)
                    seconds.append(spent)
                    errors.append(abs(estimate / whole - 1) * 100)
                ratio = estimates[0] / estimates[1]
                within5 += abs(ratio - 1) <= 0.05
                within10 += abs(ratio - 1) <= 0.10
            rows.append((space_name, rule, np.mean(seconds), np.max(seconds),
                         100 * within5 / len(traces), 100 * within10 / len(traces),
                         np.median(errors), np.quantile(errors, 0.9), np.max(errors)))
    print("\n| space | rule | seconds, mean | max | traces agree within 5 % | within 10 % "
          "| error vs the trace's p10: median | p90 | max |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| {} | {} | {:.3f} | {:.3f} | {:.0f} % | {:.0f} % | {:.2f} % | {:.2f} % | "
              "{:.1f} % |".format(*row))


if __name__ == "__main__":
    main()
