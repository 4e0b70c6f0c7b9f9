"""The confirmation's records: one trial per (network, seed) in the companion study
``<study>-confirm`` of the same storage, valued by its test accuracy.

A record's user attributes say which network it is (``network``: "trial 11" or a baseline's
preset name, with ``trial`` or ``baseline``), its config hash, architecture, recipe, dataset,
seed and protocol key, and once trained its test and validation accuracy, cost metrics,
latency record, device, versions and epochs. A (network, seed) pair is done when a COMPLETE
record with the same network, config hash, protocol key and seed exists; FAILED records are
tried again; a RUNNING one keeps a heartbeat while its driver lives, and once it is
``grace_s`` silent ``fail_stale_trials`` marks it FAIL, so a rerun trains it again.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.objectives import METRICS
from threshsearch.search.reports import BASELINE, COMPUTE_S, FAILED, LATENCY, NODE, WARNINGS
from threshsearch.search.storage import CONFIRM_SUFFIX, REASON, STATUS

NETWORK = "network"  # record user attr: "trial 11" or a baseline's preset name
TRIAL = "trial"  # record user attr: the main study's trial number of a searched network
PROTOCOL_KEY = "protocol"  # record user attr: Protocol.key of the confirmation
LATEST = "latest_protocol"  # confirm study user attr: the last confirmation's protocol
METRIC = "test_accuracy"  # a record's value


@dataclass(frozen=True)
class Pair:
    """One network trained with one seed: everything a worker needs but the data."""

    network: str
    trial: int | None  # the main study's trial number, for a searched network
    baseline: str | None  # the preset name, for a baseline
    config_hash: str
    architecture: dict[str, Any]
    recipe: dict[str, Any]
    seed: int

    @property
    def identity(self) -> tuple[str, str, int]:
        return self.network, self.config_hash, self.seed


def network_label(trial: int | None = None, baseline: str | None = None) -> str:
    return baseline if baseline else f"trial {trial}"


def confirm_name(study_name: str) -> str:
    return f"{study_name}{CONFIRM_SUFFIX}"


def open_confirm_study(study: optuna.Study, storage: BaseStorage) -> optuna.Study:
    """The companion study of ``study`` on ``storage`` (which may keep heartbeats), created
    on first use."""
    confirm = optuna.create_study(study_name=confirm_name(study.study_name), storage=storage,
                                  direction="maximize", load_if_exists=True)
    if confirm.metric_names is None:
        confirm.set_metric_names([METRIC])
    return confirm


def load_confirm_study(study: optuna.Study) -> optuna.Study | None:
    """The companion study of ``study``, if a confirmation ever ran."""
    name = confirm_name(study.study_name)
    if name not in optuna.get_all_study_names(study._storage):
        return None
    return optuna.load_study(study_name=name, storage=study._storage)


def _identity(record: FrozenTrial) -> tuple[str, str, int]:
    attrs = record.user_attrs
    return attrs.get(NETWORK), attrs.get("config_hash"), attrs.get("seed")


def completed_records(confirm: optuna.Study, protocol_key: str) -> list[FrozenTrial]:
    """The COMPLETE records of one protocol."""
    return [record for record in confirm.get_trials(deepcopy=False)
            if record.state == TrialState.COMPLETE
            and record.user_attrs.get(PROTOCOL_KEY) == protocol_key]


def still_to_train(confirm: optuna.Study, pairs: Iterable[Pair], protocol_key: str
                   ) -> tuple[list[Pair], list[Pair]]:
    """(the pairs to train now, those another live driver is training): a pair with a
    COMPLETE record is done; one with a RUNNING record (whose heartbeat is fresh, once
    stale ones were failed) is left to its driver; failed ones are trained again."""
    done = {_identity(r) for r in completed_records(confirm, protocol_key)}
    running = {_identity(r) for r in confirm.get_trials(deepcopy=False)
               if r.state == TrialState.RUNNING
               and r.user_attrs.get(PROTOCOL_KEY) == protocol_key}
    todo = [pair for pair in pairs if pair.identity not in done]
    return ([pair for pair in todo if pair.identity not in running],
            [pair for pair in todo if pair.identity in running])


def start_record(confirm: optuna.Study, pair: Pair, protocol_key: str, dataset: str
                 ) -> optuna.Trial:
    """A RUNNING record for ``pair``, with its first heartbeat (when the storage keeps
    them), so that it is failed if this driver dies."""
    record = confirm.ask()
    storage = confirm._storage
    if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
        storage.record_heartbeat(record._trial_id)
    attrs = {NETWORK: pair.network, "config_hash": pair.config_hash,
             "architecture": pair.architecture, "recipe": pair.recipe, "seed": pair.seed,
             "dataset": dataset, PROTOCOL_KEY: protocol_key}
    if pair.trial is not None:
        attrs[TRIAL] = pair.trial
    if pair.baseline:
        attrs[BASELINE] = pair.baseline
    for key, value in attrs.items():
        record.set_user_attr(key, value)
    return record


def finish_record(record: optuna.Trial, result: dict[str, Any], wall_s: float) -> bool | None:
    """Store a pair's result (a worker's figures, or ``FAILED`` and its reason) in its
    record and end it; True when it completed, None when another driver had ended the record
    meanwhile (found its heartbeat stale): the result is not written over its record."""
    keep = {key: result[key] for key in (*METRICS, METRIC, "test_top5", "epochs", "device",
                                         "versions", LATENCY, WARNINGS, NODE, COMPUTE_S)
            if key in result}
    try:
        for key, value in {**keep, "wall_s": wall_s}.items():
            record.set_user_attr(key, value)
        if FAILED in result:
            record.set_user_attr(STATUS, "failed")
            record.set_user_attr(REASON, result[FAILED])
            # Failed either way, should another driver have failed it first.
            _tell(record, None, TrialState.FAIL)
            return False
        record.set_user_attr(STATUS, "complete")
        return True if _tell(record, [float(result[METRIC])], TrialState.COMPLETE) else None
    except optuna.exceptions.UpdateFinishedTrialError:
        return None


def _tell(record: optuna.Trial, values: list[float] | None, state: TrialState) -> bool:
    """Tell ``record`` its end; False when another driver ended it otherwise first (after
    the attribute writes: before them, they raise)."""
    told = record.study.tell(record, values, state=state, skip_if_finished=True)
    return told.state == state


def interrupt_record(record: optuna.Trial) -> None:
    """End the record of a pair the run left unfinished as failed, so that a rerun trains
    the pair again at once; one another driver ended meanwhile is left as it is."""
    try:
        record.set_user_attr(REASON, "interrupted")
        _tell(record, None, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass


def mark_latest(confirm: optuna.Study, name: str, key: str, seeds: list[int]) -> None:
    """Make this protocol the confirmation the report and verdict show: once it has a
    result, so that one interrupted before any does not hide the one before it."""
    confirm.set_user_attr(LATEST, {"name": name, "key": key,
                                   "description": f"{name}: {key}", "seeds": seeds})


def latest_protocol(confirm: optuna.Study) -> dict[str, Any] | None:
    """The last confirmation's protocol (name, key, description, seeds), as stored."""
    return confirm.user_attrs.get(LATEST)
