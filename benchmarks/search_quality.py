"""Search quality at equal wall-clock: how good a front each strategy finds, with intervals.

Runs one space (default: benchmarks/search_quality.yaml, digits, val_accuracy + memrw_mib,
two trials at a time) once per strategy and seed, each run ending at the same wall-clock
budget, on one local Ray. Within each seed the strategies' order is rotated (seed i starts
with strategy i mod k), so no strategy always runs first or last on a machine that warms up
or gets busier. Each strategy's front is compared with full training's (`none+auto`) of the
same seed: the hypervolume ratio at two reference points, the region of interest
(--min-accuracy, --max-memrw) and the nadir of the pooled fronts (the worst value of each
objective over every run's front, all strategies and seeds, pushed out by a tenth of the
pooled range so the extreme networks count), and IGD+ against the pooled front (the
non-dominated networks of all runs, objectives scaled by the pooled front's range); and the
default's (``pareto+auto``) hypervolume in the region over each strategy's, seed by seed.
Means come with 95 % percentile-bootstrap intervals over seeds (the ratios are paired per
seed). Prints one table and writes it with every run's figures and an anytime plot
(hypervolume against wall-clock, one line per strategy) to --out; ``--rescore`` tabulates
the runs already there again.

    python benchmarks/search_quality.py --budget 120 --seeds 10
    python benchmarks/search_quality.py --budget 120 --seeds 10 --epochs 20 \\
        --strategies pareto+auto asha+auto none+auto --out benchmarks/out/search-quality-20

The region of interest is accuracy >= --min-accuracy and memrw_mib <= --max-memrw: digits
saturates in accuracy (most trained networks pass 0.9), so fronts differ mostly in how cheap
the accurate networks they find are.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from optuna.trial import FrozenTrial
from scipy import stats

from threshsearch.search.cluster import connect_ray, quiet_ray
from threshsearch.search.pareto import hypervolume, igd_plus, minimised
from threshsearch.search.runner import run_search
from threshsearch.search.samplers import parse_sampler
from threshsearch.search.space import SearchSpace, load_space

DEFAULT_SPACE = Path(__file__).with_name("search_quality.yaml")
STRATEGIES = ("pareto+auto", "none+auto", "asha+auto", "pareto+nsga2")
FULL_TRAINING = "none+auto"  # what every ratio is taken against
DEFAULT = "pareto+auto"  # the project's defaults, also compared with each strategy
NADIR_MARGIN = 0.1  # the pooled nadir pushed out by this share of the pooled range


def strategy_space(space: SearchSpace, strategy: str, seed: int, budget: float, epochs: int,
                   folder: Path) -> SearchSpace:
    kind, sampler = strategy.split("+")
    name = f"{strategy.replace('+', '-')}-seed{seed}"
    study = space.study.replace(name=name, seed=seed, timeout_s=budget,
                                storage=f"sqlite:///{folder / name}.db",
                                sampler=parse_sampler(sampler))
    return space.replace(study=study, train=space.train.replace(epochs=epochs),
                         early_stopping=space.early_stopping.replace(kind=kind))


def trained(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that completed their training (feasible, with values), repeats of a
    network already tried left out."""
    return [t for t in trials
            if t.values is not None and t.user_attrs.get("status") == "complete"]


def study_points(study, directions: list[str]) -> list[tuple[float, tuple[float, ...]]]:
    """(seconds from the study's first trial start, minimised objectives) of each trained
    trial (``trained``)."""
    trials = study.trials
    start = min(t.datetime_start for t in trials if t.datetime_start)
    return [((t.datetime_complete - start).total_seconds(), minimised(t.values, directions))
            for t in trained(trials)]


def rotated(strategies: list[str], index: int) -> list[str]:
    """The strategies in the order the ``index``-th seed runs them: shifted by one per seed."""
    shift = index % len(strategies)
    return [*strategies[shift:], *strategies[:shift]]


def non_dominated(points: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    """The points (minimised) that no other point dominates, each once."""
    unique = sorted(set(map(tuple, points)))
    return [p for p in unique
            if not any(all(o <= v for o, v in zip(other, p, strict=True)) and other != p
                       for other in unique)]


def pooled_reference(runs: list[dict]) -> tuple[list[tuple[float, ...]], tuple[float, ...],
                                                 tuple[float, ...]]:
    """(pooled front, nadir reference point, per-objective scale) of every run's front: the
    front of all runs' networks; the worst value of each objective over the runs' fronts,
    pushed out by NADIR_MARGIN of the range so that the extremes add volume; the pooled
    front's range (1 where it is flat) to scale IGD+."""
    fronts = [p for run in runs for p in non_dominated([tuple(q) for q in run["points"]])]
    if not fronts:
        raise ValueError("no run completed a feasible trial: nothing to compare")
    pooled = non_dominated(fronts)
    worst, best = np.max(fronts, axis=0), np.min(fronts, axis=0)
    spread = np.where(worst > best, worst - best, 1.0)
    nadir = tuple(float(v) for v in worst + NADIR_MARGIN * spread)
    front = np.asarray(pooled)
    extent = front.max(axis=0) - front.min(axis=0)
    scale = tuple(float(v) for v in np.where(extent > 0, extent, 1.0))
    return pooled, nadir, scale


def mean_interval(values: list[float], confidence: float = 0.95,
                  resamples: int = 10_000) -> tuple[float, float, float]:
    """(mean, low, high): the mean of ``values`` (one per seed) and its percentile-bootstrap
    interval; the interval is NaN with fewer than two values (nothing to resample)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, math.nan
    mean = float(np.mean(finite))
    if len(finite) < 2:
        return mean, math.nan, math.nan
    if len(set(finite)) == 1:
        return mean, mean, mean
    result = stats.bootstrap((np.asarray(finite),), np.mean, confidence_level=confidence,
                             n_resamples=resamples, method="percentile",
                             random_state=np.random.default_rng(0))
    return mean, float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_ratios(runs: list[dict], strategy: str, key: str,
                  base: str = FULL_TRAINING) -> list[float]:
    """Per seed, ``strategy``'s ``key`` divided by ``base``'s in the same seed; seeds where
    the base's is 0 are left out (no ratio)."""
    by_seed = {r["seed"]: r[key] for r in runs if r["strategy"] == base}
    return [r[key] / by_seed[r["seed"]] for r in runs
            if r["strategy"] == strategy and by_seed.get(r["seed"])]


def score_runs(runs: list[dict], roi: tuple[float, ...]) -> None:
    """Adds to each run its hypervolume at ``roi`` and at the pooled nadir, and its IGD+."""
    pooled, nadir, scale = pooled_reference(runs)
    for run in runs:
        points = [tuple(p) for p in run["points"]]
        run["hypervolume"] = hypervolume(points, roi)
        run["hypervolume_nadir"] = hypervolume(points, nadir)
        run["igd_plus"] = igd_plus(points, pooled, scale)


def summary_table(runs: list[dict], strategies: list[str], header: str) -> str:
    """One row per strategy: trials, the hypervolume ratio to full training at each reference
    point, the default's hypervolume over this strategy's (region) and IGD+, each a mean
    with its 95 % interval over seeds."""

    def shown(mean: float, low: float, high: float, unit: str = "") -> str:
        if math.isnan(mean):
            return "-"
        interval = "" if math.isnan(low) else f" [{low:.2f}, {high:.2f}]"
        return f"{mean:.2f}{unit}{interval}"

    lines = [header, "",
             "| strategy | seeds | complete | pruned | HV / full training (region) "
             "| HV / full training (pooled nadir) | default's HV / this (region) "
             "| IGD+ (pooled front) |",
             "|---|---|---|---|---|---|---|---|"]
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        if not mine:
            continue
        region = paired_ratios(runs, strategy, "hypervolume")
        nadir = paired_ratios(runs, strategy, "hypervolume_nadir")
        default = paired_ratios(runs, DEFAULT, "hypervolume", base=strategy)
        lines.append(
            f"| {strategy} | {len(mine)} | "
            f"{statistics.mean(r['complete'] for r in mine):.1f} | "
            f"{statistics.mean(r['pruned'] for r in mine):.1f} | "
            f"{shown(*mean_interval(region), 'x')} ({len(region)} seeds) | "
            f"{shown(*mean_interval(nadir), 'x')} ({len(nadir)} seeds) | "
            f"{shown(*mean_interval(default), 'x')} ({len(default)} seeds) | "
            f"{shown(*mean_interval([r['igd_plus'] for r in mine]))} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE))
    parser.add_argument("--budget", type=float, default=120, help="seconds per run")
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        help="EARLY_STOPPING+SAMPLER, e.g. pareto+auto asha+tpe none+random; "
                             f"{FULL_TRAINING} (the ratios' denominator) is always run")
    parser.add_argument("--epochs", type=int, default=None, help="default: the space's")
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument("--max-memrw", type=float, default=3.0)
    parser.add_argument("--out", default="benchmarks/out/search-quality")
    parser.add_argument("--rescore", action="store_true",
                        help="no new run: score and tabulate the runs in --out/runs.json "
                             "(their seeds and strategies; give --budget and --epochs they "
                             "were run with, for the header)")
    args = parser.parse_args()
    strategies = [*args.strategies, *([FULL_TRAINING] if FULL_TRAINING not in args.strategies
                                      else [])]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))

    space = load_space(args.space)
    if space.metric_names != ["val_accuracy", "memrw_mib"]:
        raise SystemExit("--space: the benchmark's region of interest needs the objectives "
                         "val_accuracy and memrw_mib")
    epochs = args.epochs or space.train.epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    roi = minimised([args.min_accuracy, args.max_memrw], space.directions)
    if args.rescore:  # the seeds and strategies the runs have, not the flags'
        runs = json.loads((out / "runs.json").read_text())
        seeds = sorted({run["seed"] for run in runs})
        strategies = [name for name in strategies if any(r["strategy"] == name for r in runs)]
    else:
        runs = run_all(space, strategies, seeds, epochs, roi, out, args.budget)
    try:
        score_runs(runs, roi)
    except ValueError as error:  # e.g. a budget too short for any trial to complete
        raise SystemExit(f"search quality: {error}; runs in {out / 'runs.json'}") from None
    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    header = (f"{args.budget:.0f} s per run, {epochs} epochs, seeds {seeds[0]}-{seeds[-1]}, "
              f"order rotated per seed; region accuracy >= {args.min_accuracy}, memrw_mib <= "
              f"{args.max_memrw}; pooled nadir "
              f"{tuple(round(v, 4) for v in pooled_reference(runs)[1])} (minimised); "
              "95 % percentile-bootstrap intervals over seeds.")
    table = summary_table(runs, strategies, header)
    print("\n" + table)
    (out / "table.md").write_text(table + "\n")
    anytime_plot(runs, strategies, out / "anytime.html", args)


def run_all(space: SearchSpace, strategies: list[str], seeds: list[int], epochs: int,
            roi: tuple[float, ...], out: Path, budget: float) -> list[dict]:
    """Every strategy once per seed, in the rotated order, on one local Ray; each run's
    figures saved to ``out``/runs.json as it ends."""
    import ray

    quiet_ray()
    connect_ray(None, num_cpus=2)
    runs = []
    try:
        for index, seed in enumerate(seeds):
            for strategy in rotated(strategies, index):
                run_space = strategy_space(space, strategy, seed, budget, epochs, out)
                Path(run_space.storage_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
                began = time.perf_counter()
                summary = run_search(run_space, quiet=True)
                points = study_points(summary.study, space.directions)
                statuses = [t.user_attrs.get("status") for t in summary.study.trials]
                run = {
                    "strategy": strategy, "seed": seed, "wall_s": time.perf_counter() - began,
                    "points": [p for _, p in points],
                    "complete": statuses.count("complete"), "pruned": statuses.count("pruned"),
                    "sampler": summary.study.user_attrs["sampler"]["kind"],
                    "anytime": [[t, hypervolume([p for when, p in points if when <= t], roi)]
                                for t in range(0, int(budget) + 15, 5)],
                }
                runs.append(run)
                print(f"seed {seed} {strategy:<14} hypervolume (region) "
                      f"{hypervolume(run['points'], roi):.4f}  complete {run['complete']:>3}  "
                      f"pruned {run['pruned']:>3}  ({run['wall_s']:.0f} s)", flush=True)
                (out / "runs.json").write_text(json.dumps(runs, indent=1))
    finally:
        ray.shutdown()
    return runs


def anytime_plot(runs: list[dict], strategies: list[str], path: Path,
                 args: argparse.Namespace) -> None:
    import plotly.graph_objects as go

    figure = go.Figure()
    for strategy in strategies:
        mine = [r["anytime"] for r in runs if r["strategy"] == strategy]
        if not mine:
            continue
        times = [t for t, _ in mine[0]]
        means = [statistics.mean(curve[i][1] for curve in mine) for i in range(len(times))]
        figure.add_trace(go.Scatter(x=times, y=means, mode="lines", name=strategy))
    figure.update_layout(
        title=f"Hypervolume against wall-clock (mean of {args.seeds} seeds; accuracy >= "
              f"{args.min_accuracy}, memrw <= {args.max_memrw} MiB)",
        xaxis_title="seconds since the first trial started", yaxis_title="hypervolume")
    figure.write_html(path, include_plotlyjs=True)


if __name__ == "__main__":
    main()
