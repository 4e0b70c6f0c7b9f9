"""The Ray Tune searcher around an Optuna study: Optuna proposes, the storage keeps everything.

``StudySearcher`` uses the study through ask and tell, so each trial ends in the state it
earned: COMPLETE with its objectives when it trained to the end; PRUNED when early stopping
(or the time budget) stopped it (Ray's own OptunaSearch would tell such a trial COMPLETE with
truncated values) or when it broke a constraint before training, with the constraint's values
told to the sampler; FAIL with a reason when it raised. Every epoch's values go to the storage
as they come (the learning curve), so a resumed study's scheduler decides on the same
evidence. Configs already evaluated in the study are not trained again, and the trial budget
counts every trial already in the storage, so rerunning the same command resumes the study.
This module imports Ray: the runner imports it only when a search starts.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import FrozenTrial, TrialState
from ray.tune.search import Searcher

from threshsearch.config import ConfigError
from threshsearch.presets import get_preset
from threshsearch.search.baselines import still_to_train
from threshsearch.search.evidence import LEARNING_CURVE, curve_entry
from threshsearch.search.objectives import CHEAP_METRICS, METRICS
from threshsearch.search.progress import Progress, metric_summary
from threshsearch.search.sections import constraint_values
from threshsearch.search.space import SearchSpace
from threshsearch.search.storage import (
    REASON,
    STATUS,
    STOPPED_AT,
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
)

WAIT_POLL_S = 1.0  # how often to look again while waiting for other drivers' trials


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



def _nested(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``result[key]``, also when Ray has flattened it to ``key/...`` entries."""
    if isinstance(result.get(key), dict):
        return result[key]
    prefix = f"{key}/"
    found = {name[len(prefix):]: value for name, value in result.items()
             if name.startswith(prefix)}
    return found or None



class StudySearcher(Searcher):
    """The study's Ray Tune searcher. ``stop_reasons`` is the early-stopping scheduler's
    account of the trials it stopped, by Ray trial id. With ``baselines`` (the companion
    study), the space's baselines not yet trained there are handed out first, then the
    search's trials."""

    def __init__(self, space: SearchSpace, study: optuna.Study, input_size: int,
                 progress: Progress, stop_reasons: dict[str, str],
                 baselines: optuna.Study | None = None) -> None:
        super().__init__()
        self.space, self.study, self.progress = space, study, progress
        self.stop_reasons = stop_reasons
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
        summary = reason or metric_summary(attrs or {}, names)
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
                reason = self.stop_reasons.get(trial_id) or (
                    f"stopped when the time budget ran out, after epoch {epochs}")
                self._end(trial, TrialState.PRUNED, "pruned", reason=reason,
                          attrs={**attrs, STOPPED_AT: epochs}, constraints=constraints)

    def close(self) -> None:
        self.stop.set()

    # The Optuna storage is this searcher's whole state: rerunning `threshsearch run`
    # resumes from it. Tune's own searcher checkpoints and Tuner.restore are not used, so
    # there is nothing to save; the copy Tune pickles of its setup (tuner.pkl) leaves out
    # the live handles (heartbeat thread, lock, study and its database connections).
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def __getstate__(self) -> dict[str, Any]:
        live = {"lock", "stop", "beat", "study", "storage", "baselines", "pending"}
        return {key: value for key, value in self.__dict__.items() if key not in live}
