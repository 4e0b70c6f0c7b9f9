"""Does the sampler learn under early stopping? `auto` against random sampling (and NSGA-II,
auto's former choice from 250 trials) at equal trials, on the surrogate trial.

The real driver (searcher, Pareto early stopping, sampler, SQLite storage, Ray Tune) runs
the search-quality space's choices (benchmarks/search_quality.yaml) on synthetic 32x32 data
with ``search.surrogate`` in place of training: learning curves from a documented model of
each config, short sleeps for epochs, so thousands of trials fit on a few cores. Each seed
runs every sampler (order rotated per seed) for the same number of trials; the front's
hypervolume (val_accuracy, memrw_mib) is taken at the nadir of the pooled fronts and each
sampler's is divided by random sampling's of the same seed, with a 95 % bootstrap interval.

Two hypervolumes. The observed one scores each run's front as its trials measured it. The
expected one (the primary figure) takes the same front, the networks the run reports, at
their expected accuracy (``surrogate.expected_curve``: averaged over training seeds, each
network's own effect kept): what retraining them over many seeds would give, which is what a
user of the front gets; an observed front also rewards the luckiest seeds. Under the
surrogate's first, hand-made model (before it was fitted to real training) this space's
expected accuracies spanned only 0.749-0.780 and the observed fronts ranked noise; fitted,
they span about 0.53-0.99 at 6 epochs. ``--rescore`` scores stored studies with the current
model, whatever model ran them.
``--without-ray`` runs the same driver with no Ray, trials one after another in this process
(``benchmarks.scale.run_driver_alone``): no trial runs while another is drawn, so a sampler
never draws beside running trials, and thousands of trials take minutes, not hours.

    python -m benchmarks.sampler_learning --trials 1000 5000 --seeds 5 --workers 16
    python -m benchmarks.sampler_learning --trials 1000 --seeds 5 --without-ray
    python -m benchmarks.sampler_learning --trials 60 --seeds 2 --workers 4   # smoke
    python -m benchmarks.sampler_learning --trials 1000 --seeds 5 --rescore --out DIR
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna

from benchmarks.scale import run_driver_alone
from benchmarks.search_quality import (
    mean_interval,
    non_dominated,
    pooled_reference,
    rotated,
    study_points,
    trained,
)
from threshsearch.search.cluster import connect_ray, quiet_ray
from threshsearch.search.pareto import hypervolume, minimised
from threshsearch.search.runner import run_search
from threshsearch.search.samplers import parse_sampler
from threshsearch.search.space import SearchSpace, load_space
from threshsearch.search.storage import DUPLICATE
from threshsearch.search.surrogate import expected_curve, surrogate_trainable

DEFAULT_SPACE = Path(__file__).with_name("search_quality.yaml")
SAMPLERS = ("auto", "random", "nsga2")
YARDSTICK = "random"  # what every ratio is taken against


def sampler_space(space: SearchSpace, sampler: str, seed: int, trials: int, workers: int,
                  epochs: int, folder: Path) -> SearchSpace:
    name = f"{sampler}-{trials}-seed{seed}"
    study = space.study.replace(name=name, seed=seed, n_trials=trials, concurrency=workers,
                                timeout_s=None, storage=f"sqlite:///{folder / name}.db",
                                sampler=parse_sampler(sampler))
    return space.replace(study=study, data=space.data.replace(dataset="synthetic"),
                         train=space.train.replace(epochs=epochs),
                         early_stopping=space.early_stopping.replace(
                             kind="pareto", grace_epochs=1, reduction_factor=3))


def ratios_to_yardstick(runs: list[dict], sampler: str, trials: int,
                        key: str = "hypervolume") -> list[float]:
    """Per seed, ``sampler``'s hypervolume (``key``) over random sampling's at ``trials``
    trials."""
    base = {r["seed"]: r[key] for r in runs
            if r["sampler"] == YARDSTICK and r["trials"] == trials}
    return [r[key] / base[r["seed"]] for r in runs
            if r["sampler"] == sampler and r["trials"] == trials and base.get(r["seed"])]


def expected_front(study: optuna.Study, directions: list[str]) -> list[tuple[float, ...]]:
    """The networks on the run's observed front (its complete trials, repeats left out),
    minimised, with val_accuracy at its expected value (over seeds) for the classes and
    epochs each trial was run with."""
    names = study.metric_names or []
    if "val_accuracy" not in names:
        raise ValueError(f"study {study.study_name!r} has no val_accuracy objective to "
                         f"score at its expected value (objectives: {names})")
    complete = trained(study.trials)
    observed = [minimised(t.values, directions) for t in complete]
    front = set(non_dominated(observed))
    points = []
    for trial, point in zip(complete, observed, strict=True):
        if point in front:
            values = list(trial.values)
            values[names.index("val_accuracy")] = expected_curve(
                trial.user_attrs["params"], trial.user_attrs["config_hash"],
                trial.user_attrs["architecture"]["num_classes"],
                trial.user_attrs["recipe"]["epochs"])[-1]
            points.append(minimised(values, directions))
    return points


def run_record(study: optuna.Study, sampler: str, trials: int, seed: int, mode: str,
               directions: list[str], wall_s: float | None) -> dict:
    """What the table needs of one run, from its study."""
    statuses = [t.user_attrs.get("status") for t in study.trials]
    early = [t for t in study.trials if t.number < trials]
    return {
        "sampler": sampler, "trials": trials, "seed": seed, "mode": mode,
        "chosen": study.user_attrs["sampler"]["kind"],
        "points": [p for _, p in study_points(study, directions)],
        "expected_front": expected_front(study, directions),
        # the first `trials` draws, repeats counted as trials (the budget before repeats
        # were left out of it)
        "points_at_draws": [minimised(t.values, directions) for t in trained(early)],
        "complete": statuses.count("complete"), "pruned": statuses.count("pruned"),
        "repeats": statuses.count(DUPLICATE), "draws": len(statuses), "wall_s": wall_s}


def score(runs: list[dict], trials: int) -> None:
    """Adds each run's hypervolumes (observed, expected, at equal draws), each at the
    nadir of the pooled fronts of its kind over the runs of ``trials`` trials."""
    mine = [r for r in runs if r["trials"] == trials]
    _, nadir, _ = pooled_reference(mine)
    _, expected_nadir, _ = pooled_reference(
        [{"points": r["expected_front"]} for r in mine])
    for run in mine:
        run["hypervolume"] = hypervolume([tuple(p) for p in run["points"]], nadir)
        run["hypervolume_expected"] = hypervolume(
            [tuple(p) for p in run["expected_front"]], expected_nadir)
        run["hypervolume_at_draws"] = hypervolume(
            [tuple(p) for p in run["points_at_draws"]], nadir)


def table(runs: list[dict], samplers: list[str], trial_counts: list[int], header: str
          ) -> str:
    """The markdown table of ``runs`` (scored in place), one row per trial count and
    sampler, each ratio to random sampling's with its interval."""
    lines = [header, "", "| trials | sampler (chosen) | complete | pruned | repeats | "
             "HV expected / random [95 %] | HV observed / random [95 %] | observed, at "
             "equal draws [95 %] |", "|---|---|---|---|---|---|---|---|"]
    for trials in trial_counts:
        score(runs, trials)
        mine = [r for r in runs if r["trials"] == trials]
        for sampler in samplers:
            group = [r for r in mine if r["sampler"] == sampler]
            if not group:
                continue
            shown = []
            for key in ("hypervolume_expected", "hypervolume", "hypervolume_at_draws"):
                mean, low, high = mean_interval(ratios_to_yardstick(mine, sampler, trials,
                                                                    key))
                shown.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
            lines.append(f"| {trials} | {sampler} ({group[0]['chosen']}) | "
                         f"{sum(r['complete'] for r in group) / len(group):.1f} | "
                         f"{sum(r['pruned'] for r in group) / len(group):.1f} | "
                         f"{sum(r['repeats'] for r in group) / len(group):.1f} | "
                         + " | ".join(shown) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", default=str(DEFAULT_SPACE))
    parser.add_argument("--trials", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds first-seed .. first-seed + seeds - 1 (held-out seeds "
                             "for a design chosen on others)")
    parser.add_argument("--workers", type=int, default=16, help="trials at a time")
    parser.add_argument("--epochs", type=int, default=6,
                        help="rungs at 1 and 3 (eta 3); the surrogate is fitted to 6-epoch "
                             "curves, so more epochs extrapolate")
    parser.add_argument("--epoch-s", type=float, default=0.02, help="surrogate sleep")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS))
    parser.add_argument("--out", default="benchmarks/out/sampler-learning")
    parser.add_argument("--without-ray", action="store_true",
                        help="trials one after another in this process, no Ray (--workers "
                             "and --epoch-s then unused); not comparable with a Ray run")
    parser.add_argument("--rescore", action="store_true",
                        help="run nothing: tabulate the studies the same flags left in --out "
                             "(into runs-rescored.json and table-rescored.md), their fronts "
                             "at the current surrogate's expected accuracy")
    args = parser.parse_args()
    import ray

    samplers = [*args.samplers, *([YARDSTICK] if YARDSTICK not in args.samplers else [])]

    space = load_space(args.space)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    mode = ("without Ray: trials one after another" if args.without_ray
            else f"Ray, {args.workers} trials at a time")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    runs = []
    if not args.rescore:
        quiet_ray()
        if not args.without_ray:
            connect_ray(None, num_cpus=args.workers)
    try:
        for trials in args.trials:
            for index in seeds:
                for sampler in rotated(samplers, index):
                    run_space = sampler_space(space, sampler, index, trials, args.workers,
                                              args.epochs, out)
                    storage = run_space.storage_url
                    began = time.perf_counter()
                    if args.rescore:
                        if not Path(storage.removeprefix("sqlite:///")).exists():
                            raise SystemExit(f"--rescore: no study {storage} (run it first, "
                                             "with the same flags)")
                        study = optuna.load_study(study_name=run_space.study.name,
                                                  storage=storage)
                    else:
                        Path(storage.removeprefix("sqlite:///")).unlink(missing_ok=True)
                        study = (run_driver_alone(run_space, out / f"{run_space.study.name}"
                                                  ".log")[0] if args.without_ray
                                 else run_search(run_space, quiet=True, trainable=(
                                     surrogate_trainable(32, args.epoch_s))).study)
                    runs.append(run_record(
                        study, sampler, trials, index, mode, space.directions,
                        None if args.rescore else time.perf_counter() - began))
                    if not args.rescore:
                        print(f"{trials} trials seed {index} {sampler:<7} "
                              f"({runs[-1]['chosen']}): complete {runs[-1]['complete']} "
                              f"pruned {runs[-1]['pruned']} ({runs[-1]['wall_s']:.0f} s)",
                              flush=True)
                        (out / "runs.json").write_text(json.dumps(runs, indent=1))
    finally:
        if ray.is_initialized():
            ray.shutdown()
    text = table(runs, samplers, args.trials,
                 f"{args.seeds} seeds from {args.first_seed}, {mode}; hypervolume at the "
                 "pooled fronts' nadir, 95 % percentile-bootstrap intervals over seeds; at "
                 "equal trials (repeats outside the budget), of the reported front at its "
                 "expected accuracy and as observed, and at equal draws (the first N "
                 "draws, repeats counted).")
    suffix = "-rescored" if args.rescore else ""  # a rescore keeps the run's own files
    (out / f"runs{suffix}.json").write_text(json.dumps(runs, indent=1))
    print("\n" + text)
    (out / f"table{suffix}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
