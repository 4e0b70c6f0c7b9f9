"""The driver's reads of a study's trials: Optuna's cache over an RDB storage, which reads
again only the unfinished trials that changed since it last read them, and hands out its
trials in order without sorting or filtering the whole study (``StudyReadCache``; the
driver's own writes are kept by ``studycache.CachedStudyStorage`` on top of it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Collection, Container, Iterable, Sequence
from dataclasses import dataclass, field

import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

# A trial's rows in brief: its state; its params' and intermediate values' counts (params
# are never rewritten, intermediate values once a step); its user and its system attributes'
# counts and the total length of their JSON (attributes are rewritten in place).
Signature = tuple[TrialState, int, int, int, int, int, int]


def _json_length(attrs: dict[str, object]) -> int:
    # Optuna stores an attribute as json.dumps(value), ASCII: as many bytes as characters.
    return sum(len(json.dumps(value)) for value in attrs.values())


def signature(trial: FrozenTrial) -> Signature:
    """The signature of a trial as read whole; equal to the light query's for the same rows
    (where a value's JSON does not round-trip exactly, unequal: the trial is read again)."""
    return (trial.state, len(trial.params), len(trial.intermediate_values),
            len(trial.user_attrs), _json_length(trial.user_attrs),
            len(trial.system_attrs), _json_length(trial.system_attrs))


States = frozenset[TrialState] | None  # a read's states; None: every state


@dataclass
class _InOrder:
    """A study's trials numbered below ``settled``, all finished and never to be read again,
    in order, for each set of states a reader asked for."""

    settled: int = 0
    lists: dict[States, list[FrozenTrial]] = field(default_factory=dict)


def _in_states(trials: dict[int, FrozenTrial], numbers: Iterable[int], states: States
               ) -> list[FrozenTrial]:
    """The trials numbered ``numbers`` that are in ``states`` (None: all), in that order."""
    return [trials[number] for number in numbers
            if states is None or trials[number].state in states]


class StudyReadCache(_CachedStorage):
    """Optuna's cache over an RDB storage (what ``optuna.create_study`` wraps one in), with
    two reads cut:

    - Every read of a study's trials first reads again, in Optuna's cache, every unfinished
      trial with all its attributes: with 64 trials running that was a quarter of the
      driver's event loop (py-spy, benchmarks/scale.py), once a draw or more, for trials
      most of which had not changed. Here one light query reads the signature of the trials
      Optuna would read again (the unfinished ones, and every one past the last finished
      trial read), and only the trials whose signature changed, and new ones, are read
      whole. A trial is read whole until the data read matches the signature the light
      query gave, so a change between the two reads is read next time. An attribute
      rewritten in place with a value of the same length is not seen until the trial
      changes otherwise or finishes (a finished trial is read whole once, as in Optuna);
      none of this project's readers of running trials depends on such a value (a running
      trial's network, its params, its state).
    - ``Study.ask``'s look for WAITING trials asks the database for those alone: nearly
      always none.

    And in memory: Optuna's cache filtered and sorted the whole study at each read (several
    a draw: the sampler's search space, the draw's own read), which grew with the study.
    Here the finished trials that will not be read again (``trials_in_order``) are kept in
    order per set of states, and a read goes through the rest only.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._signatures: dict[int, Signature] = {}  # unfinished trial id -> as read whole
        self._in_order: dict[int, _InOrder] = {}  # study id -> its settled trials

    def _stop_watching(self, trial_id: int) -> None:
        """``trial_id`` (finished, or its study deleted) no longer watched: no signature to
        compare with, and in a subclass nothing more of it kept. Called with the lock held.
        A trial only to be read whole next time has its signature dropped alone."""
        self._signatures.pop(trial_id, None)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if (states is not None and set(states) == {TrialState.WAITING}
                and not self._backend.get_all_trials(study_id, deepcopy=False, states=states)):
            return []
        # Every other read, and one of WAITING trials when some are waiting: the full read,
        # which enters them in the cache that a trial asked from them must be in.
        self._read_trials_from_remote_storage(study_id)
        trials = self.trials_in_order(study_id, states)
        return copy.deepcopy(trials) if deepcopy else trials

    def trials_in_order(self, study_id: int, states: Collection[TrialState] | None = None
                        ) -> list[FrozenTrial]:
        """The study's trials in ``states`` (None: all) as the cache holds them now, in
        order of number (no read of the storage; a new list, the cache's trials). A trial
        is settled once it and every trial numbered below it are in the cache, finished and
        no later than the last finished trial read (never read again, so never replaced);
        only the trials past the settled ones are gone through at each call."""
        key = None if states is None else frozenset(states)
        with self._lock:
            study = self._studies.get(study_id)
            if study is None:
                return []
            trials = study.trials
            order = self._in_order.setdefault(study_id, _InOrder())
            settled = order.settled
            while (settled in trials and trials[settled].state.is_finished()
                   and trials[settled]._trial_id <= study.last_finished_trial_id
                   and trials[settled]._trial_id not in study.unfinished_trial_ids):
                settled += 1
            for kept, held in order.lists.items():
                held.extend(_in_states(trials, range(order.settled, settled), kept))
            order.settled = settled
            if key not in order.lists:
                order.lists[key] = _in_states(trials, range(settled), key)
            past = []
            remaining, number = len(trials) - settled, settled
            while remaining > 0:  # numbers can skip where another driver's trial is unread
                if number in trials:
                    remaining -= 1
                    past.append(number)
                number += 1
            return order.lists[key] + _in_states(trials, past, key)

    def create_new_study(self, directions: Sequence[StudyDirection],
                         study_name: str | None = None) -> int:
        study_id = super().create_new_study(directions, study_name)
        with self._lock:  # SQLite may give a deleted study's id again
            self._in_order.pop(study_id, None)
        return study_id

    def delete_study(self, study_id: int) -> None:
        with self._lock:
            self._in_order.pop(study_id, None)
            # SQLite gives a deleted trial's id again: nothing of it may stay watched.
            for trial_id, (study, _) in self._trial_id_to_study_id_and_number.items():
                if study == study_id:
                    self._stop_watching(trial_id)
        super().delete_study(study_id)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._lock:
            first = study_id not in self._studies or not self._studies[study_id].trials
        if first:  # nothing to compare with: Optuna's read of every trial
            super()._read_trials_from_remote_storage(study_id)
            return
        with self._lock:
            study = self._studies[study_id]
            current = self._read_signatures(study_id, study)
            changed = {trial_id for trial_id, seen in current.items()
                       if self._signatures.get(trial_id) != seen}
            if not changed:
                return
            # Optuna's read of the given ids (those up to the bound) and of every trial past
            # the bound: trials created since the signatures were read come too.
            trials = self._backend._get_trials(study_id, states=None,
                                               included_trial_ids=changed,
                                               trial_id_greater_than=max(current))
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:
                trial_id = trial._trial_id
                seen = current.get(trial_id)
                if seen is not None and seen != signature(trial):
                    # Changed between the two reads: read whole next time. And a trial the
                    # light query did not see finished does not move the bound past it:
                    # a lower id committed since (PostgreSQL's ids commit out of order)
                    # would fall below the bound unread.
                    self._signatures.pop(trial_id, None)
                    study.unfinished_trial_ids.add(trial_id)
                elif seen is None:  # created since the light query: read again with it
                    study.unfinished_trial_ids.add(trial_id)
                elif trial.state.is_finished():
                    study.last_finished_trial_id = max(study.last_finished_trial_id,
                                                       trial_id)
                    study.unfinished_trial_ids.discard(trial_id)
                    self._stop_watching(trial_id)  # finished, by this driver or another
                else:
                    study.unfinished_trial_ids.add(trial_id)
                    self._signatures[trial_id] = seen

    def _read_signatures(self, study_id: int, study: _StudyInfo) -> dict[int, Signature]:
        """The signature of every trial that Optuna's cache would read again: the unfinished
        ones it holds and every one past the last finished trial it read."""
        model = rdb_models.TrialModel
        # PostgreSQL's octet_length reads a value's stored size without decompressing it.
        length = (sqlalchemy.func.octet_length if self._backend.engine.name == "postgresql"
                  else sqlalchemy.func.length)
        columns = [model.trial_id, model.state]
        for table, lengths in ((rdb_models.TrialParamModel, False),
                               (rdb_models.TrialIntermediateValueModel, False),
                               (rdb_models.TrialUserAttributeModel, True),
                               (rdb_models.TrialSystemAttributeModel, True)):
            columns.append(sqlalchemy.select(sqlalchemy.func.count())
                           .where(table.trial_id == model.trial_id).scalar_subquery())
            if lengths:
                columns.append(sqlalchemy.select(sqlalchemy.func.coalesce(
                    sqlalchemy.func.sum(length(table.value_json)), 0))
                    .where(table.trial_id == model.trial_id).scalar_subquery())
        wanted = model.trial_id > study.last_finished_trial_id
        if study.unfinished_trial_ids:
            wanted = sqlalchemy.or_(wanted, model.trial_id.in_(study.unfinished_trial_ids))
        query = sqlalchemy.select(*columns).where(model.study_id == study_id, wanted)
        with _create_scoped_session(self._backend.scoped_session) as session:
            return {row[0]: (row[1], *(int(value) for value in row[2:]))
                    for row in session.execute(query)}
