"""The Ray Tune searcher around an Optuna study: Optuna proposes, the storage keeps everything.

``StudySearcher`` uses the study through ask and tell, so each trial ends in the state it
earned (``search/exchange.py`` decides which). Constraints on the profiled metrics
(params, MAdd, Flops, memory traffic, CIO, activations) and on the latency a device model
predicts are checked here, before a trial is handed out: a config that breaks one never
reaches a worker. Every epoch's values go to the
storage as they come (the learning curve; restarted when Tune re-runs a trial whose worker
died), so a resumed study's scheduler decides on the same evidence. Configs already
evaluated in the study are not trained again and use none of the trial budget (TPE's and
GP's draws are checked against them first, ``search/samplers/fresh.py``; a run of
``EXHAUSTED_AFTER`` of them in a row ends the search: the space is all but tried); the
budget counts every other trial already in the storage, so rerunning the same command
resumes the study; both are looked up in the driver's index of the study
(``search/index.py``), not in a read of every trial.
This module imports Ray: the runner imports it only when a search starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState
from ray.tune.search import Searcher

from threshsearch.config import ArchitectureConfig, ConfigError
from threshsearch.errors import UserError
from threshsearch.presets import get_preset
from threshsearch.search.baselines import still_to_train
from threshsearch.search.evidence import LEARNING_CURVE, LearningCurves
from threshsearch.search.exchange import Outcome, duplicate_outcome, trial_outcome, trial_spec
from threshsearch.search.index import HEARTBEAT_RETRY, TrialIndex
from threshsearch.search.objectives import DEVICE_MODEL, PREDICTED_LATENCY
from threshsearch.search.progress import Progress, metric_summary
from threshsearch.search.reports import (
    BASELINE,
    COMPUTE_S,
    PROFILED,
    PROFILED_METRICS,
    WARNINGS,
    profiled_metrics,
    violated_constraint,
)
from threshsearch.search.sections import constraint_values
from threshsearch.search.space import SearchSpace
from threshsearch.search.storage import (
    CONFIG_HASH,
    REASON,
    STATUS,
    Heartbeat,
    queue_retry,
    set_user_attrs,
)
from threshsearch.search.studycache import params_held
from threshsearch.search.worktime import WORKER_TIME, WorkTally

WAIT_POLL_S = 1.0  # how often to look again while waiting for other drivers' trials
SUGGEST_S = 2.0  # the longest one suggestion may draw for before it gives Tune its loop back
DEVICES = "devices"  # study user attr: the devices its trials ran on, when more than one
# Draws in a row that repeated networks already tried (each after the sampler's own checks
# failed to find an untried one): the space is all but exhausted, and the search ends.
EXHAUSTED_AFTER = 50
# The longest a draw waits for another driver's earlier-numbered trial to write its network
# (a draw takes milliseconds to a second or two; past this its driver is taken as stalled).
DRAW_PATIENCE_S = 10.0


def _start_clean(trial: optuna.Trial) -> None:
    """Blank what Optuna's heartbeat retry copied of the dead attempt's record, or its
    partial learning curve and figures would pass for this attempt's."""
    set_user_attrs(trial, {key: [] if key == LEARNING_CURVE else None
                           for key in trial.user_attrs})


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
        self.curves = LearningCurves()
        trials = study.get_trials(deepcopy=False)  # the one full read of the study
        self.index = TrialIndex(study, trials)
        self.devices = {trial.user_attrs["device"] for trial in trials
                        if trial.user_attrs.get("device")}
        # Everything known before training is priced here, on the driver: the profiler's
        # figures, and the latency a device model predicts.
        self.device_model = space.device_model
        known = {*PROFILED_METRICS, *([PREDICTED_LATENCY] if self.device_model else [])}
        self.priced_constraints = tuple(constraint for constraint in space.constraints
                                        if constraint.metric in known)
        self.baselines = baselines
        if baselines is not None:
            fail_stale_trials(baselines)  # a dead driver's baselines are this one's to train
        self.baseline_queue = (still_to_train(baselines, space.baselines)
                               if baselines is not None else [])
        self.baselines_taken: set[str] = set()  # handed out by this driver
        self.baseline_s = 0.0  # compute seconds the baselines took
        self.lock = threading.RLock()
        self.deadline = (time.monotonic() + space.study.timeout_s
                         if space.study.timeout_s else None)
        self.suggest_s = SUGGEST_S
        self.next_look = 0.0  # no storage read before this (monotonic seconds)
        self.next_stale_check = 0.0
        self.work = WorkTally()  # where this run's worker time went
        self.repeats_in_a_row = 0
        self.exhausted: str | None = None  # why the search ended early, when it did
        self.heartbeat = Heartbeat(self.storage, space.study.heartbeat_s)

    # -------------------------------------------------------- bookkeeping
    def _end(self, trial: optuna.Trial, outcome: Outcome,
             curve: dict[str, Any] | None = None) -> None:
        """Write the trial's outcome (with ``curve``, what of its learning curve the storage
        lacks) in one transaction, and tell it. Its constraint values are stored as Optuna's
        ``Trial.set_constraint`` stores them, for samplers to learn the infeasible region
        from."""
        set_user_attrs(trial, {**(curve or {}), **outcome.attrs, STATUS: outcome.status,
                               **({REASON: outcome.reason} if outcome.reason else {})},
                       constraints=outcome.constraints)
        told = trial.study.tell(trial, outcome.values, state=outcome.state,
                                skip_if_finished=True)
        if told.state != outcome.state:  # finished elsewhere between the write and the tell
            raise optuna.exceptions.UpdateFinishedTrialError(
                f"trial {trial.number} is already {told.state.name}")
        self._beat(trial, False)
        if trial.study is self.study:  # not a baseline's, told to the companion study
            self.index.ended(trial, outcome.status, outcome.state, outcome.values)
        names = self.space.metric_names
        summary = outcome.reason or metric_summary(outcome.attrs, names)
        self.progress.trial(trial, outcome.status, summary, self.index, len(self.pending),
                            outcome.attrs.get(WARNINGS) or [])

    # -------------------------------------------------------------- suggest
    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        with self.lock:
            return self._suggest(trial_id)

    def _beat(self, trial: optuna.Trial, alive: bool) -> None:
        (self.heartbeat.add if alive else self.heartbeat.remove)(trial._trial_id)

    def _suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        entered = time.monotonic()
        while True:
            if time.monotonic() - entered > self.suggest_s:
                # Draw after draw settled without running (infeasible, duplicates): give
                # Tune's event loop back; it asks again at once.
                return None
            if self.deadline and time.monotonic() > self.deadline:
                return Searcher.FINISHED
            if self.repeats_in_a_row >= EXHAUSTED_AFTER:
                return Searcher.FINISHED
            if self.baseline_queue:
                name = self.baseline_queue.pop(0)
                # Looked at again: another driver may have taken it since this one started.
                if still_to_train(self.baselines, [name]):
                    self.baselines_taken.add(name)
                    spec = self._suggest_baseline(trial_id, name)
                    if spec is not None:
                        return spec
                continue
            now = time.monotonic()
            if now < self.next_look:
                return None
            if now >= self.next_stale_check:
                # A heartbeat goes stale only after grace_s: looking once a beat is enough.
                self.next_stale_check = now + self.space.study.heartbeat_s
                self.heartbeat.beat_now(older_than_s=self.space.study.heartbeat_s)
                fail_stale_trials(self.study)
                if self.baselines is not None:
                    fail_stale_trials(self.baselines)
                    # A baseline left to a driver that has died since: this one trains it.
                    self.baseline_queue += [
                        name for name in still_to_train(self.baselines, self.space.baselines)
                        if name not in self.baselines_taken and name not in self.baseline_queue]
                    if self.baseline_queue:
                        continue
            self.index.refresh()
            counts = self.index.counts()
            if counts.waiting == 0 and (
                    counts.finished + counts.running >= self.space.study.n_trials):
                if counts.running > len(self.pending) or self.pending:
                    # The budget is spoken for: wait for this driver's trials to end, or
                    # another (or a killed) driver's to end or go stale and be queued
                    # again. Tune asks again at once after a None, so no looking before
                    # the next poll: the storage is read once a poll, not once a loop.
                    self.next_look = now + WAIT_POLL_S
                    return None
                return Searcher.FINISHED
            trial = self.study.ask()
            self._beat(trial, True)
            self.index.claim(trial)
            try:
                spec = self._prepare(trial)
            except optuna.exceptions.UpdateFinishedTrialError:
                # Failed by another driver's stale check before its first beat here (a
                # slow draw, a stalled machine): its retry is queued; draw again.
                self._beat(trial, False)
                self.index.lost(trial)
                continue
            if spec is not None:
                self.pending[trial_id] = trial
                self.started[trial_id] = time.perf_counter()
                return spec

    def _suggest_baseline(self, trial_id: str, name: str) -> dict[str, Any] | None:
        """A preset trained as a trial is, but with no constraint, no early stopping and
        the study's own recipe and seed, recorded in the companion study; None when it
        failed before training (a device model that cannot price it)."""
        trial = self.baselines.ask()
        self._beat(trial, True)
        if HEARTBEAT_RETRY in self.baselines._storage.get_trial(trial._trial_id).system_attrs:
            _start_clean(trial)  # a dead driver's baseline, queued again by Optuna
        config = get_preset(name, self.space.num_classes)
        trial.set_user_attr(BASELINE, name)
        trial.set_user_attr(CONFIG_HASH, config.hash)
        trial.set_user_attr("seed", self.space.study.seed or 0)
        trial.set_user_attr("architecture", config.to_dict())
        trial.set_user_attr("recipe", self.space.train.to_dict())
        spec = trial_spec(self.space, trial, config.to_dict(), self.space.train.to_dict())
        if self.device_model is not None:
            try:
                spec[PROFILED] = self._priced(trial, config)
            except UserError as error:
                self._end(trial, Outcome(TrialState.FAIL, "failed",
                                         reason=f"not priced: {error}"))
                return None
        self.pending[trial_id] = trial
        self.started[trial_id] = time.perf_counter()
        return {**spec, "constraints": [], BASELINE: name}

    def _priced(self, trial: optuna.Trial, config: ArchitectureConfig) -> dict[str, float]:
        """The figures known before training; a trial priced by a device model says which."""
        if self.device_model is not None:
            trial.set_user_attr(DEVICE_MODEL, self.device_model.model_id)
        return profiled_metrics(config, self.input_size, self.device_model)

    def _prepare(self, trial: optuna.Trial) -> dict[str, Any] | None:
        """The trial's spec, or None when it was settled without running."""
        if trial.number in self.index.heartbeat_retries:
            _start_clean(trial)
        try:
            with params_held(trial):  # one write of the draw's parameters, not one each
                config, recipe = self.space.sample(trial)
            config.check_input_size(self.input_size)
        except ConfigError as error:
            self._end(trial, Outcome(TrialState.FAIL, "failed",
                                     reason=f"unbuildable: {error}"))
            return None
        set_user_attrs(trial, {CONFIG_HASH: config.hash,
                               "seed": (self.space.study.seed or 0) + trial.number,
                               "architecture": config.to_dict(), "recipe": recipe.to_dict()})
        # Read after writing this trial's hash, and after every earlier-numbered trial
        # wrote its own: of two drivers drawing one config at once, the later-numbered
        # trial sees the earlier one and stands down.
        self.index.drew(trial, config.hash)
        self.index.refresh()
        self.index.await_draws_before(trial.number, DRAW_PATIENCE_S)
        twin = self.index.twin(trial.number, config.hash)
        if twin is not None:
            self._end(trial, duplicate_outcome(self.index.trial(twin)))
            self.repeats_in_a_row += 1
            if self.repeats_in_a_row == EXHAUSTED_AFTER:
                self.exhausted = (
                    f"the last {EXHAUSTED_AFTER} draws all repeated networks already "
                    f"tried: the space is all but exhausted, so the search ended with "
                    f"{self.index.counts().finished} of its {self.space.study.n_trials} "
                    f"trials")
            return None
        self.repeats_in_a_row = 0
        spec = trial_spec(self.space, trial, config.to_dict(), recipe.to_dict())
        try:
            figures = self._priced(trial, config)
        except UserError as error:  # a device model that does not cover the network
            self._end(trial, Outcome(TrialState.FAIL, "failed",
                                     reason=f"not priced: {error}"))
            return None
        reason = violated_constraint([c.model_dump() for c in self.priced_constraints],
                                     figures)
        if reason:
            self._end(trial, Outcome(
                TrialState.PRUNED, "infeasible", figures,
                constraints=constraint_values(self.priced_constraints, figures),
                reason=f"constraint: {reason} (known before training: the trial "
                       f"was not run)"))
            return None
        # Counted from the config in well under a millisecond: every spec carries them, so
        # no worker prices the network again (a surrogate's worker then needs no PyTorch).
        spec[PROFILED] = figures
        return spec

    # --------------------------------------------------------- completion
    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.last_results[trial_id] = result
        with self.lock:
            trial = self.pending.get(trial_id)
            if trial is not None:
                try:
                    self.curves.record(trial_id, trial, result)
                except optuna.exceptions.UpdateFinishedTrialError:
                    self._ended_elsewhere(trial_id, trial)

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None,
                          error: bool = False) -> None:
        with self.lock:
            trial = self.pending.pop(trial_id, None)
            if trial is None:
                self.last_results.pop(trial_id, None)
                return
            try:
                self._complete(trial_id, trial, result, error)
            except optuna.exceptions.UpdateFinishedTrialError:
                self._ended_elsewhere(trial_id, trial)

    def _ended_elsewhere(self, trial_id: str, trial: optuna.Trial) -> None:
        """A trial the storage already holds as finished (another driver found its heartbeat
        stale and failed it, and queued its retry): this attempt's results are dropped with
        a warning, not written over the record, and the search goes on."""
        self.pending.pop(trial_id, None)
        self.started.pop(trial_id, None)
        self.last_results.pop(trial_id, None)
        self.curves.forget(trial_id)
        self._beat(trial, False)
        if trial.study is self.study:
            self.index.lost(trial)
        print(f"warning: trial {trial.number} was ended in the storage while it ran here "
              f"(found stale: no heartbeat within study.grace_s); its results from here are "
              f"dropped (a stale trial is queued again once, where retries are on)",
              flush=True)

    def _complete(self, trial_id: str, trial: optuna.Trial, result: dict[str, Any] | None,
                  error: bool) -> None:
        result = result or self.last_results.get(trial_id) or {}
        self.last_results.pop(trial_id, None)
        # Tune does not pass the searcher the result its scheduler stopped on.
        curve = self.curves.finish(trial_id, trial, result)
        if trial.user_attrs.get(BASELINE):
            self.baseline_s += float(result.get(COMPUTE_S, 0.0))
        wall = time.perf_counter() - self.started.pop(trial_id)
        outcome = trial_outcome(
            result, error=error, stop_reason=self.stop_reasons.get(trial_id),
            constraints=self.space.constraints, metric_names=self.space.metric_names,
            wall_s=wall, device_warnings=self._device_warning(result.get("device")),
            baseline=bool(trial.user_attrs.get(BASELINE)))
        self._end(trial, outcome, curve)
        # After the end is told: an attempt dropped as ended elsewhere counts no work here.
        self.work.add(outcome.attrs[WORKER_TIME], wall)
        if outcome.retry:
            queue_retry(self.study, self.storage.get_trial(trial._trial_id))

    def _device_warning(self, device: str | None) -> list[str]:
        """A warning, and the study's record of its devices, the first time a trial runs on
        a device other than those before it: latencies of different devices share an axis."""
        if not device or device in self.devices:
            return []
        self.devices.add(device)
        if len(self.devices) < 2:
            return []
        names = sorted(self.devices)
        self.study.set_user_attr(DEVICES, names)
        return [f"this study's trials ran on different devices ({', '.join(names)}): their "
                f"latencies and training speeds are not comparable; give every trial one "
                f"kind of node (resources.gpus, or a cluster of alike nodes)"]

    def end_cut_trials(self) -> None:
        """End the trials still pending when the run ended (its time budget, or an
        interrupt) as cut short, and queue them again: Tune stops their workers without
        telling the searcher, which would leave them RUNNING in the storage until another
        driver's stale check failed them."""
        with self.lock:
            for trial_id in list(self.pending):
                self.on_trial_complete(trial_id)

    def close(self) -> None:
        self.heartbeat.close()

    # The Optuna storage is this searcher's whole state: rerunning `threshsearch run`
    # resumes from it. Tune's own searcher checkpoints and Tuner.restore are not used, so
    # there is nothing to save; the copy Tune pickles of its setup (tuner.pkl) leaves out
    # the live handles (heartbeat thread, lock, study and its database connections).
    def save_to_dir(self, checkpoint_dir: str, session_str: str = "default") -> None:
        return None

    def __getstate__(self) -> dict[str, Any]:
        live = {"lock", "heartbeat", "study", "storage", "baselines", "pending", "index"}
        return {key: value for key, value in self.__dict__.items() if key not in live}
