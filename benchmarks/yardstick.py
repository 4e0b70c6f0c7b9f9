"""The scale benchmarks' yardstick: the same surrogate trials under plain Ray Tune (Tuner +
OptunaSearch + ASHAScheduler), drawing from the same space with the same sampler, as issue 19
asks the driver's trials a second to be compared with."""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import optuna


class YardstickRun(NamedTuple):
    trials: int
    wall_s: float
    driver_cpu_s: float  # the driver process's CPU time over the run
    epochs: int  # the epochs its trials ran, all together


class DrawFrom:
    """OptunaSearch's define-by-run space: the space's own draw (picklable, as Tune saves
    its searcher), handing the worker the drawn network and recipe as constants, so that
    its workers, like this driver's, need neither the space nor PyTorch."""

    def __init__(self, space) -> None:
        self.space = space

    def __call__(self, trial) -> dict:
        architecture, recipe = self.space.sample(trial)
        return {"architecture": architecture.to_dict(), "recipe": recipe.to_dict(),
                "seed": zlib.crc32(architecture.hash.encode())}


def stored_study(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage at ``url``, on SQLite with the driver's connection settings (a
    lock timeout, write-ahead log, synchronous=NORMAL: SQLite's default syncs the disk at
    every commit, which the driver's storage does not)."""
    import optuna

    from threshsearch.search.storage import sqlite_engine_kwargs, use_sqlite_settings

    if not url.startswith("sqlite:///"):
        return optuna.storages.RDBStorage(url)
    storage = optuna.storages.RDBStorage(url, engine_kwargs=sqlite_engine_kwargs())
    use_sqlite_settings(storage.engine)
    return storage


def run_plain_tune(space, trials: int, workers: int, epoch_s: float, folder: Path,
                   storage: str | None = None) -> YardstickRun:
    """The yardstick's run of ``trials`` surrogate trials. Its Optuna study is in memory
    (OptunaSearch's default), or in ``storage`` (a study of its own there)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from threshsearch.search.surrogate import run_surrogate

    def plain(config: dict) -> None:
        # The worker prices the network itself (no spec from a driver carries the figures).
        spec = {"architecture": config["architecture"], "recipe": config["recipe"],
                "seed": config["seed"], "constraints": [], "measure_latency": False}
        run_surrogate(spec, tune.report, 32, epoch_s)

    searcher = OptunaSearch(DrawFrom(space), metric=["val_accuracy", "memrw_mib"],
                            mode=["max", "min"],
                            sampler=space.sampler_choice.build(space.study.seed),
                            **({"storage": stored_study(storage),
                                "study_name": f"plain-{folder.name}"} if storage else {}))
    early = space.early_stopping
    scheduler = ASHAScheduler(metric="val_accuracy", mode="max", time_attr="epoch",
                              max_t=space.train.epochs, grace_period=early.grace_epochs,
                              reduction_factor=early.reduction_factor)
    tuner = tune.Tuner(
        tune.with_resources(plain, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=trials, max_concurrent_trials=workers,
                                    reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str((folder / ("plain-stored" if storage else "plain")).resolve()),
            verbose=0))
    cpu, start = time.process_time(), time.perf_counter()
    results = tuner.fit()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    epochs = sum(int((result.metrics or {}).get("epoch") or 0) for result in results)
    return YardstickRun(len(results), wall, cpu, epochs)
