"""Search quality at equal wall-clock: the hypervolume of the front each strategy finds.

Runs one space (default: benchmarks/search_quality.yaml, digits, val_accuracy + memrw_mib,
two trials at a time) once per strategy and seed, each run ending at the same wall-clock
budget, on one local Ray. Strategies are interleaved within each seed so that whatever else
the machine does falls on all of them alike. Prints a table (hypervolume mean and spread,
trials complete / pruned, the default's ratio to each) and writes it with every run's figures
and an anytime plot (hypervolume against wall-clock, one line per strategy) to --out.

    python benchmarks/search_quality.py --budget 120 --seeds 0 1 2
    python benchmarks/search_quality.py --budget 120 --epochs 20 \\
        --strategies pareto+auto asha+auto none+auto --out benchmarks/out/search-quality-20

The region of interest is accuracy >= --min-accuracy and memrw_mib <= --max-memrw: digits
saturates in accuracy (most trained networks pass 0.9), so fronts differ mostly in how cheap
the accurate networks they find are.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from threshsearch.search.pareto import hypervolume, minimised
from threshsearch.search.runner import run_search
from threshsearch.search.samplers import parse_sampler
from threshsearch.search.space import SearchSpace, load_space

DEFAULT_SPACE = Path(__file__).with_name("search_quality.yaml")
STRATEGIES = ("pareto+auto", "asha+auto", "none+auto", "pareto+nsga2")


def strategy_space(space: SearchSpace, strategy: str, seed: int, budget: float, epochs: int,
                   folder: Path) -> SearchSpace:
    kind, sampler = strategy.split("+")
    name = f"{strategy.replace('+', '-')}-seed{seed}"
    study = space.study.replace(name=name, seed=seed, timeout_s=budget,
                                storage=f"sqlite:///{folder / name}.db",
                                sampler=parse_sampler(sampler))
    return space.replace(study=study, train=space.train.replace(epochs=epochs),
                         early_stopping=space.early_stopping.replace(kind=kind))


def study_points(study, directions: list[str]) -> list[tuple[float, tuple[float, ...]]]:
    """(seconds from the study's first trial start, minimised objectives) of each completed
    feasible trial, duplicates left out."""
    trials = study.trials
    start = min(t.datetime_start for t in trials if t.datetime_start)
    return [((t.datetime_complete - start).total_seconds(), minimised(t.values, directions))
            for t in trials
            if t.values is not None and t.user_attrs.get("status") == "complete"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE))
    parser.add_argument("--budget", type=float, default=120, help="seconds per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES),
                        help="EARLY_STOPPING+SAMPLER, e.g. pareto+auto asha+tpe none+random")
    parser.add_argument("--epochs", type=int, default=None, help="default: the space's")
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument("--max-memrw", type=float, default=3.0)
    parser.add_argument("--out", default="benchmarks/out/search-quality")
    args = parser.parse_args()

    import ray

    space = load_space(args.space)
    if space.metric_names != ["val_accuracy", "memrw_mib"]:
        raise SystemExit("--space: the benchmark's region of interest needs the objectives "
                         "val_accuracy and memrw_mib")
    epochs = args.epochs or space.train.epochs
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reference = minimised([args.min_accuracy, args.max_memrw], space.directions)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    runs = []
    try:
        for seed in args.seeds:
            for strategy in args.strategies:
                run_space = strategy_space(space, strategy, seed, args.budget, epochs, out)
                Path(run_space.storage_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
                began = time.perf_counter()
                summary = run_search(run_space, quiet=True)
                points = study_points(summary.study, space.directions)
                statuses = [t.user_attrs.get("status") for t in summary.study.trials]
                run = {
                    "strategy": strategy, "seed": seed, "wall_s": time.perf_counter() - began,
                    "hypervolume": hypervolume([p for _, p in points], reference),
                    "complete": statuses.count("complete"), "pruned": statuses.count("pruned"),
                    "sampler": summary.study.user_attrs["sampler"]["kind"],
                    "anytime": [[t, hypervolume([p for when, p in points if when <= t],
                                                reference)]
                                for t in range(0, int(args.budget) + 15, 5)],
                }
                runs.append(run)
                print(f"seed {seed} {strategy:<14} hypervolume {run['hypervolume']:.4f}  "
                      f"complete {run['complete']:>3}  pruned {run['pruned']:>3}  "
                      f"({run['wall_s']:.0f} s)", flush=True)
                (out / "runs.json").write_text(json.dumps(runs, indent=1))
    finally:
        ray.shutdown()
    table = summary_table(runs, args.strategies, args)
    print("\n" + table)
    (out / "table.md").write_text(table + "\n")
    anytime_plot(runs, args.strategies, out / "anytime.html", args)


def summary_table(runs: list[dict], strategies: list[str], args: argparse.Namespace) -> str:
    default = strategies[0]
    by_seed = {(r["strategy"], r["seed"]): r["hypervolume"] for r in runs}
    lines = [f"Region: accuracy >= {args.min_accuracy}, memrw_mib <= {args.max_memrw}; "
             f"{args.budget:.0f} s per run; seeds {' '.join(map(str, args.seeds))}.", "",
             f"| strategy | hypervolume mean | sd | per seed | complete | pruned | "
             f"{default} / this |", "|---|---|---|---|---|---|---|"]
    default_mean = statistics.mean(r["hypervolume"] for r in runs if r["strategy"] == default)
    for strategy in strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        values = [r["hypervolume"] for r in mine]
        mean = statistics.mean(values)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        ratios = [by_seed[(default, r["seed"])] / r["hypervolume"] for r in mine
                  if r["hypervolume"] > 0 and (default, r["seed"]) in by_seed]
        ratio = f"{default_mean / mean:.2f}x" if mean else "-"
        if ratios and strategy != default:
            ratio += f" (per seed {min(ratios):.2f}-{max(ratios):.2f})"
        lines.append(
            f"| {strategy} | {mean:.4f} | {spread:.4f} | "
            f"{' '.join(f'{v:.4f}' for v in values)} | "
            f"{statistics.mean(r['complete'] for r in mine):.1f} | "
            f"{statistics.mean(r['pruned'] for r in mine):.1f} | {ratio} |")
    return "\n".join(lines)


def anytime_plot(runs: list[dict], strategies: list[str], path: Path,
                 args: argparse.Namespace) -> None:
    import plotly.graph_objects as go

    figure = go.Figure()
    for strategy in strategies:
        mine = [r["anytime"] for r in runs if r["strategy"] == strategy]
        times = [t for t, _ in mine[0]]
        means = [statistics.mean(curve[i][1] for curve in mine) for i in range(len(times))]
        figure.add_trace(go.Scatter(x=times, y=means, mode="lines", name=strategy))
    figure.update_layout(
        title=f"Hypervolume against wall-clock (mean of seeds {args.seeds}; accuracy >= "
              f"{args.min_accuracy}, memrw <= {args.max_memrw} MiB)",
        xaxis_title="seconds since the first trial started", yaxis_title="hypervolume")
    figure.write_html(path, include_plotlyjs=True)


if __name__ == "__main__":
    main()
