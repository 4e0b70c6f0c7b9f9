"""The search driver: Optuna proposes, Ray Tune runs, the Optuna storage keeps everything.

``StudySearcher`` is a Ray Tune searcher around an Optuna study used through ask and tell,
so each trial ends in the state it earned: COMPLETE with its objectives when it trained to
the end; PRUNED when early stopping (or the time budget) stopped it (Ray's own OptunaSearch
would tell such a trial COMPLETE with truncated values) or when it broke a constraint before
training, with the constraint's values told to the sampler; FAIL with a reason when it
raised. Every epoch's values go to the storage as they come (the learning curve), so a
resumed study's scheduler decides on the same evidence. Configs already evaluated in the
study are not trained again, and the trial budget counts every trial already in the storage,
so rerunning the same command resumes the study.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from threshsearch.config import ConfigError
from threshsearch.data import ImageDataset, load_dataset
from threshsearch.errors import UserError
from threshsearch.presets import get_preset
from threshsearch.search.baselines import open_baselines_study, still_to_train
from threshsearch.search.evidence import LEARNING_CURVE, curve_entry
from threshsearch.search.objectives import CHEAP_METRICS, METRICS
from threshsearch.search.retime import retime_front
from threshsearch.search.space import SearchSpace, SpaceError, constraint_values
from threshsearch.search.storage import (
    REASON,
    STATUS,
    STOPPED_AT,
    open_storage,
    retried_numbers,
    trial_status,
)
from threshsearch.search.trial import (
    BASELINE,
    COMPUTE_S,
    DONE,
    FAILED,
    INFEASIBLE,
    LATENCY,
    MEASURE_S,
    NODE,
    PAUSED_S,
    THROUGHPUT,
    WARNINGS,
    ShippedData,
    ray_trainable,
)

WAIT_POLL_S = 1.0  # how often to look again while waiting for other drivers' trials


def open_study(space: SearchSpace) -> optuna.Study:
    """Create or load the space's study, with its objective names set for the dashboard."""
    storage = open_storage(space.storage_url, space.study.heartbeat_s, space.study.grace_s)
    directions = space.directions
    choice = space.sampler_choice
    study = optuna.create_study(
        study_name=space.study.name, storage=storage, directions=directions,
        sampler=choice.build(space.study.seed), load_if_exists=True,
    )
    stored = [direction.name.lower() for direction in study.directions]
    if stored != directions:
        raise SpaceError(f"objectives: study {space.study.name!r} in {space.storage_url} "
                         f"has {len(stored)} objectives ({', '.join(stored)}); this space "
                         f"asks for {', '.join(directions)}; use another study.name")
    names = study.metric_names
    if names is None:
        study.set_metric_names(space.metric_names)
    elif list(names) != space.metric_names:
        raise SpaceError(f"objectives: study {space.study.name!r} optimises "
                         f"{', '.join(names)}; this space asks for "
                         f"{', '.join(space.metric_names)}; use another study.name")
    # What an exported result needs besides the trial: how its data was set up.
    study.set_user_attr("data", {"dataset": space.data.dataset, "root": space.data.root,
                                 "num_classes": space.num_classes,
                                 "device": space.data.device,
                                 "latency_batch_size": space.data.latency_batch_size})
    study.set_user_attr("base", space.base)
    # What re-timing the front needs, so that `threshsearch retime` works from the storage.
    study.set_user_attr("measurement", space.measurement.for_trials())
    study.set_user_attr("resources", asdict(space.resources))
    study.set_user_attr("sampler", {"kind": choice.kind, "settings": choice.settings,
                                    "reason": choice.reason})
    return study


def trial_spec(space: SearchSpace, trial: optuna.Trial, config_dict: dict[str, Any],
               recipe_dict: dict[str, Any]) -> dict[str, Any]:
    """Everything a worker needs to run one trial, as plain data."""
    return {
        "number": trial.number,
        "architecture": config_dict,
        "recipe": recipe_dict,
        "dataset": space.data.dataset,
        "data_root": str(Path(space.data.root).resolve()),
        "device": space.data.device,
        "latency_batch_size": space.data.latency_batch_size,
        "measurement": space.measurement.for_trials(),
        "constraints": [{"metric": c.metric, "max": c.max, "min": c.min}
                        for c in space.constraints],
        "seed": trial.user_attrs["seed"],
        "cpus": space.resources.cpus,
    }


@dataclass
class Counts:
    finished: int = 0  # complete, pruned, failed (not retried), infeasible, duplicate
    running: int = 0
    waiting: int = 0


class Progress:
    """One line per finished trial and a running tally, instead of Ray's log flood."""

    def __init__(self, space: SearchSpace, quiet: bool = False):
        self.space = space
        self.quiet = quiet

    def trial(self, trial: FrozenTrial | optuna.Trial, status: str, summary: str,
              study: optuna.Study, running: int, warnings: list[str] = ()) -> None:
        if self.quiet:
            return
        baseline = trial.user_attrs.get(BASELINE)
        label = f"baseline {baseline}" if baseline else f"trial {trial.number:>3}"
        print(f"{label} {status:<10} {summary}", flush=bool(baseline))
        for warning in warnings:
            print(f"      warning: {warning}", flush=bool(baseline))
        if baseline:
            return  # a baseline is no trial of the study's: no tally
        trials = study.get_trials(deepcopy=False)
        retried = retried_numbers(trials)
        tally: dict[str, int] = {}
        for item in trials:
            key = "retried" if item.number in retried else trial_status(item)
            tally[key] = tally.get(key, 0) + 1
        front = len(study.best_trials) if tally.get("complete") else 0
        counts = " · ".join(f"{key} {tally.get(key, 0)}" for key in
                            ("complete", "pruned", "failed", "infeasible", "duplicate"))
        done = sum(tally.get(key, 0) for key in
                   ("complete", "pruned", "failed", "infeasible", "duplicate"))
        print(f"      [{done}/{self.space.study.n_trials}] {counts} · running {running} · "
              f"front {front}", flush=True)


def _nested(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``result[key]``, also when Ray has flattened it to ``key/...`` entries."""
    if isinstance(result.get(key), dict):
        return result[key]
    prefix = f"{key}/"
    found = {name[len(prefix):]: value for name, value in result.items()
             if name.startswith(prefix)}
    return found or None


def _metric_summary(values: dict[str, Any], names: list[str]) -> str:
    return "  ".join(f"{name} {values[name]:.4g}" for name in names if name in values)


def make_searcher(space: SearchSpace, study: optuna.Study, input_size: int,
                  progress: Progress, stop_reasons: dict[str, str],
                  baselines: optuna.Study | None = None):
    """The study's Ray Tune searcher (the class is made here so that importing this module
    does not import Ray). ``stop_reasons`` is the early-stopping scheduler's account of the
    trials it stopped, by Ray trial id. With ``baselines`` (the companion study), the
    space's baselines not yet trained there are handed out first, then the search's
    trials."""
    from ray.tune.search import Searcher

    class _StudySearcher(Searcher):
        def __init__(self) -> None:
            super().__init__()
            self.space, self.study, self.progress = space, study, progress
            self.storage = study._storage
            self.input_size = input_size
            self.pending: dict[str, optuna.Trial] = {}
            self.started: dict[str, float] = {}
            self.last_results: dict[str, dict[str, Any]] = {}
            self.curves: dict[str, list[dict[str, Any]]] = {}
            self.baselines = baselines
            self.baseline_queue = (still_to_train(baselines, space.baselines)
                                   if baselines is not None else [])
            self.baseline_s = 0.0  # compute seconds the baselines took
            self.lock = threading.RLock()
            self.deadline = (time.monotonic() + space.study.timeout_s
                             if space.study.timeout_s else None)
            self.next_look = 0.0
            self.compute_s = 0.0
            self.wall_s = 0.0
            self.stop = threading.Event()
            self.beat = threading.Thread(target=self._heartbeat, daemon=True)
            self.beat.start()

        # -------------------------------------------------------- bookkeeping
        def _heartbeat(self) -> None:
            while not self.stop.wait(self.space.study.heartbeat_s):
                with self.lock:
                    ids = [trial._trial_id for trial in self.pending.values()]
                for trial_id in ids:
                    try:
                        self.storage.record_heartbeat(trial_id)
                    except Exception as error:  # a storage hiccup must not kill the beat
                        logging.getLogger(__name__).warning("heartbeat failed: %s", error)

        def _counts(self, trials: list[FrozenTrial]) -> Counts:
            retried = retried_numbers(trials)
            counts = Counts()
            for trial in trials:
                if trial.state == TrialState.RUNNING:
                    counts.running += 1
                elif trial.state == TrialState.WAITING:
                    counts.waiting += 1
                elif trial.number not in retried:
                    counts.finished += 1
            return counts

        def _end(self, trial: optuna.Trial, state: TrialState, status: str,
                 values: list[float] | None = None, reason: str | None = None,
                 attrs: dict[str, Any] | None = None,
                 constraints: dict[str, float] | None = None) -> None:
            for key, value in (attrs or {}).items():
                trial.set_user_attr(key, value)
            # Optuna's constraint API: samplers learn the infeasible region from these.
            for key, value in (constraints or {}).items():
                trial.set_constraint(key, value)
            trial.set_user_attr(STATUS, status)
            if reason:
                trial.set_user_attr(REASON, reason)
            trial.study.tell(trial, values, state=state)
            names = self.space.metric_names
            summary = reason or _metric_summary(attrs or {}, names)
            self.progress.trial(trial, status, summary, self.study, len(self.pending),
                                (attrs or {}).get(WARNINGS) or [])

        # -------------------------------------------------------------- suggest
        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            with self.lock:
                return self._suggest(trial_id)

        def _suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            while True:
                if self.deadline and time.monotonic() > self.deadline:
                    return Searcher.FINISHED
                if self.baseline_queue:
                    return self._suggest_baseline(trial_id, self.baseline_queue.pop(0))
                if time.monotonic() < self.next_look:
                    return None
                fail_stale_trials(self.study)
                if self.baselines is not None:
                    fail_stale_trials(self.baselines)
                trials = self.study.get_trials(deepcopy=False)
                counts = self._counts(trials)
                if counts.waiting == 0 and (
                        counts.finished + counts.running >= self.space.study.n_trials):
                    if counts.running > len(self.pending):
                        # Trials of another (or a killed) driver: wait until they finish
                        # or their heartbeat goes stale and they are queued again.
                        self.next_look = time.monotonic() + WAIT_POLL_S
                        return None
                    return None if self.pending else Searcher.FINISHED
                trial = self.study.ask()
                self.storage.record_heartbeat(trial._trial_id)
                spec = self._prepare(trial)
                if spec is not None:
                    self.pending[trial_id] = trial
                    self.started[trial_id] = time.perf_counter()
                    return spec

        def _suggest_baseline(self, trial_id: str, name: str) -> dict[str, Any]:
            """A preset trained as a trial is, but with no constraint, no early stopping and
            the study's own recipe and seed, recorded in the companion study."""
            trial = self.baselines.ask()
            self.storage.record_heartbeat(trial._trial_id)
            config = get_preset(name, self.space.num_classes)
            trial.set_user_attr(BASELINE, name)
            trial.set_user_attr("config_hash", config.hash)
            trial.set_user_attr("seed", self.space.study.seed or 0)
            trial.set_user_attr("architecture", config.to_dict())
            trial.set_user_attr("recipe", self.space.train.to_dict())
            self.pending[trial_id] = trial
            self.started[trial_id] = time.perf_counter()
            spec = trial_spec(self.space, trial, config.to_dict(), self.space.train.to_dict())
            return {**spec, "constraints": [], BASELINE: name}

        def _prepare(self, trial: optuna.Trial) -> dict[str, Any] | None:
            """The trial's spec, or None when it was settled without running."""
            try:
                config, recipe = self.space.sample(trial)
                config.check_input_size(self.input_size)
            except ConfigError as error:
                self._end(trial, TrialState.FAIL, "failed", reason=f"unbuildable: {error}")
                return None
            trial.set_user_attr("config_hash", config.hash)
            trial.set_user_attr("seed", (self.space.study.seed or 0) + trial.number)
            trial.set_user_attr("architecture", config.to_dict())
            trial.set_user_attr("recipe", recipe.to_dict())
            # Read after writing this trial's hash: of two drivers drawing one config at
            # once, the later-numbered trial sees the earlier one and stands down.
            twin = next((t for t in self.study.get_trials(deepcopy=False)
                         if t.user_attrs.get("config_hash") == config.hash
                         and t.number != trial.number
                         and (trial_status(t) in ("complete", "pruned", "infeasible",
                                                  "duplicate")
                              or (trial_status(t) == "running" and t.number < trial.number))),
                        None)
            if twin is not None:
                self._settle_duplicate(trial, twin)
                return None
            return trial_spec(self.space, trial, config.to_dict(), recipe.to_dict())

        def _settle_duplicate(self, trial: optuna.Trial, twin: FrozenTrial) -> None:
            attrs = {key: value for key, value in twin.user_attrs.items()
                     if key in METRICS or key in ("device", "versions", COMPUTE_S, "epochs",
                                                  LATENCY, THROUGHPUT)}
            attrs["duplicate_of"] = twin.number
            status = trial_status(twin)
            if status == "running":
                self._end(trial, TrialState.FAIL, "duplicate", attrs=attrs,
                          reason=f"same config as trial {twin.number}, still running")
            elif twin.state == TrialState.COMPLETE:
                self._end(trial, TrialState.COMPLETE, "duplicate", values=list(twin.values),
                          attrs=attrs, constraints=twin.constraints)
            elif twin.state == TrialState.PRUNED:
                self._end(trial, TrialState.PRUNED, "duplicate", attrs=attrs,
                          constraints=twin.constraints,
                          reason=f"same config as trial {twin.number}: "
                                 f"{twin.user_attrs.get(REASON, 'pruned')}")
            else:
                self._end(trial, TrialState.FAIL, "duplicate", attrs=attrs,
                          reason=f"same config as trial {twin.number}: "
                                 f"{twin.user_attrs.get(REASON, 'infeasible')}")

        # --------------------------------------------------------- completion
        def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
            self.last_results[trial_id] = result
            with self.lock:
                trial = self.pending.get(trial_id)
                if trial is not None:
                    self._record_epoch(trial_id, trial, result)

        def _record_epoch(self, trial_id: str, trial: optuna.Trial,
                          result: dict[str, Any]) -> None:
            """Add the result's epoch to the trial's stored learning curve (once)."""
            entry = curve_entry(result)
            curve = self.curves.setdefault(trial_id, [])
            if entry is None or (curve and curve[-1]["epoch"] >= entry["epoch"]):
                return
            if not curve:  # known before training: written once, with the first epoch
                for key in CHEAP_METRICS:
                    if key in result:
                        trial.set_user_attr(key, result[key])
            curve.append(entry)
            trial.set_user_attr(LEARNING_CURVE, curve)

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                              error: bool = False) -> None:
            with self.lock:
                trial = self.pending.pop(trial_id, None)
                if trial is None:
                    return
                result = result or self.last_results.get(trial_id) or {}
                self.last_results.pop(trial_id, None)
                # Tune does not pass the searcher the result its scheduler stopped on.
                self._record_epoch(trial_id, trial, result)
                self.curves.pop(trial_id, None)
                if trial.user_attrs.get(BASELINE):
                    self.baseline_s += float(result.get(COMPUTE_S, 0.0))
                wall = time.perf_counter() - self.started.pop(trial_id)
                compute = float(result.get(COMPUTE_S, 0.0))
                self.wall_s += wall
                self.compute_s += compute
                attrs = {key: result[key] for key in METRICS if key in result}
                epochs = result.get("epoch", 0)
                attrs |= {"device": result.get("device"), "versions": _nested(result, "versions"),
                          LATENCY: _nested(result, LATENCY),
                          THROUGHPUT: _nested(result, THROUGHPUT),
                          WARNINGS: result.get(WARNINGS) or [],
                          MEASURE_S: result.get(MEASURE_S), PAUSED_S: result.get(PAUSED_S),
                          "epochs": epochs,
                          NODE: result.get(NODE), COMPUTE_S: compute, "wall_s": wall}
                priced = all(metric in result for metric in CHEAP_METRICS)
                constraints = constraint_values(self.space.constraints, result) if priced \
                    else None
                if error or FAILED in result:
                    reason = result.get(FAILED) or ("the Ray worker died or raised; see the "
                                                    "trial's error file under ray/")
                    self._end(trial, TrialState.FAIL, "failed", reason=reason, attrs=attrs)
                elif INFEASIBLE in result:
                    self._end(trial, TrialState.PRUNED, "infeasible", attrs=attrs,
                              constraints=constraints,
                              reason=f"constraint: {result[INFEASIBLE]}")
                elif result.get(DONE):
                    values = [float(result[name]) for name in self.space.metric_names]
                    self._end(trial, TrialState.COMPLETE, "complete", values=values,
                              attrs=attrs, constraints=constraints)
                else:
                    reason = stop_reasons.get(trial_id) or (
                        f"stopped when the time budget ran out, after epoch {epochs}")
                    self._end(trial, TrialState.PRUNED, "pruned", reason=reason,
                              attrs={**attrs, STOPPED_AT: epochs}, constraints=constraints)

        def close(self) -> None:
            self.stop.set()

        # The Optuna storage is this searcher's whole state: rerunning `threshsearch run`
        # resumes from it. Tune's own searcher checkpoints and Tuner.restore are not used,
        # so there is nothing to save, and the pickle Tune writes of its setup holds none
        # of the searcher's live handles (locks, threads, database connections).
        def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
            return None

        def __reduce__(self) -> tuple:
            return (_not_restorable, ())

    return _StudySearcher()


def _not_restorable() -> None:
    return None


@dataclass
class SearchSummary:
    study: optuna.Study
    trials_run: int
    wall_s: float
    orchestration_share: float  # of trial wall time spent outside the trial's own work
    baselines_trained: int = 0
    baselines_s: float = 0.0  # compute seconds the baselines took this run


def quiet_ray() -> None:
    """Ray and Tune settings for a driver: no log flood, relative paths kept."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative paths keep working
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Infeasible and failed trials report no val_accuracy, on purpose: early stopping
    # skips them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")


OBJECT_STORE_SHARE = 0.5  # of the smallest trial node's object store a shipped dataset may use


def connect_ray(address: str | None) -> None:
    """Start a local Ray, or join the cluster at ``address``; UserError when it cannot."""
    import ray

    if address:
        _check_reachable(address)
    # "local" starts a fresh instance; a bare ray.init() would attach to any Ray already
    # running on this machine (another driver's, say) and share its fate. No job-wide
    # runtime_env: with one, Tune's actors cannot take the workers Ray starts in advance.
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=True)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as error:
        summary = " ".join(str(error).split())[:300]
        raise UserError(f"--address: cannot join a Ray cluster at {address!r} "
                        f"({type(error).__name__}: {summary}); start one with `ray start "
                        f"--head` and give its HOST:6379, or leave --address out for a "
                        f"local Ray") from None


def _check_reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must answer at once: ray.init retries an
    unreachable one for minutes before it gives up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(f"--address: no Ray cluster answers at {address!r} ({error}); start "
                        f"one with `ray start --head` and give its HOST:6379, or leave "
                        f"--address out for a local Ray") from None


def check_cluster(space: SearchSpace, dataset: ImageDataset, where: str) -> None:
    """Before any trial: some node can run a trial, and a shipped dataset fits the object
    store of the nodes that can. UserError naming the setting otherwise."""
    import ray

    cpus, gpus = space.resources.cpus, space.resources.gpus
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    able = [node for node in nodes
            if node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus]
    if not able:
        raise UserError(
            f"resources: a trial asks for {cpus:g} CPUs and {gpus:g} GPUs, but no node of "
            f"{where} has that much (the largest offers "
            f"{max((n.get('CPU', 0) for n in nodes), default=0):g} CPUs and "
            f"{max((n.get('GPU', 0) for n in nodes), default=0):g} GPUs); lower "
            f"resources.cpus / resources.gpus, or add a node that has them")
    if space.data.ship:
        store = min(node.get("object_store_memory", 0) for node in able)
        if dataset.nbytes > OBJECT_STORE_SHARE * store:
            raise UserError(
                f"data.ship: dataset {dataset.name} ({dataset.nbytes / 2**20:.0f} MiB) does "
                f"not fit Ray's object store ({store / 2**20:.0f} MiB on the smallest node "
                f"that can run a trial; a shipped dataset may use "
                f"{OBJECT_STORE_SHARE:.0%}); give Ray more (`ray start "
                f"--object-store-memory BYTES`), or set data.ship: false and data.root to a "
                f"folder every node can read")


def run_search(space: SearchSpace, address: str | None = None, quiet: bool = False
               ) -> SearchSummary:
    """Run (or resume) the study a space describes, on a local Ray or the cluster at
    ``address``. Returns when the trial budget or time budget is used up. The study in the
    storage is not touched before Ray is reached and the cluster can run the trials."""
    quiet_ray()
    import ray
    from ray import tune

    from threshsearch.search.schedulers import make_early_stopper

    # Fail fast on the driver (missing dataset files, bad root) before any worker starts.
    dataset = load_dataset(space.data.dataset, space.data.root, "cpu")
    if dataset.skipped and not quiet:
        print(f"data: {len(dataset.skipped)} unreadable files skipped, e.g. "
              f"{dataset.skipped[0]}")
    started_ray = not ray.is_initialized()
    if started_ray:
        connect_ray(address)
    searcher = None
    try:
        check_cluster(space, dataset, f"the Ray cluster at {address}" if address
                      else "this machine's Ray")
        study = open_study(space)
        progress = Progress(space, quiet)
        # The rungs start from every epoch already in the storage: a resumed study prunes
        # on the same evidence as one that was never interrupted.
        stopper = make_early_stopper(space, study.get_trials(deepcopy=False))
        if stopper.evidence and not quiet:
            print(f"early stopping resumes with {stopper.evidence} rung records from the "
                  f"storage")
        companion = (open_baselines_study(study, space.metric_names, space.directions)
                     if space.baselines else None)
        searcher = make_searcher(space, study, dataset.input_size, progress,
                                 stopper.stop_reasons, companion)
        queued = len(searcher.baseline_queue)
        if space.baselines and not quiet:
            print(f"baselines {', '.join(space.baselines)}: {queued} to train first, under "
                  f"the study's recipe, {len(space.baselines) - queued} already trained")
        trainable = ray_trainable
        if space.data.ship:
            # Once, from the driver: workers fetch it by reference and keep it on their
            # device between trials; they need no copy of the data of their own.
            shipped = ShippedData(f"{dataset.name}-{uuid.uuid4().hex[:12]}", ray.put(dataset))
            trainable = tune.with_parameters(ray_trainable, data=shipped)
        trainable = tune.with_resources(trainable, {"cpu": space.resources.cpus,
                                                    "gpu": space.resources.gpus})
        experiment = Path(space.study_dir / "ray").resolve()
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=stopper.scheduler,
                                        num_samples=-1,
                                        max_concurrent_trials=space.study.concurrency,
                                        reuse_actors=True,
                                        time_budget_s=space.study.timeout_s),
            run_config=tune.RunConfig(name=f"run-{time.strftime('%Y%m%d-%H%M%S')}",
                                      storage_path=str(experiment), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=1)),
        )
        start = time.perf_counter()
        tuner.fit()
        if space.measurement.retime_front:
            retime_front(study, dataset.input_size, quiet)
    finally:
        if searcher is not None:
            searcher.close()
        if started_ray:
            ray.shutdown()
    share = 1 - searcher.compute_s / searcher.wall_s if searcher.wall_s else 0.0
    return SearchSummary(study, len(study.trials), time.perf_counter() - start, share,
                         queued, searcher.baseline_s)


def with_overrides(space: SearchSpace, storage: str | None = None,
                   n_trials: int | None = None) -> SearchSpace:
    """The space with the CLI's --storage and --n-trials applied."""
    study = space.study
    if storage is not None:
        study = replace(study, storage=storage)
    if n_trials is not None:
        if n_trials < 1:
            raise SpaceError(f"--n-trials: {n_trials} is invalid; expected an integer >= 1")
        study = replace(study, n_trials=n_trials)
    return replace(space, study=study)
