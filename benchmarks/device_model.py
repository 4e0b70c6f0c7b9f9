"""How well does a device model predict latency? For each runtime (PyTorch eager, ONNX
Runtime) and each space (default.yaml, quickstart.yaml): profile this machine for the space
(the time it takes is reported), draw networks from the space that profiling never saw,
time each carefully (the reference: median of 3 independent measurements of >= 1 s each, a
fresh module or session each, taken in 3 rounds over all the networks so that they are
minutes apart), and compare: share within ±10 %, median / p90 / max absolute error, Spearman
rank correlation; also the paper's presets at 32 (and 224: a model profiled at 224 for the
default space's networks). Run it with the machine to itself.

How far the reference can be trusted is measured in the same run: "reference steady" is the
share of networks whose 3 measurements all lie within ±10 % of their median. No prediction
can agree with a reference better than the reference agrees with itself, so that share is the
ceiling of "within ±10 %" on the machine at the time. Because a busy or virtual machine only
ever slows a timing, the table also compares with the fastest of the 3 measurements.

    python benchmarks/device_model.py                    # the issue's benchmark: 100 networks
    python benchmarks/device_model.py --runtimes torch-cuda --batch-sizes 1 64  # on a GPU
    python benchmarks/device_model.py --networks 8 --draws 60 --calibration 16 \\
        --runtimes torch --preset-sizes 32               # a smoke run, a few minutes

``--out rows.csv`` writes the rows; the tables go to standard output. ``--unsplit`` adds, for
a runtime with a layout rule (ONNX Runtime), rows "(unsplit)": the model fitted to the same
timings with each group's blocked and plain operations pooled, as before the rule, against
the same reference (the side-by-side comparison of the two; the pooled groups hold the
samples chosen per layout, up to twice as many as a profile without the rule would time).
``--first-round`` adds rows "(first round)": the model fitted to the first profiling round's
timings alone, as a profile of one round would have made it (its profiling time: the
profile's, less the seconds its other rounds' timings took).
``--smaller N K`` (repeatable) adds rows "(N networks, K operations a group)": the model
fitted to the first N calibration networks and K of each table group's timed operations,
from the same timings (its profiling time: the profile's less the seconds of the timings it
drops).
``--half-timings`` adds rows "(half timings)": a second profile, after the first, whose
operations' and networks' timings each stop at half the time floor and cap (the one timing of
the call overhead as before). Both are scored against the same reference as the profile.
``--all-rounds`` adds rows "(all rounds)": a second profile, after the first, whose later
rounds take every timing again (``later_rounds="all"``, as before the suspects rule), scored
against the same reference.
``--probes N`` (10) calibration networks are re-timed with each reference: the fastest of
their reference rounds over the fastest of their profiling rounds is the machine's drift
since profiling, printed beside the figures (a diagnostic, not a correction).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel import DeviceModel
from threshsearch.devicemodel.calibration import error_summary
from threshsearch.devicemodel.layout import table_group
from threshsearch.devicemodel.ops import Op
from threshsearch.devicemodel.profiling import (
    MIN_CALIBRATION_NETWORKS,
    NETWORK_TIMING,
    OPERATION_TIMING,
    ROUNDS,
    evenly_spread,
    fit_device_model,
    time_device,
)
from threshsearch.devicemodel.runtimes import make_runtime
from threshsearch.devicemodel.timings import DeviceTimings
from threshsearch.latency import LatencySettings, time_passes
from threshsearch.nn import build_model
from threshsearch.search.deviceprofile import (
    preset_networks,
    profiled_networks,
    space_networks,
)
from threshsearch.search.space import load_space

ROOT = Path(__file__).resolve().parent.parent
SPACES = {"default": ROOT / "search_spaces" / "default.yaml",
          "quickstart": ROOT / "search_spaces" / "quickstart.yaml"}
TEST_SEED = 1000  # draws for the held-out networks: another stream than profiling's seed 0


def reference_rounds(runtime, networks, input_size: int, seconds: float, repeats: int,
                     seed: int, batch_size: int = 1) -> np.ndarray:
    """Each network's p10 over >= ``seconds`` of passes of a freshly prepared module, in
    ``repeats`` rounds over all the networks (each round in its own order): shape (repeats,
    networks), in ms."""
    settings = LatencySettings(min_passes=20, min_time_s=seconds, max_time_s=3 * seconds,
                               warmup_s=0.1)
    rng = np.random.default_rng(seed)
    times = np.empty((repeats, len(networks)))
    for round_index in range(repeats):
        for done, index in enumerate(rng.permutation(len(networks)), start=1):
            run = runtime.prepare(build_model(networks[index]),
                                  [(batch_size, 3, input_size, input_size)], 1)
            times[round_index, index] = time_passes(run, settings).p10_s * 1000
            print(f"  round {round_index + 1}/{repeats}, {done}/{len(networks)} "
                  f"{networks[index].hash}: {times[round_index, index]:.3f} ms", flush=True)
    return times


def evaluate(models: dict[str, Profiled], runtime, networks, input_size: int, args,
             probes: Sequence[ArchitectureConfig]) -> dict[str, dict]:
    """Each model's figures against one reference of ``networks``. ``probes`` (calibration
    networks, the same for every model) are re-timed in the same rounds: the fastest of their
    reference rounds over their time in the model's own profile (the fastest of its rounds)
    is the machine's drift since that profile (like against like), reported beside the
    figures with the share within ±10 % of the fastest reference once the predictions are
    scaled by it (a diagnostic; the figures themselves are not corrected)."""
    rounds = reference_rounds(runtime, list(networks) + list(probes), input_size,
                              args.reference_s, args.repeats, seed=len(networks),
                              batch_size=args.batch_size)
    retimed = rounds[:, len(networks):].min(axis=0)
    rounds = rounds[:, :len(networks)]
    median, fastest = np.median(rounds, axis=0), rounds.min(axis=0)
    steady = np.all(np.abs(rounds / median - 1) <= 0.10, axis=0)
    rows = {}
    for label, profiled in models.items():
        model = profiled.model
        drift = retimed / profiled.probe_ms if len(probes) else None
        predicted = np.array([model.predict_ms(config) for config in networks])
        summary = error_summary(predicted, median)
        summary["networks_count"] = summary.pop("networks")
        against_fastest = error_summary(predicted, fastest)
        rows[label] = summary | {
            "within_10pct_of_fastest": against_fastest["within_10pct"],
            "spearman_fastest": against_fastest["spearman"],
            "reference_steady": float(np.mean(steady)),
            "reference_spread_p90_pct": float(
                np.quantile(rounds.max(axis=0) / fastest - 1, 0.9) * 100),
            "drift_median": None if drift is None else float(np.median(drift)),
            "drift_p10": None if drift is None else float(np.quantile(drift, 0.1)),
            "drift_p90": None if drift is None else float(np.quantile(drift, 0.9)),
            "within_10pct_of_fastest_after_drift": None if drift is None else error_summary(
                predicted * np.median(drift), fastest)["within_10pct"]}
    return rows


@dataclass(frozen=True)
class Profiled:
    """A device model as scored: its profile's seconds and the probes' times in it."""

    model: DeviceModel
    seconds: float
    probe_ms: np.ndarray


def half_length(settings: LatencySettings) -> LatencySettings:
    """``settings`` with its time floor and cap halved (the same passes minimum)."""
    return replace(settings, min_time_s=settings.min_time_s / 2,
                   max_time_s=settings.max_time_s / 2)


def first_round(timings: DeviceTimings) -> DeviceTimings:
    """``timings`` as if profiling had stopped after its first round."""
    return timings.kept(1, range(len(timings.operations)), len(timings.calibration))


def smaller(timings: DeviceTimings, networks: int, operations: int) -> DeviceTimings:
    """``timings`` as if profiling had timed only the first ``networks`` of its calibration
    networks and, of each table group's operations, ``operations`` evenly spread over those
    it timed (profiling spreads its choice over all the group's operations: an
    approximation), in as many rounds."""
    groups: dict[str, list[Op]] = {}
    for op, _ in timings.operations:
        groups.setdefault(table_group(op, timings.layout), []).append(op)
    kept_ops = {op for ops in groups.values() for op in evenly_spread(ops, operations)}
    return timings.kept(len(timings.by_round), [
        index for index, (op, _) in enumerate(timings.operations) if op in kept_ops],
        networks)


def profile(space_path: Path, runtime_name: str, input_size: int, args
            ) -> tuple[dict[str, Profiled], list[ArchitectureConfig]]:
    """The space's device models by label (the row's suffix): the profile; with
    ``--unsplit`` (for a runtime with a layout rule) the model fitted to the same timings
    with each group's layouts pooled; with ``--first-round`` the model fitted to the first
    round's timings alone; with ``--smaller N K`` the model fitted to N of the calibration
    networks and K operations a table group of the same timings (each with the profile's
    seconds less those of the timings it drops); with ``--half-timings`` a second
    profile whose operations' and networks' timings stop at half the floor and cap; with
    ``--all-rounds`` a second profile whose later rounds take every timing again. And the
    probes: the first ``--probes`` calibration networks (the same in every profile: one
    seed)."""
    started = time.perf_counter()
    networks = profiled_networks(load_space(space_path), args.draws, input_size, seed=0)
    drawn_s = time.perf_counter() - started

    def timed(**timing) -> tuple[DeviceTimings, float]:
        started = time.perf_counter()
        timings = time_device(networks, runtime=runtime_name, input_size=input_size,
                              batch_size=args.batch_size, threads=args.threads,
                              calibration_networks=args.calibration,
                              rounds=args.rounds, seed=0, **timing)
        return timings, drawn_s + time.perf_counter() - started

    def scored(timings: DeviceTimings, layout, seconds: float) -> Profiled:
        return Profiled(fit_device_model(timings, layout), seconds,
                        timings.measured_ms[:args.probes])

    timings, seconds = timed()

    def less_dropped(kept: DeviceTimings) -> float:  # the row's seconds, as kept's own
        return round(seconds - float(timings.seconds_by_round.sum()
                                     - kept.seconds_by_round.sum()), 3)

    models = {"": scored(timings, timings.layout, seconds)}
    if args.unsplit and timings.layout is not None:
        models[" (unsplit)"] = scored(timings, None, seconds)
    if args.first_round:
        first = first_round(timings)
        models[" (first round)"] = scored(first, timings.layout, less_dropped(first))
    for count, per_group in args.smaller:
        fewer = smaller(timings, count, per_group)
        models[f" ({count} networks, {per_group} operations a group)"] = scored(
            fewer, timings.layout, less_dropped(fewer))
    if args.half_timings:
        half, half_seconds = timed(operation_timing=half_length(OPERATION_TIMING),
                                   network_timing=half_length(NETWORK_TIMING))
        models[" (half timings)"] = scored(half, half.layout, half_seconds)
    if args.all_rounds:
        every, every_seconds = timed(later_rounds="all")
        models[" (all rounds)"] = scored(every, every.layout, every_seconds)
    return models, timings.calibration[:args.probes]


def _drift(row: dict) -> str:
    if row["drift_median"] is None:
        return "n/a | n/a"
    return (f"{row['drift_median']:.3f} ({row['drift_p10']:.3f}-{row['drift_p90']:.3f}) | "
            f"{row['within_10pct_of_fastest_after_drift']:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", nargs="+", default=["torch", "onnxruntime"])
    parser.add_argument("--spaces", nargs="*", default=list(SPACES), choices=list(SPACES),
                        help="spaces whose held-out networks to predict (default: both); "
                             "given with no name, only the presets at 224 are measured, "
                             "which needs 224 in --preset-sizes")
    parser.add_argument("--networks", type=int, default=100,
                        help="held-out networks per space")
    parser.add_argument("--draws", type=int, default=400, help="networks profiling draws")
    parser.add_argument("--calibration", type=int, default=40, help="networks timed whole")
    parser.add_argument("--reference-s", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3, help="reference rounds")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="profiling rounds")
    parser.add_argument("--preset-sizes", type=int, nargs="*", default=[32, 224])
    parser.add_argument("--out", type=Path, help="write the rows as CSV")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1],
                        help="images per inference: each is profiled and scored on its own")
    parser.add_argument("--probes", type=int, default=10,
                        help="calibration networks re-timed with each reference: the "
                             "machine's drift since profiling")
    parser.add_argument("--unsplit", action="store_true",
                        help="also score, against the same reference, the model fitted to "
                             "the same timings with the layout rule's groups pooled")
    parser.add_argument("--first-round", action="store_true",
                        help="also score the model fitted to the first profiling round alone")
    parser.add_argument("--smaller", nargs=2, type=int, action="append", default=[],
                        metavar=("NETWORKS", "OPERATIONS"),
                        help="also score the model fitted to NETWORKS of the calibration "
                             "networks and OPERATIONS a table group of the same timings")
    parser.add_argument("--half-timings", action="store_true",
                        help="also profile with each timing's time floor and cap halved and "
                             "score that model against the same reference")
    parser.add_argument("--all-rounds", action="store_true",
                        help="also profile with every later round taking all the timings "
                             "again and score that model against the same reference")
    args = parser.parse_args()
    if args.first_round and args.rounds < 2:
        parser.error("--first-round compares with a profile of --rounds 2 or more")
    if args.probes < 0:
        parser.error(f"--probes {args.probes}: expected 0 or more")
    for count, per_group in args.smaller:
        if not max(MIN_CALIBRATION_NETWORKS, args.probes) <= count <= args.calibration:
            parser.error(f"--smaller {count} {per_group}: expected from "
                         f"{max(MIN_CALIBRATION_NETWORKS, args.probes)} (the calibration's "
                         f"least, and --probes) to {args.calibration} (--calibration) networks")
        if per_group < 1:
            parser.error(f"--smaller {count} {per_group}: expected 1 or more operations "
                         f"a group")
    if not args.spaces and 224 not in args.preset_sizes:
        parser.error("--spaces with no name measures only the presets at 224: "
                     "give --preset-sizes 224, or name a space")
    # The references run with the threads the models were profiled for (profiling sets them
    # only while it runs): PyTorch's default, every core, is another device.
    torch.set_num_threads(args.threads)

    rows = []

    def measure(runtime, runtime_name, models, networks_label, networks, input_size, probes):
        for suffix, row in evaluate(models, runtime, networks, input_size, args,
                                    probes).items():
            rows.append({"runtime": runtime_name, "batch": args.batch_size,
                         "networks": networks_label + suffix,
                         "profiling_s": models[suffix].seconds} | row)
            print(f"{runtime_name} batch {args.batch_size} / {networks_label + suffix}: "
                  f"{row['within_10pct']:.0%} within ±10 %, Spearman {row['spearman']:.3f}",
                  flush=True)
        if args.out:  # after every measurement: a run cut short keeps what it measured
            with args.out.open("w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

    for runtime_name, batch_size in itertools.product(args.runtimes, args.batch_sizes):
        args.batch_size = batch_size  # what profile() and evaluate() read
        runtime = make_runtime(runtime_name, args.threads)
        for name in args.spaces:
            space = load_space(SPACES[name])
            print(f"{runtime_name} batch {args.batch_size} / {name}: profiling", flush=True)
            models, probes = profile(SPACES[name], runtime_name, 32, args)
            for profiled in models.values():
                print(profiled.model.summary(), profiled.model.steadiness_warning(), flush=True)
            seen = {config.hash for config in space_networks(space, args.draws, 32, seed=0)}
            candidates = space_networks(space, 3 * args.networks, 32, seed=TEST_SEED)
            held_out = [config for config in candidates if config.hash not in seen]
            measure(runtime, runtime_name, models, name, held_out[:args.networks], 32, probes)
            if name == "default" and 32 in args.preset_sizes:
                measure(runtime, runtime_name, models, "presets@32",
                        preset_networks(space.num_classes, 32), 32, probes)
        if 224 in args.preset_sizes:
            print(f"{runtime_name} batch {args.batch_size} / default at 224: profiling",
                  flush=True)
            models, probes = profile(SPACES["default"], runtime_name, 224, args)
            for profiled in models.values():
                print(profiled.model.summary(), profiled.model.steadiness_warning(), flush=True)
            measure(runtime, runtime_name, models, "presets@224", preset_networks(10, 224),
                    224, probes)

    print("\n| runtime | batch | networks | n | within ±10 % | median | p90 | max | Spearman | "
          "within ±10 % of the fastest | Spearman (fastest) | reference steady | "
          "reference spread p90 | drift since profiling (p10-p90) | within ±10 % of the "
          "fastest after the drift | profiling |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['runtime']} | {row['batch']} | {row['networks']} | "
              f"{row['networks_count']} | "
              f"{row['within_10pct']:.0%} | {row['median_abs_pct']:.1f} % | "
              f"{row['p90_abs_pct']:.1f} % | {row['max_abs_pct']:.1f} % | "
              f"{row['spearman']:.3f} | {row['within_10pct_of_fastest']:.0%} | "
              f"{row['spearman_fastest']:.3f} | {row['reference_steady']:.0%} | "
              f"{row['reference_spread_p90_pct']:.1f} % | {_drift(row)} | "
              f"{row['profiling_s']:.0f} s |")
    if args.out:
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
