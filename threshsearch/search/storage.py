"""Opening studies: the Optuna storage (with heartbeats, so trials of a dead driver are found
and retried), and the trial states and statuses every reader shares."""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import optuna
import sqlalchemy
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects import postgresql, sqlite

from threshsearch.errors import UserError

# Heartbeats, their retry callback and metric names are stable in practice but still
# flagged experimental by Optuna; the warnings say nothing a user can act on.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
# Heartbeats are recorded by the driver for trials run through ask and tell, not by
# Study.optimize, which is what this warning assumes.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SCHEMA_ATTEMPTS = 4
STATUS = "status"  # user attr: complete, pruned, timed_out, failed, infeasible, duplicate
TIMED_OUT = "timed_out"  # a trial the run's end cut short: FAIL in Optuna, queued again
DUPLICATE = "duplicate"  # a trial that drew a network already tried: not trained, no budget
BASELINES_SUFFIX = "-baselines"  # a study's companion of baselines is named <study>-baselines
CONFIRM_SUFFIX = "-confirm"  # its companion of confirmation records (threshsearch confirm)
COMPANION_SUFFIXES = (BASELINES_SUFFIX, CONFIRM_SUFFIX)
REASON = "reason"  # user attr: why a trial failed, was infeasible or was pruned
TIMED_OUT_OF = "timed_out_of"  # system attr: the trial (cut by the time budget) it re-runs
STOPPED_AT = "stopped_at_epoch"  # user attr: the rung (epoch) an early stop came at
CONFIG_HASH = "config_hash"  # user attr: the hash of the network a trial drew


class StudyStorage(RDBStorage):
    """Optuna's RDB storage, whose stale trials also include the RUNNING ones that never got
    a heartbeat once ``grace_period`` has passed since they started. Optuna skips a trial
    with no heartbeat; but creating a trial and recording its first beat are two commits,
    and a driver killed between them leaves a trial that would run forever in the storage:
    a rerun waited for it without end instead of running it again."""

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        grace_s = self.grace_period or 2 * self.heartbeat_interval
        # Optuna 5 stores datetime_start as UTC and reads it back as this machine's local
        # time: comparable with datetime.now() here, whatever the asking driver's zone.
        started_before = datetime.now() - timedelta(seconds=grace_s)
        with self.scoped_session() as session:
            unbeaten = (session.query(rdb_models.TrialModel)
                        .filter(rdb_models.TrialModel.study_id == study_id)
                        .filter(rdb_models.TrialModel.state == TrialState.RUNNING)
                        .filter(~rdb_models.TrialModel.heartbeats.any())
                        .all())
            stale += [trial.trial_id for trial in unbeaten
                      if trial.datetime_start is not None
                      and trial.datetime_start < started_before]
        return stale


def open_storage(url: str, heartbeat_s: int | None = None, grace_s: int | None = None,
                 retry_stale: bool = True) -> RDBStorage:
    """An RDB storage for ``url``; SQLite files get their folder created and wait on locks
    instead of failing when two processes write at once. With ``heartbeat_s``, a running
    trial whose heartbeat is ``grace_s`` old (or that has had none for ``grace_s`` since it
    started) is failed by ``fail_stale_trials`` and, with ``retry_stale``, queued again as a
    new trial."""
    engine_kwargs = {}
    file = sqlite_file(url)
    on_sqlite = file is not None
    if on_sqlite:
        query = url.partition("?")[2]
        url = f"sqlite:///{file}" + (f"?{query}" if query else "")
        file.parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = sqlite_engine_kwargs()
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            storage = StudyStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=(RetryHeartbeatStaleTrialCallback(max_retry=1)
                                                if heartbeat_s and retry_stale else None),
            )
            break
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Two drivers creating the schema of an empty database at once: the loser
            # finds it half made. Once the winner is done, opening it again works.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1 + attempt)
        except Exception as error:  # SQLAlchemy raises many kinds for a bad URL or server
            summary = " ".join(str(error).split())[:300]
            raise UserError(f"storage: cannot open {url!r} ({type(error).__name__}: "
                            f"{summary})") from None
    if on_sqlite:
        use_sqlite_settings(storage.engine)
    return storage


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, ``~`` expanded as a shell would; None for
    another kind of storage."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url.removeprefix("sqlite:///").partition("?")[0]).expanduser()


def rdb_backend(storage: optuna.storages.BaseStorage) -> RDBStorage | None:
    """The RDB storage under ``storage`` (itself, or the one Optuna's cache wraps); None for
    another kind, whose writes go through Optuna's calls one by one."""
    backend = getattr(storage, "_backend", storage)
    return backend if isinstance(backend, RDBStorage) else None


@runtime_checkable
class NotesWrites(Protocol):
    """A storage that keeps copies of trials (the driver's cache of its own running trials),
    told what ``set_user_attrs`` wrote past it, or that the write failed."""

    def noted_attrs(self, trial_id: int, user_attrs: dict[str, Any],
                    system_attrs: dict[str, Any]) -> None: ...

    def write_failed(self, trial_id: int) -> None: ...


def set_user_attrs(trial: optuna.Trial, attrs: dict[str, Any],
                   constraints: dict[str, float] | None = None) -> None:
    """``trial.set_user_attr`` for each of ``attrs`` and ``trial.set_constraint`` for each of
    ``constraints``, in one transaction on an RDB storage, and on SQLite and PostgreSQL in
    three statements at most: the trial's row read once (a finished trial refuses them, as
    Optuna does), one upsert of every attribute, one of every constraint. Optuna commits each
    attribute on its own, reading the trial's row for each, and reads the whole trial before
    each constraint: the attributes a trial ends with were ~25 transactions on the driver's
    event loop (a third of that loop's time at 64 workers: py-spy, benchmarks/scale.py), and
    on PostgreSQL two round trips an attribute were most of a trial's statements
    (docs/benchmarks.md). A constraint written again replaces its value on an RDB storage
    (Optuna's, used on other storages, keeps the first and warns); the searcher writes each
    trial's once. Uses Optuna's RDB internals (the scoped session, its models, its JSON
    encoding and its constraints' key), so a change there fails tests/search/
    test_storage.py, not a study."""
    values = {key: float(value) for key, value in (constraints or {}).items()}
    for key, value in values.items():  # checked before any write, as Optuna refuses NaN
        if math.isnan(value):
            raise ValueError(f"constraint {key!r}: NaN is not allowed")
    backend = rdb_backend(trial.storage)
    if backend is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        for key, value in values.items():
            trial.set_constraint(key, value)
        return
    constraints = {f"{_CONSTRAINTS_KEY}:{key}": value for key, value in values.items()}
    if not attrs and not constraints:
        return
    noting = trial.storage if isinstance(trial.storage, NotesWrites) else None
    try:
        _write_attrs(backend, trial._trial_id, attrs, constraints)
    except BaseException:
        if noting is not None:
            noting.write_failed(trial._trial_id)
        raise
    if noting is not None:
        noting.noted_attrs(trial._trial_id, attrs, constraints)
    trial._cached_frozen_trial.user_attrs.update(attrs)
    trial._cached_frozen_trial.system_attrs.update(constraints)


def _write_attrs(backend: RDBStorage, trial_id: int, attrs: dict[str, Any],
                 constraints: dict[str, float]) -> None:
    tables = ((rdb_models.TrialUserAttributeModel, attrs),
              (rdb_models.TrialSystemAttributeModel, constraints))
    with _create_scoped_session(backend.scoped_session) as session:
        if _upsert_dialect(backend.engine.name) is not None:
            # Locked until the commit: another driver failing the trial as stale meanwhile
            # waits, rather than leave these attributes on a failed trial.
            row = rdb_models.TrialModel.find_or_raise_by_id(trial_id, session,
                                                            for_update=True)
            backend.check_trial_is_updatable(trial_id, row.state)
        for model, rows in tables:
            upsert_attrs(backend, session, model, trial_id, rows)


def upsert_attrs(backend: RDBStorage, session: sqlalchemy.orm.Session,
                 model: type[rdb_models.TrialUserAttributeModel
                             | rdb_models.TrialSystemAttributeModel],
                 trial_id: int, rows: dict[str, Any]) -> None:
    """``rows`` (key: value) written over ``model``'s attributes of ``trial_id`` within
    ``session``: one upsert on SQLite and PostgreSQL, whose caller has read and checked the
    trial's row; elsewhere Optuna's own write of each, which reads and checks it each time."""
    if not rows:
        return
    insert = _upsert_dialect(backend.engine.name)
    if insert is None:
        for key, value in rows.items():
            backend._set_trial_attr_without_commit(session, model, trial_id, key, value)
        return
    statement = insert(model).values([
        {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
        for key, value in rows.items()])
    session.execute(statement.on_conflict_do_update(
        index_elements=[model.trial_id, model.key],
        set_={"value_json": statement.excluded.value_json}))


def _upsert_dialect(engine: str) -> Callable[..., Any] | None:
    """The INSERT with ON CONFLICT of ``engine``'s dialect, or None where the batching is not
    written (MySQL, whose upsert is ON DUPLICATE KEY; an SQLite before 3.24, which has none):
    there Optuna's own per-attribute write is used."""
    if engine == "postgresql":
        return postgresql.insert
    if engine == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0):
        return sqlite.insert
    return None


def sqlite_engine_kwargs() -> dict[str, Any]:
    """The engine arguments of the driver's SQLite storage: a writer waits up to 60 s for
    another's lock."""
    return {"connect_args": {"timeout": 60}}


def use_sqlite_settings(engine: sqlalchemy.engine.Engine) -> None:
    """Give every connection of ``engine`` (an SQLite storage's) the driver's settings, and
    reconnect the ones already open."""
    sqlalchemy.event.listen(engine, "connect", _write_ahead_log)
    engine.dispose()


def _write_ahead_log(connection: Any, _: Any) -> None:
    # WAL lets the dashboard read while the driver writes, and synchronous=NORMAL makes a
    # commit cheap (durable across a process crash; a power cut may lose the last commits).
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def load_study(storage: str | RDBStorage, name: str | None = None, flag: str = "--study",
               hint: str = "", storage_flag: str = "--storage") -> optuna.Study:
    """An existing study; with no name, the storage's only study. ``flag`` and
    ``storage_flag`` name what chose the study and the storage in an error, ``hint`` ends it
    (what to run first). A SQLite file that does not exist is an error, not an empty
    database made."""
    if isinstance(storage, str):
        file = sqlite_file(storage)
        if file is not None and not file.exists():
            raise UserError(f"{storage_flag}: {storage}: no such database file ({file}): "
                            f"nothing has run with this storage yet{hint}")
        storage = open_storage(storage)
    names = optuna.get_all_study_names(storage)
    if name is None:
        # A study's companions (baselines, confirmation) are not studies of their own.
        names = [n for n in names if not any(n.endswith(suffix)
                                             and n.removesuffix(suffix) in names
                                             for suffix in COMPANION_SUFFIXES)]
        if not names:
            raise UserError(f"storage: no study in it yet{hint}")
        if len(names) != 1:
            raise UserError(f"{flag}: the storage holds {len(names)} studies "
                            f"({', '.join(names)}); name one")
        name = names[0]
    if name not in names:
        raise UserError(f"{flag}: no study {name!r} in the storage; expected one of "
                        f"{', '.join(names) or '(none)'}{hint}")
    return optuna.load_study(study_name=name, storage=storage)


def retried_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of failed trials that a later trial re-runs: a heartbeat retry, or the retry
    queued for a trial the time budget cut."""
    return {number for trial in trials
            for number in RetryHeartbeatStaleTrialCallback.retry_history(trial)} | {
        trial.system_attrs[TIMED_OUT_OF] for trial in trials
        if TIMED_OUT_OF in trial.system_attrs}


def queue_retry(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the parameters of ``trial``, which the time budget cut, as a WAITING trial that
    ``retried_numbers`` counts as its re-run. Not in Optuna's retry history: that would spend
    the one heartbeat retry the new trial gets should its own driver die. It copies no user
    attribute: the retry records its own."""
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        system_attrs={TIMED_OUT_OF: trial.number}))


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto-optimal COMPLETE trials, one per network: a duplicate of a front member
    (the same config, its result reused) is not a second result."""
    # A duplicate has its original's values, so the original (an earlier trial) is on the
    # front with it.
    return [trial for trial in sorted(study.best_trials, key=lambda t: t.number)
            if trial.state == TrialState.COMPLETE
            and trial.user_attrs.get("duplicate_of") is None]


def trial_status(trial: FrozenTrial) -> str:
    """complete, pruned, timed_out, failed, infeasible, duplicate, running or waiting."""
    if trial.state == TrialState.RUNNING:
        return "running"
    if trial.state == TrialState.WAITING:
        return "waiting"
    return trial.user_attrs.get(STATUS) or trial.state.name.lower().replace("fail", "failed")


def record_heartbeats(storage: optuna.storages.BaseStorage, trial_ids: list[int]) -> None:
    """``storage.record_heartbeat`` for each of ``trial_ids``; on an RDB storage whose trials
    have all had their first beat (``Heartbeat.add``), one UPDATE. Optuna's takes a
    transaction of two to four statements a trial: with 64 trials running, a beat every 5 s
    was a tenth of the driver's CPU (py-spy, benchmarks/scale.py). Where the UPDATE finds
    fewer rows than trials (a first beat missing), every trial is beaten Optuna's way."""
    backend = rdb_backend(storage)
    if backend is not None:
        model = rdb_models.TrialHeartbeatModel
        with _create_scoped_session(backend.scoped_session) as session:
            found = session.execute(
                sqlalchemy.update(model).where(model.trial_id.in_(trial_ids))
                .values(heartbeat=sqlalchemy.func.now())).rowcount
        if found == len(set(trial_ids)):
            return
    for trial_id in trial_ids:
        storage.record_heartbeat(trial_id)


class Heartbeat:
    """Marks a driver's running trials alive in the storage, from a thread of its own (and a
    lock of its own: a driver busy for long must not let its own trials go stale), so that a
    rerun after the driver's death runs them again, and does not while it lives."""

    def __init__(self, storage: optuna.storages.BaseStorage, every_s: float) -> None:
        self.storage, self.ids = storage, set()
        self.beaten: dict[int, float] = {}  # trial id -> when this driver last marked it
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, args=(every_s,), daemon=True)
        self.thread.start()

    def _beat(self, every_s: float) -> None:
        while not self.stop.wait(every_s):
            self.beat_now()

    def beat_now(self, older_than_s: float = 0.0) -> None:
        """Mark this driver's running trials alive now, those not marked in the last
        ``older_than_s``. Called before the driver looks for stale trials: a beat thread
        starved by a busy driver (64 workers' results on one event loop) must not let the
        driver fail its own live trials; a healthy thread leaves nothing to do."""
        now = time.monotonic()
        with self.lock:
            ids = [trial_id for trial_id in self.ids
                   if now - self.beaten.get(trial_id, -math.inf) >= older_than_s]
        if not ids:
            return
        try:
            record_heartbeats(self.storage, ids)
        except Exception as error:  # a storage hiccup must not end the beat
            logging.getLogger(__name__).warning("heartbeat failed: %s", error)
            return
        with self.lock:
            self.beaten.update((trial_id, now) for trial_id in ids if trial_id in self.ids)

    def add(self, trial_id: int) -> None:
        """Beat for ``trial_id`` from now on, starting with its first beat now."""
        self.storage.record_heartbeat(trial_id)
        with self.lock:
            self.ids.add(trial_id)

    def remove(self, trial_id: int) -> None:
        with self.lock:
            self.ids.discard(trial_id)
            self.beaten.pop(trial_id, None)

    def close(self) -> None:
        self.stop.set()
