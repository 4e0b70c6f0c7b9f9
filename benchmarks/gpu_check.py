"""The GPU check of issue 19: what no CPU can measure, in one run of at most 8 minutes on one
GPU, on synthetic CIFAR-shaped data (nothing is downloaded). Prints one markdown table and
writes it, with the raw figures, as JSON to --out (rewritten after every part, so a run cut
short keeps what it measured).

1. Training throughput (batch 64, 32x32, the Trainer's set-up: channels_last, bf16
   autocast, fused Adam; ``threshsearch.bench.run_bench``) of ThreshNet-79 against
   DenseNet-121, the builder's and torchvision's; the paper reports 2.56x.
2. A trial's training throughput inside the search (``run_search``, a one-point space:
   ThreshNet-79 as it is, one trial with the GPU to itself) against the same network and
   recipe trained by the same Trainer outside the search, the two alternating (outside,
   inside, outside, ...: ``trial_rounds`` trials, each against the mean of the trainings
   either side, so that a drift of the machine's speed falls on both); the median ratio
   and its range. Issue 19's target: within 3 %, read as met only where the outside
   trainings also agree with each other within 3 % (their spread has its own row: fastest
   over slowest at most 1.03): else
   the machine's own variation is wider than the target. A round that no longer fits the
   part's cap is not started, and a failed one ends the part with the rounds before it.
3. The GPU's busy share during that trial and during the training outside the search,
   sampled every 0.2 s (``torch.cuda.utilization`` where pynvml is installed, else
   nvidia-smi; the JSON says which).
4. Measured latency's reproducibility: the latency benchmark's space
   (benchmarks/latency_repro.yaml, random sampler, same seed) on synthetic data, run twice
   with ``resources.gpus: 1`` (one trial at a time), twice with ``gpus: 0.5`` (two trials
   share the GPU) and twice with ``gpus: 1`` and ``measurement.cuda_graph`` (replays of a
   captured CUDA graph timed): the share of networks whose latency_ms agrees within ±10 %.

Each part has a time cap (the search parts through ``study.timeout_s``) and the caps are cut
to what is left of the whole run's budget. ``--smoke`` runs every part with tiny sizes on
the CPU (a small network in part 2, the machine's load as a stand-in for the GPU's busy
share) to check the script's structure; it measures nothing about GPUs.

    python -m benchmarks.gpu_check --out benchmarks/out/gpu-check.json    # one GPU, < 8 min
    python -m benchmarks.gpu_check --smoke --out /tmp/gpu-check.json      # CPU, structure only

``--parts`` runs some of them (``throughput`` is part 1, ``search`` parts 2 and 3, ``latency``
part 4), e.g. to spend a short GPU lease on what has not been measured yet.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpu_busy import BusySampler, busy_reader
from benchmarks.latency_repro import DEFAULT_SPACE as LATENCY_SPACE
from benchmarks.latency_repro import agreement, one_run

PART_MODELS = {"threshnet79": "ThreshNet-79", "densenet121": "DenseNet-121 (the builder's)",
               "torchvision-densenet121": "DenseNet-121 (torchvision's)"}
PARTS = ("throughput", "search", "latency")
PAPER_RATIO = 2.56  # DenseNet-121's CIFAR-10 epoch time over ThreshNet-79's (RTX 3080 Ti)
NO_GPU = ("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); run it on a "
          "machine with one, or pass --smoke to check its structure on the CPU")


@dataclass(frozen=True)
class Sizes:
    device: str
    total_s: float  # the whole run's budget; each part's cap is cut to what is left of it
    bench_batch: int
    bench_repeats: int  # interleaved repetitions per run_bench call
    bench_calls: int  # run_bench calls, as many as the cap allows
    bench_cap_s: float
    network: dict[str, Any]  # the one-point space's fixed parameters over ThreshNet-79
    trial_epochs: int
    trial_rounds: int  # part 2's trials inside the search, each between two outside
    trial_cap_s: float  # part 2, the outside trainings included
    # (gpus per trial, trials at once, CUDA graph replays timed)
    latency_settings: tuple[tuple[float, int, bool], ...]
    latency_trials: int
    latency_epochs: int
    latency_max_time_s: float
    latency_cap_s: float  # per run; two runs per setting
    ray_cpus: int
    trial_cpus: int  # part 2's trial, and its twin outside the search
    threads: int | None  # torch threads of this process (None: torch's default)
    sample_period_s: float = 0.2


GPU = Sizes("cuda", total_s=450, bench_batch=64, bench_repeats=3, bench_calls=4,
            bench_cap_s=60, network={}, trial_epochs=60, trial_rounds=3, trial_cap_s=180,
            # The CUDA-graph setting first: a run over its budget starves the last.
            latency_settings=((1, 1, True), (1, 1, False), (0.5, 2, False)), latency_trials=6,
            latency_epochs=2, latency_max_time_s=2.0, latency_cap_s=40, ray_cpus=4,
            trial_cpus=2, threads=None)
# Caps far above the smoke's own time (about a minute on two idle cores): a loaded machine
# (where fresh Ray workers take a minute to import torch) makes it slow, not incomplete. One
# latency setting of one trial per run: the smoke checks part 4's code path, not the
# figures of both settings.
SMOKE = Sizes("cpu", total_s=1200, bench_batch=4, bench_repeats=1, bench_calls=1,
              bench_cap_s=120, network={"num_stages": 3, "depth": 1, "growth": 8},
              trial_epochs=2, trial_rounds=2, trial_cap_s=240,
              latency_settings=((0, 1, False),),
              latency_trials=1, latency_epochs=1, latency_max_time_s=0.3, latency_cap_s=180,
              ray_cpus=2, trial_cpus=1, threads=1)


@dataclass
class Row:
    part: int
    measure: str
    value: float | None  # None: not measured, the note says why
    unit: str  # "img/s", "x" (a ratio) or "share" (shown as %)
    target: str = ""
    note: str = ""


def now() -> float:
    """The clock every cap is read on (a seam for the tests)."""
    return time.perf_counter()


class Budget:
    """The run's time budget: each part gets its own cap or what is left, if less."""

    def __init__(self, total_s: float):
        self.deadline = now() + total_s

    def cap(self, own_s: float) -> float:
        return max(0.0, min(own_s, self.deadline - now()))


# ---------------------------------------------------------------- the parts
def model_throughput(sizes: Sizes, cap_s: float) -> tuple[list[Row], dict]:
    """Part 1: run_bench on the three models, called again while the cap allows; the median
    over calls of each call's median."""
    from threshsearch.bench import CANDIDATES, run_bench

    chosen = [c for c in CANDIDATES if c.setup == "threshsearch" and c.name in PART_MODELS]
    calls: list[dict] = []
    start = time.perf_counter()
    while len(calls) < sizes.bench_calls:
        elapsed = time.perf_counter() - start
        if calls and elapsed + elapsed / len(calls) > cap_s:
            break
        calls.append(run_bench([32], sizes.device, repeats=sizes.bench_repeats,
                               train_batch=sizes.bench_batch, candidates=chosen))
    speed = {name: statistics.median(row["train_images_per_s"] for call in calls
                                     for row in call["rows"] if row["model"] == name)
             for name in PART_MODELS}
    note = (f"median of {len(calls)} run_bench calls x {sizes.bench_repeats} repetitions; "
            f"{calls[0]['dtype']}")
    rows = [Row(1, f"training throughput, {label}, batch {sizes.bench_batch}, 32x32",
                speed[name], "img/s", note=note) for name, label in PART_MODELS.items()]
    rows += [Row(1, f"ThreshNet-79 / {label} training throughput",
                 speed["threshnet79"] / speed[name], "x", f"paper {PAPER_RATIO}x",
                 "paper: epoch times on an RTX 3080 Ti")
             for name, label in PART_MODELS.items() if name != "threshnet79"]
    return rows, {"calls": calls}


def one_point_space(sizes: Sizes, folder: Path, timeout_s: float, name: str = "gpu-check-trial"):
    """A space whose only point is ThreshNet-79 (with ``sizes.network`` fixed over it),
    trained once with its GPU to itself; no objective measures anything."""
    from threshsearch.search.space import SearchSpace

    return SearchSpace.from_dict({
        "study": {"name": name, "storage": f"sqlite:///{folder / (name + '.db')}",
                  "sampler": "random", "seed": 0, "n_trials": 1, "concurrency": 1,
                  "timeout_s": max(timeout_s, 1.0)},
        "objectives": [{"metric": "val_accuracy", "direction": "maximize"},
                       {"metric": "memrw_mib", "direction": "minimize"}],
        "data": {"dataset": "synthetic", "device": sizes.device},
        "train": {"recipe": "quick", "batch_size": 64, "epochs": sizes.trial_epochs},
        "early_stopping": {"kind": "none"},
        "measurement": {"retime_front": False},
        "resources": {"cpus": sizes.trial_cpus, "gpus": 1 if sizes.device == "cuda" else 0},
        "base": "threshnet79", "baselines": [], "space": dict(sizes.network)})


@contextmanager
def _threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_outside(config, recipe, device: str, seed: int, threads: int) -> dict[str, float]:
    """The network trained as a trial trains it (same Trainer, data, recipe, seed, threads)
    but in this process, outside Ray and the search; the trial's statistic of its epochs."""
    from threshsearch.data import load_dataset
    from threshsearch.nn import build_model
    from threshsearch.search.trial import epoch_metrics
    from threshsearch.train import Trainer, seed_everything

    with _threads(threads):
        dataset = load_dataset("synthetic", device=device)
        seed_everything(seed)
        trainer = Trainer(build_model(config), dataset, recipe, seed=seed)
        start = time.time()
        trainer.fit(recipe.epochs)
        end = time.time()
    return {"train_images_per_s": epoch_metrics(trainer.history)["train_images_per_s"],
            "start": start, "end": end}


def _trial_inside(sizes: Sizes, folder: Path, timeout_s: float, name: str, config_hash: str
                  ) -> tuple[Any, Any]:
    """One search of the one-point space: its summary and its one trial, which must have
    trained the space's point to the end."""
    from threshsearch.search.runner import run_search

    summary = run_search(one_point_space(sizes, folder, timeout_s, name), quiet=True)
    trial = summary.study.trials[0]
    attrs = trial.user_attrs
    if attrs.get("status") != "complete":
        raise RuntimeError(f"the search's trial did not complete within the part's cap "
                           f"(status {attrs.get('status')}: {attrs.get('reason')})")
    if attrs.get("config_hash") != config_hash:
        raise RuntimeError(f"the search trained config {attrs.get('config_hash')}, not the "
                           f"space's one point {config_hash}")
    return summary, trial


def search_against_outside(sizes: Sizes, cap_s: float, folder: Path) -> tuple[list[Row], dict]:
    """Parts 2 and 3: outside, then (a trial of the search, outside) ``trial_rounds`` times;
    the GPU sampled all along."""
    import optuna

    read, source = busy_reader(sizes.device == "cpu")
    deadline = now() + cap_s
    # The network and recipe exactly as the search's sampler makes them from the space.
    config, recipe = one_point_space(sizes, folder, cap_s).sample(optuna.trial.FixedTrial({}))
    sampler = BusySampler(read or (lambda: math.nan), sizes.sample_period_s)
    outside, inside, ended, longest = [], [], "", 0.0  # longest: a round's seconds
    with sampler:
        outside.append(train_outside(config, recipe, sizes.device, 0, sizes.trial_cpus))
        for index in range(sizes.trial_rounds):
            began = now()
            left = deadline - began
            if inside and left < longest:
                ended = f"round {index + 1} not started: {left:.0f} s of the cap left"
                break
            try:
                trial = _trial_inside(sizes, folder, left, f"gpu-check-trial-{index}",
                                      config.hash)
                training = train_outside(config, recipe, sizes.device, 0, sizes.trial_cpus)
            except Exception as error:  # the rounds before it still count
                if not inside:
                    raise
                reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
                ended = f"round {index + 1} failed: {reason}"
                break
            inside.append(trial)
            outside.append(training)
            longest = max(longest, now() - began)
    speeds = [trial.user_attrs["train_images_per_s"] for _, trial in inside]
    around = [statistics.mean([outside[index]["train_images_per_s"],
                               outside[index + 1]["train_images_per_s"]])
              for index in range(len(inside))]
    ratios = [speed / mean for speed, mean in zip(speeds, around, strict=True)]
    statistic = f"median epoch less the first, {sizes.trial_epochs} epochs of synthetic data"
    trials = [trial for _, trial in inside]
    shares = {"trial": [sampler.share(trial.datetime_start.timestamp(),
                                      trial.datetime_complete.timestamp()) for trial in trials],
              "outside": [sampler.share(run["start"], run["end"]) for run in outside]}
    busy = {key: None if None in values else statistics.mean(values)
            for key, values in shares.items()}
    if read is None:
        busy = dict.fromkeys(busy)
    if sampler.error:
        source += f"; sampling stopped early: {sampler.error}"
    listed = ", ".join(f"{value:.3f}" for value in ratios) + (f"; {ended}" if ended else "")
    outside_speeds = [run["train_images_per_s"] for run in outside]
    rows = [
        Row(2, "trial's training throughput inside the search (median of the trials)",
            statistics.median(speeds), "img/s",
            note=f"{statistic}; trials {', '.join(f'{v:.1f}' for v in speeds)}"),
        Row(2, "same network, Trainer outside the search (median of the trainings)",
            statistics.median(run["train_images_per_s"] for run in outside), "img/s",
            note="in order: " + ", ".join(f"{run['train_images_per_s']:.1f}"
                                          for run in outside)),
        Row(2, "inside / outside the search (median over trials, each against the trainings "
               "either side)", statistics.median(ratios), "x", "0.97-1.03 (issue 19)",
            f"ratios {listed}"),
        Row(2, "spread of the trainings outside the search (fastest / slowest)",
            max(outside_speeds) / min(outside_speeds), "x",
            "≤ 1.03 (else wider than the target)", f"{len(outside)} trainings"),
        Row(2, "training + evaluation share of the trial's worker time (the last trial)",
            inside[-1][0].work.training_share(), "share", note=inside[-1][0].work.describe()),
        Row(3, "GPU busy during the search's trials (each from its start to its end)",
            busy["trial"], "share", note=source),
        Row(3, "GPU busy during the same training outside the search", busy["outside"],
            "share", note=source),
    ]
    return rows, {"trials": [{
        **{key: trial.user_attrs.get(key) for key in (
            "train_images_per_s", "throughput", "worker_time", "wall_s", "epochs")},
        "start": trial.datetime_start.timestamp(), "end": trial.datetime_complete.timestamp()}
        for trial in trials], "ratios": ratios,
        "outside": outside, "ended": ended, "busy_source": source,
        "busy_samples": sampler.samples}


def latency_reproducibility(sizes: Sizes, budget: Budget, folder: Path
                            ) -> tuple[list[Row], dict]:
    """Part 4: benchmarks/latency_repro.py's comparison, on synthetic data, per GPU share."""
    from threshsearch.search.space import load_space

    base = load_space(LATENCY_SPACE)
    rows, raw = [], {}
    for gpus, at_once, cuda_graph in sizes.latency_settings:
        label = (f"gpus: {gpus:g}, {at_once} trial{'s' * (at_once > 1)} at a time"
                 f"{', CUDA graph' if cuda_graph else ''}")
        runs = []
        for index in (1, 2):
            space = base.replace(
                study=base.study.replace(n_trials=sizes.latency_trials, concurrency=at_once,
                                         timeout_s=max(budget.cap(sizes.latency_cap_s), 1.0)),
                data=base.data.replace(dataset="synthetic", device=sizes.device),
                train=base.train.replace(epochs=sizes.latency_epochs),
                resources=base.resources.replace(gpus=gpus),
                measurement=base.measurement.replace(max_time_s=sizes.latency_max_time_s,
                                                     cuda_graph=cuda_graph))
            name = f"gpu-check-latency-{gpus:g}{'-graph' * cuda_graph}-{index}"
            runs.append(one_run(space, name, True, folder))
        raw[label] = runs
        if not runs[0].keys() & runs[1].keys():
            rows.append(Row(4, f"latency_ms within ±10 % between two runs, {label}", None,
                            "share", "≥ 90 %", "no network completed in both runs"))
            continue
        found = agreement(*runs, "latency_ms")
        rows.append(Row(4, f"latency_ms within ±10 % between two runs, {label}",
                        found["within_10"], "share", "≥ 90 %",
                        f"{found['networks']} networks, ratios {found['ratio_min']:.2f}-"
                        f"{found['ratio_max']:.2f}"))
    return rows, raw


# ---------------------------------------------------------------- the run
@dataclass
class Check:
    device: str
    torch: str
    smoke: bool
    rows: list[Row] = field(default_factory=list)
    parts: dict[str, Any] = field(default_factory=dict)  # raw figures and wall time per part


def _attempt(check: Check, part: str, numbers: tuple[int, ...], work: Callable[[], tuple]
             ) -> None:
    """Run one part; a part that fails leaves a row saying why, and the others still run."""
    print(f"gpu_check: {part}...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        rows, raw = work()
    except Exception as error:
        traceback.print_exc()
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
        rows, raw = [Row(number, part, None, "", note=f"failed: {reason}")
                     for number in numbers], {"error": reason}
    check.rows += rows
    check.parts[part] = {"wall_s": time.perf_counter() - start, "raw": raw}


def run_check(sizes: Sizes, out: Path, smoke: bool, parts: tuple[str, ...] = PARTS) -> Check:

    from threshsearch.measure import device_name, resolve_device
    from threshsearch.search.cluster import ray_session

    budget = Budget(sizes.total_s)
    if sizes.threads:
        torch.set_num_threads(sizes.threads)
    check = Check(device_name(resolve_device(sizes.device)), torch.__version__, smoke)

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({**asdict(check), "table": format_table(check)}, indent=1,
                                  default=str))

    if "throughput" in parts:
        _attempt(check, "model throughput", (1,),
                 lambda: model_throughput(sizes, budget.cap(sizes.bench_cap_s)))
        save()
        if sizes.device == "cuda":
            torch.cuda.empty_cache()  # part 1's models: the trials need the memory
    if not {"search", "latency"} & set(parts):
        return check
    # A Ray of its own, never a cluster already running on the machine; a caller's Ray in
    # this process (the tests') is used as it is.
    with ray_session(None, num_cpus=sizes.ray_cpus), tempfile.TemporaryDirectory() as scratch:
        if "search" in parts:
            _attempt(check, "search against outside", (2, 3), lambda: search_against_outside(
                sizes, budget.cap(sizes.trial_cap_s), Path(scratch)))
            save()
        if "latency" in parts:
            _attempt(check, "latency reproducibility", (4,),
                     lambda: latency_reproducibility(sizes, budget, Path(scratch)))
            save()
    return check


def _shown(row: Row) -> tuple[str, str]:
    if row.value is None:
        return "n/a", row.unit
    if row.unit == "share":
        return f"{100 * row.value:.1f}", "%"
    return (f"{row.value:.3f}", row.unit) if row.unit == "x" else (f"{row.value:.1f}", row.unit)


def format_table(check: Check) -> str:
    times = ", ".join(f"{part} {info['wall_s']:.0f} s" for part, info in check.parts.items())
    lines = [f"GPU check on {check.device}, torch {check.torch}"
             f"{' (SMOKE: tiny sizes on the CPU, no GPU figure)' if check.smoke else ''}; "
             f"{times}", "",
             "| part | measure | value | unit | target / reference | note |",
             "|---|---|---|---|---|---|"]
    for row in check.rows:
        value, unit = _shown(row)
        lines.append(f"| {row.part} | {row.measure} | {value} | {unit} | {row.target} | "
                     f"{row.note.replace('|', '/')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Check:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/out/gpu-check.json",
                        help="the JSON file the table and the raw figures go to")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU: checks the structure, measures no GPU")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="the parts to run (default all): throughput (1), search (2, 3), "
                             "latency (4)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        sys.exit(NO_GPU)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    check = run_check(SMOKE if args.smoke else GPU, Path(args.out), args.smoke,
                      tuple(args.parts))
    print(format_table(check))
    return check


if __name__ == "__main__":
    main()
