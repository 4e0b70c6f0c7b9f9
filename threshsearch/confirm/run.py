"""Running a confirmation: the plan (which networks, which seeds, which recipe) and the Ray
tasks that train its (network, seed) pairs, ``concurrency`` at a time, each with a trial's
resources and the dataset the driver ships once through the object store. Every pair is
recorded as it starts and as it ends, so an interrupted confirmation resumes with the pairs
it had not finished."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState
from tqdm import tqdm

from threshsearch.config import ArchitectureConfig, ConfigError
from threshsearch.confirm.protocols import Protocol, confirmation_seeds, study_seed
from threshsearch.confirm.records import (
    Pair,
    finish_record,
    interrupt_record,
    mark_latest,
    network_label,
    open_confirm_study,
    start_record,
    still_to_train,
)
from threshsearch.data import INPUT_SIZE, load_dataset
from threshsearch.errors import UserError
from threshsearch.folders import MAX_IMAGE_PIXELS
from threshsearch.presets import PRESETS, get_preset
from threshsearch.search.baselines import baseline_trials, load_baselines_study
from threshsearch.search.objectives import DEVICE_MODEL, PREDICTED_LATENCY
from threshsearch.search.pricing import study_device_model
from threshsearch.search.reports import COMPUTE_S, FAILED
from threshsearch.search.storage import Heartbeat, open_storage, pareto_trials
from threshsearch.search.trial import ShippedData
from threshsearch.train import Recipe, get_recipe

WAIT_POLL_S = 2.0  # how often to look again at pairs another driver is training


@dataclass(frozen=True)
class Plan:
    protocol: Protocol
    seeds: list[int]
    pairs: list[Pair]
    dataset: str
    data_root: str
    device: str
    measurement: dict[str, Any]
    latency_batch_size: int
    cpus: float
    gpus: float
    test_fraction: float = 0.0  # the search's own held-out test share (folder datasets)
    max_image_pixels: int = MAX_IMAGE_PIXELS
    # config hash -> the latency the study's device model predicts (empty: it has none)
    predicted: dict[str, float] = field(default_factory=dict)

    @property
    def networks(self) -> list[str]:
        return list(dict.fromkeys(pair.network for pair in self.pairs))


def _recipe(protocol: Protocol, searched: dict[str, Any] | None, what: str) -> dict[str, Any]:
    if protocol.recipe:
        recipe = get_recipe(protocol.recipe)
    elif searched:
        recipe = Recipe.from_dict(searched)
    else:
        raise UserError(f"--recipe: the study records no recipe for {what}; name one "
                        f"(e.g. --recipe quick)")
    return recipe.override(epochs=protocol.epochs).to_dict()


def _members(study: optuna.Study, numbers: Sequence[int] | None) -> list[optuna.trial.FrozenTrial]:
    front = [t for t in pareto_trials(study) if "architecture" in t.user_attrs]
    if numbers is None:
        if not front:
            raise UserError(f"study {study.study_name}: no completed trial, so no front to "
                            f"confirm")
        return front
    complete = {t.number: t for t in study.get_trials(deepcopy=False)
                if t.state == TrialState.COMPLETE and "architecture" in t.user_attrs}
    for number in numbers:
        if number not in complete:
            raise UserError(f"--members: {number} is not a completed trial of study "
                            f"{study.study_name}; expected trial numbers such as the front's "
                            f"{', '.join(str(t.number) for t in front) or '(none)'}")
    return [complete[number] for number in dict.fromkeys(numbers)]


def _baselines(study: optuna.Study, protocol: Protocol
               ) -> dict[str, tuple[dict[str, Any] | None, float]]:
    """Each baseline to confirm: the recipe it was trained under (None: unknown) and the
    seconds the search took to train it (inf: never trained)."""
    trained = baseline_trials(load_baselines_study(study))
    names = protocol.baselines if protocol.baselines is not None else sorted(trained)
    result = {}
    for name in names:
        if name not in PRESETS:
            raise UserError(f"--baselines: {name!r} is not a preset; expected some of "
                            f"{', '.join(PRESETS)}, or none")
        if name in trained:
            attrs = trained[name].user_attrs
            result[name] = (attrs.get("recipe"), attrs.get(COMPUTE_S, math.inf))
        else:
            result[name] = (study.user_attrs.get("recipe"), math.inf)
    return result


def plan_confirmation(study: optuna.Study, protocol: Protocol,
                      members: Sequence[int] | None = None) -> Plan:
    """The pairs a protocol asks for: every chosen network and baseline with each seed."""
    data = study.user_attrs.get("data") or {}
    classes = data.get("num_classes") or 10
    seeds = confirmation_seeds(study_seed(study), protocol.seeds)
    networks = []  # (seconds the search took to train it: inf when unknown, Pair fields)
    for trial in _members(study, members):
        networks.append((trial.user_attrs.get(COMPUTE_S, math.inf), trial.number, None,
                         trial.user_attrs["config_hash"], trial.user_attrs["architecture"],
                         _recipe(protocol, trial.user_attrs.get("recipe"),
                                 f"trial {trial.number}")))
    for name, (recipe, took) in _baselines(study, protocol).items():
        config = get_preset(name, classes)
        try:
            config.check_input_size(INPUT_SIZE)
        except ConfigError as error:
            raise UserError(f"--baselines: {name}: {error}") from None
        networks.append((took, None, name, config.hash, config.to_dict(),
                         _recipe(protocol, recipe, name)))
    # Longest first (as the search measured them), so that the last pairs to finish are
    # short ones and no worker idles while one long pair ends the run.
    pairs = [Pair(network_label(number, name), number, name, config_hash, architecture,
                  recipe, seed)
             for _, number, name, config_hash, architecture, recipe
             in sorted(networks, key=lambda item: -item[0]) for seed in seeds]
    resources = study.user_attrs.get("resources") or {"cpus": 1, "gpus": 0}
    predicted = _predicted_latencies(study, networks)
    return Plan(protocol, seeds, pairs, data.get("dataset", "cifar10"), data.get("root", "data"),
                data.get("device", "auto"), study.user_attrs.get("measurement") or {},
                data.get("latency_batch_size", 1), resources["cpus"], resources["gpus"],
                data.get("test_fraction", 0.0), data.get("max_image_pixels", MAX_IMAGE_PIXELS),
                predicted)


def _predicted_latencies(study: optuna.Study, networks: list[tuple]) -> dict[str, float]:
    """The study's predicted latency of each network (config hash -> ms), a cost like params:
    the same figure for every seed. The search's own figure where it priced the network,
    else the study's device model's (a baseline it never trained)."""
    if not study.user_attrs.get(DEVICE_MODEL):
        return {}
    priced = [t for t in (*study.get_trials(deepcopy=False),
                          *baseline_trials(load_baselines_study(study)).values())
              if isinstance(t.user_attrs.get(PREDICTED_LATENCY), int | float)]
    predicted = {t.user_attrs["config_hash"]: float(t.user_attrs[PREDICTED_LATENCY])
                 for t in priced}
    missing = [(config_hash, architecture)
               for _, _, _, config_hash, architecture, _ in networks
               if config_hash not in predicted]
    if missing:
        model = study_device_model(study)
        predicted |= {config_hash: model.predict_ms(ArchitectureConfig.from_dict(architecture))
                      for config_hash, architecture in missing}
    return predicted


@dataclass
class ConfirmSummary:
    trained: int  # pairs trained to the end this run
    failed: int
    already_done: int  # pairs complete before this run
    wall_s: float


def _describe(pair: Pair, result: dict[str, Any]) -> str:
    if FAILED in result:
        return f"{pair.network} seed {pair.seed}: failed: {result[FAILED]}"
    return (f"{pair.network} seed {pair.seed}: test {result['test_accuracy']:.4f}  "
            f"val {result['val_accuracy']:.4f}  latency {result['latency_ms']:.4g} ms  "
            f"({result.get(COMPUTE_S, 0):.0f} s)")


def run_confirmation(study: optuna.Study, storage_url: str, plan: Plan,
                     concurrency: int | None = None, heartbeat_s: int = 5, grace_s: int = 20,
                     quiet: bool = False) -> ConfirmSummary:
    """Train the plan's pairs not yet confirmed through Ray (``ray.init`` must have run),
    ``concurrency`` at a time (None: as many as the cluster holds)."""
    import ray

    from threshsearch.confirm.pair import ray_confirm_pair
    from threshsearch.search.cluster import check_nodes

    start = time.perf_counter()
    # The very split the search held out: its test images were never looked at.
    dataset = load_dataset(plan.dataset, plan.data_root, "cpu",
                           test_fraction=plan.test_fraction, max_pixels=plan.max_image_pixels)
    check_nodes(plan.cpus, plan.gpus, dataset, "the Ray cluster")
    if dataset.test_is_validation and not quiet:
        print(f"data: the test split is {dataset.test_split}, on which the search chose its "
              f"networks; hold out a test split with data.test_fraction for a fair test")
    if concurrency is None:
        total = ray.cluster_resources()
        fits = [total.get("CPU", 0) / plan.cpus if plan.cpus else float("inf"),
                total.get("GPU", 0) / plan.gpus if plan.gpus else float("inf")]
        concurrency = max(1, int(min(fits)))
    storage = open_storage(storage_url, heartbeat_s, grace_s, retry_stale=False)
    confirm = open_confirm_study(study, storage)
    protocol = plan.protocol
    fail_stale_trials(confirm)
    todo, elsewhere = still_to_train(confirm, plan.pairs, protocol.key)
    summary = ConfirmSummary(0, 0, len(plan.pairs) - len(todo) - len(elsewhere), 0.0)
    if summary.already_done:
        mark_latest(confirm, protocol.name, protocol.key, plan.seeds)
    task = ray.remote(num_cpus=plan.cpus, num_gpus=plan.gpus, max_retries=1)(ray_confirm_pair)
    shipped = ShippedData(f"{dataset.name}-{uuid.uuid4().hex[:12]}", ray.put(dataset))
    common = {"device": plan.device, "measurement": plan.measurement,
              "latency_batch_size": plan.latency_batch_size, "cpus": plan.cpus}
    heartbeat = Heartbeat(storage, heartbeat_s)
    running: dict[Any, tuple[Pair, optuna.Trial, float]] = {}
    bar = tqdm(total=len(todo) + len(elsewhere), unit="pair", desc="confirm", disable=quiet,
               dynamic_ncols=True)
    try:
        while todo or running or elsewhere:
            while todo and len(running) < concurrency:
                pair = todo.pop(0)
                record = start_record(confirm, pair, protocol.key, plan.dataset)
                heartbeat.add(record._trial_id)
                spec = {**common, "architecture": pair.architecture, "recipe": pair.recipe,
                        "seed": pair.seed}
                running[task.remote(spec, shipped)] = (pair, record, time.perf_counter())
            if not running:
                # Only pairs another driver holds: train them here once its heartbeat
                # goes stale, or count them once it finishes them.
                time.sleep(WAIT_POLL_S)
                fail_stale_trials(confirm)
                free, held = still_to_train(confirm, elsewhere, protocol.key)
                bar.update(len(elsewhere) - len(free) - len(held))
                todo, elsewhere = free, held
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            pair, record, started = running[ready[0]]
            try:
                result = ray.get(ready[0])
            except ray.exceptions.RayError as error:  # the worker died twice
                result = {FAILED: " ".join(f"the Ray worker died: {error}".split())[:500]}
            if pair.config_hash in plan.predicted:
                result = {**result, PREDICTED_LATENCY: plan.predicted[pair.config_hash]}
            completed = finish_record(record, result, time.perf_counter() - started)
            # Dropped once its record is ended: an interrupt before then fails the record.
            del running[ready[0]]
            heartbeat.remove(record._trial_id)
            bar.update(1)
            if completed is None:
                bar.write(f"warning: {pair.network} seed {pair.seed}: its record was ended "
                          f"by another driver while it trained here (found stale: no "
                          f"heartbeat within grace_s); this result is dropped")
                continue
            if completed:
                mark_latest(confirm, protocol.name, protocol.key, plan.seeds)
            summary.trained += completed
            summary.failed += not completed
            if not quiet:
                bar.write(_describe(pair, result))
    finally:
        bar.close()
        heartbeat.close()
        for _, record, _ in running.values():
            interrupt_record(record)
    summary.wall_s = time.perf_counter() - start
    return summary
