"""Parts 2 and 3 of the GPU check: a trial's training throughput inside the search against
the same network and recipe trained by the same Trainer outside it, alternating, with the
GPU's busy share sampled all along (``benchmarks/gpu_check.py`` says how it is read)."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from benchmarks.gpu_busy import BusySampler, busy_reader
from benchmarks.gpu_sizes import Row, Sizes, failure_note, now


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
                ended = f"round {index + 1} failed: {failure_note(error)}"
                break
            inside.append(trial)
            outside.append(training)
            longest = max(longest, now() - began)
    speeds = [trial.user_attrs["train_images_per_s"] for _, trial in inside]
    outside_speeds = [run["train_images_per_s"] for run in outside]
    around = [statistics.mean(outside_speeds[index:index + 2]) for index in range(len(inside))]
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
    rows = [
        Row(2, "trial's training throughput inside the search (median of the trials)",
            statistics.median(speeds), "img/s",
            note=f"{statistic}; trials {', '.join(f'{v:.1f}' for v in speeds)}"),
        Row(2, "same network, Trainer outside the search (median of the trainings)",
            statistics.median(outside_speeds), "img/s",
            note="in order: " + ", ".join(f"{speed:.1f}" for speed in outside_speeds)),
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
