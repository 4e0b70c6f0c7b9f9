"""The driver's cache of a study's trials: Optuna's cache over an RDB storage, which reads
again only the unfinished trials that changed since it last read them, hands out its trials
in order without sorting or filtering the whole study, and writes a draw's parameters
together."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Collection, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
import sqlalchemy
from optuna.distributions import (
    BaseDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
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


class CachedStudyStorage(_CachedStorage):
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

    And one write cut: within ``holding_params``, the parameters a draw sets are written
    together when it ends (see there).

    And this driver's own running trials, those it created, are answered from the cache:
    Optuna reads a running trial whole from the storage at every ``get_trial`` (each ask
    reads the trial it just made, each tell the trial it ends, the searcher a trial's
    attributes), and this cache read one whole again at every change it wrote itself: a
    fifth of the driver's time at 64 workers (py-spy, benchmarks/scale.py). Each of this
    driver's writes to such a trial is applied to its cached copy (a new copy: a reader may
    hold the old one) and to its signature, so the light query finds nothing to read. What
    another driver writes to it shows at the next read of the study's trials, as the
    signature differs; a write of this driver's that fails (another driver failed the trial
    as stale) hands the trial back to the storage's reads, as does its end.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._signatures: dict[int, Signature] = {}  # unfinished trial id -> as read whole
        self._in_order: dict[int, _InOrder] = {}  # study id -> its settled trials
        # trial id -> the parameters set on it since its hold began, not yet written
        self._held: dict[int, dict[str, tuple[float, BaseDistribution]]] = {}
        self._owned: set[int] = set()  # running trials this driver created: kept as written

    # ----------------------------------------------------- this driver's trials
    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None
                         ) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        with self._lock:
            trial = self._cached(trial_id)
            if trial.state == TrialState.RUNNING:
                self._owned.add(trial_id)
                self._signatures[trial_id] = signature(trial)
                # Watched by the light query until it finishes, whatever finishes after it.
                self._studies[study_id].unfinished_trial_ids.add(trial_id)
        return trial_id

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            if trial_id in self._owned:
                return _copied(self._cached(trial_id))
        return super().get_trial(trial_id)

    def _cached(self, trial_id: int) -> FrozenTrial:
        study_id, number = self._trial_id_to_study_id_and_number[trial_id]
        return self._studies[study_id].trials[number]

    def _keep(self, trial_id: int, change: Callable[[FrozenTrial], None]) -> None:
        """``change`` (what was just written to ``trial_id``) made to the cached copy of one
        of this driver's running trials, as a new copy, and to its signature."""
        with self._lock:
            if trial_id not in self._owned:
                return
            study_id, number = self._trial_id_to_study_id_and_number[trial_id]
            trial = _copied(self._studies[study_id].trials[number])
            change(trial)
            self._studies[study_id].trials[number] = trial
            self._signatures[trial_id] = signature(trial)

    def _disown(self, trial_id: int) -> None:
        """``trial_id`` answered from the storage again: its next read is a whole one."""
        with self._lock:
            self._owned.discard(trial_id)
            self._signatures.pop(trial_id, None)

    @contextlib.contextmanager
    def _writing(self, trial_id: int) -> Iterator[None]:
        """A write to ``trial_id``: if it fails (another driver finished the trial), the
        trial's copy may be behind the storage, which answers for it from then on."""
        try:
            yield
        except BaseException:
            self._disown(trial_id)
            raise

    def noted_attrs(self, trial_id: int, user_attrs: dict[str, Any],
                    system_attrs: dict[str, Any]) -> None:
        """Attributes written to ``trial_id`` past this cache (``storage.set_user_attrs``'s
        batch), now kept in its copy."""
        def change(trial: FrozenTrial) -> None:
            trial._user_attrs.update(_stored(user_attrs))
            trial._system_attrs.update(_stored(system_attrs))
        self._keep(trial_id, change)

    def write_failed(self, trial_id: int) -> None:
        """A write past this cache to ``trial_id`` failed: the storage answers for it."""
        self._disown(trial_id)

    def set_trial_intermediate_value(self, trial_id: int, step: int,
                                     intermediate_value: float) -> None:
        with self._writing(trial_id):
            super().set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._keep(trial_id, lambda trial: trial.intermediate_values.__setitem__(
            step, float(intermediate_value)))

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._writing(trial_id):
            super().set_trial_user_attr(trial_id, key, value)
        self._keep(trial_id, lambda trial: trial._user_attrs.update(_stored({key: value})))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._writing(trial_id):
            super().set_trial_system_attr(trial_id, key, value)
        self._keep(trial_id, lambda trial: trial._system_attrs.update(_stored({key: value})))

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        with self._writing(trial_id):
            changed = super().set_trial_state_values(trial_id, state, values)
        if state.is_finished():  # read whole once, finished, as every trial is
            self._disown(trial_id)
        return changed

    def _keep_params(self, trial_id: int,
                     params: dict[str, tuple[float, BaseDistribution]]) -> None:
        def change(trial: FrozenTrial) -> None:
            for name, (value, distribution) in params.items():
                trial._params[name] = distribution.to_external_repr(value)
                trial._distributions[name] = distribution
        self._keep(trial_id, change)

    # ------------------------------------------------------------ parameters

    @contextlib.contextmanager
    def holding_params(self, trial_id: int) -> Iterator[None]:
        """The parameters set on ``trial_id`` within, written in one transaction as it ends
        (on an error too, as Optuna would have written those drawn; not on an interrupt):
        the trial's row read once, one INSERT of them all. Optuna writes each in a
        transaction of its own that reads the trial's row again: seven for a draw of
        benchmarks/scale.yaml's space. A distribution incompatible with one the study knows
        is refused when set, as Optuna does; a trial another driver finished meanwhile
        (failed as stale) refuses the write, with Optuna's error (the same check as
        Optuna's, which SQLite cannot lock against a write between the read and the
        insert). Another driver sees the draw's parameters all at once, not one by one.
        A hold within a hold of the same trial is the outer one."""
        if trial_id in self._held:
            yield
            return
        self._held[trial_id] = {}
        try:
            yield
        except Exception:
            self._write_held(trial_id)
            raise
        except BaseException:
            self._held.pop(trial_id, None)
            raise
        self._write_held(trial_id)

    def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                        distribution: BaseDistribution) -> None:
        held = self._held.get(trial_id)
        if held is None:
            with self._writing(trial_id):
                super().set_trial_param(trial_id, param_name, param_value_internal,
                                        distribution)
            self._keep_params(trial_id, {param_name: (param_value_internal, distribution)})
            return
        _, distributions = self._known_distributions(trial_id)
        known = distributions.get(param_name)
        if known is not None:
            check_distribution_compatibility(known, distribution)
        held[param_name] = (param_value_internal, distribution)

    def _known_distributions(self, trial_id: int) -> tuple[int, dict[str, BaseDistribution]]:
        """(study id, a copy of the distributions this cache knows in the trial's study)."""
        with self._lock:
            study_id, _ = self._trial_id_to_study_id_and_number[trial_id]
            return study_id, dict(self._studies[study_id].param_distribution)

    def _write_held(self, trial_id: int) -> None:
        held = self._held.pop(trial_id, {})
        if not held:
            return
        study_id, known = self._known_distributions(trial_id)
        with self._writing(trial_id), _create_scoped_session(
                self._backend.scoped_session) as session:
            row = rdb_models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            self._backend.check_trial_is_updatable(trial_id, row.state)
            for name, (_, distribution) in held.items():
                if name not in known:  # as Optuna: the study's first record of the name
                    previous = (session.query(rdb_models.TrialParamModel.distribution_json)
                                .join(rdb_models.TrialModel)
                                .filter(rdb_models.TrialModel.study_id == row.study_id)
                                .filter(rdb_models.TrialParamModel.param_name == name)
                                .first())
                    if previous is not None:
                        check_distribution_compatibility(json_to_distribution(previous[0]),
                                                         distribution)
            session.execute(sqlalchemy.insert(rdb_models.TrialParamModel), [
                {"trial_id": trial_id, "param_name": name, "param_value": value,
                 "distribution_json": distribution_to_json(distribution)}
                for name, (value, distribution) in held.items()])
        with self._lock:
            for name, (_, distribution) in held.items():
                self._studies[study_id].param_distribution.setdefault(name, distribution)
        self._keep_params(trial_id, held)

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
            ids = [trial_id for trial_id, (study, _) in
                   self._trial_id_to_study_id_and_number.items() if study == study_id]
        for trial_id in ids:
            self._signatures.pop(trial_id, None)
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
                    self._signatures.pop(trial_id, None)
                    self._owned.discard(trial_id)  # finished by another driver
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


def _copied(trial: FrozenTrial) -> FrozenTrial:
    """A copy of ``trial`` with dicts of its own (their values shared: an attribute is
    replaced when written again, never changed in place)."""
    copied = copy.copy(trial)
    copied._params, copied._distributions = dict(trial._params), dict(trial._distributions)
    copied._user_attrs, copied._system_attrs = dict(trial._user_attrs), dict(trial._system_attrs)
    copied.intermediate_values = dict(trial.intermediate_values)
    copied._values = None if trial._values is None else list(trial._values)
    return copied


def _stored(attrs: dict[str, Any]) -> dict[str, Any]:
    """``attrs`` as a read of the storage gives them back (Optuna stores an attribute as its
    JSON: a tuple comes back a list)."""
    return {key: json.loads(json.dumps(value)) for key, value in attrs.items()}


def params_held(trial: optuna.Trial) -> contextlib.AbstractContextManager[None]:
    """``CachedStudyStorage.holding_params`` for ``trial`` where its study has this cache;
    elsewhere nothing: its parameters are written one by one, as Optuna does."""
    storage = trial.storage
    if isinstance(storage, CachedStudyStorage):
        return storage.holding_params(trial._trial_id)
    return contextlib.nullcontext()
