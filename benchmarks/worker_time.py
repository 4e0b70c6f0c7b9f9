"""Where the workers' time goes in a default search: the share that trains, per setting.

Runs the search-quality space (benchmarks/search_quality.yaml: digits on the CPU, two trials
at a time, the project's defaults: Pareto early stopping, sampler auto) in two settings, each
repeated, the settings alternating within each repeat so that whatever else the machine does
falls on both alike:

- ``no-latency``: val_accuracy + memrw_mib (no objective or constraint asks for latency);
- ``measured-latency``: the same plus latency_ms as a third objective, measured per trial.

Each run ends at the same wall-clock budget. Prints, per setting, the share of worker time
spent training + evaluating (mean, min-max over repeats) and every phase's share, from the
trials' worker-time accounts; writes runs.json and table.md to --out.

    python benchmarks/worker_time.py --budget 120 --repeats 3 --epochs 8   # about 13 minutes
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml

from threshsearch.search.cluster import connect_ray, quiet_ray
from threshsearch.search.runner import run_search
from threshsearch.search.space import load_space
from threshsearch.search.worktime import OUTSIDE, PHASES

DEFAULT_SPACE = Path(__file__).with_name("search_quality.yaml")
SETTINGS = {
    "no-latency": [],
    "measured-latency": [{"metric": "latency_ms", "direction": "minimize"}],
}


def setting_space(base: dict, setting: str, repeat: int, budget: float, epochs: int,
                  folder: Path) -> Path:
    """The space file of one run: the base space with the setting's objectives, a study of
    its own and the budget."""
    data = json.loads(json.dumps(base))
    name = f"{setting}-{repeat}"
    data["study"] |= {"name": name, "seed": repeat, "timeout_s": budget,
                      "storage": f"sqlite:///{folder / name}.db"}
    data["objectives"] = [*data["objectives"], *SETTINGS[setting]]
    data["train"]["epochs"] = epochs
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE))
    parser.add_argument("--budget", type=float, default=120, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out", default="benchmarks/out/worker-time")
    args = parser.parse_args()

    import ray

    base = yaml.safe_load(Path(args.space).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    quiet_ray()
    connect_ray(None, num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for repeat in range(args.repeats):
                order = list(SETTINGS) if repeat % 2 == 0 else list(reversed(SETTINGS))
                for setting in order:
                    path = setting_space(base, setting, repeat, args.budget, args.epochs,
                                         Path(scratch))
                    began = time.perf_counter()
                    summary = run_search(load_space(path), quiet=True)
                    shares = summary.work.shares()
                    run = {"setting": setting, "repeat": repeat,
                           "wall_s": time.perf_counter() - began,
                           "worker_s": summary.work.total_s,
                           "training_share": summary.work.training_share(),
                           "shares": shares, "trials": len(summary.study.trials)}
                    runs.append(run)
                    print(f"repeat {repeat} {setting:<17} training + evaluation "
                          f"{run['training_share']:.1%} of {run['worker_s']:.0f} "
                          f"worker-seconds, {run['trials']} trials: "
                          f"{summary.work.describe()}", flush=True)
                    (out / "runs.json").write_text(json.dumps(runs, indent=1))
    finally:
        ray.shutdown()
    table = summary_table(runs, args)
    print("\n" + table)
    (out / "table.md").write_text(table + "\n")


def summary_table(runs: list[dict], args: argparse.Namespace) -> str:
    phases = [*PHASES, OUTSIDE]
    lines = [f"{args.budget:.0f} s per run, {args.epochs}-epoch trials, {args.repeats} "
             f"repeats; shares of worker time, mean over repeats.", "",
             "| setting | training + evaluation (min-max) | "
             + " | ".join(phases) + " |",
             "|---|---|" + "---|" * len(phases)]
    for setting in SETTINGS:
        mine = [run for run in runs if run["setting"] == setting]
        if not mine:
            continue
        trained = [run["training_share"] for run in mine]
        cells = [f"{statistics.mean(run['shares'].get(p, 0.0) for run in mine):.1%}"
                 for p in phases]
        lines.append(f"| {setting} | {statistics.mean(trained):.1%} "
                     f"({min(trained):.1%}-{max(trained):.1%}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
