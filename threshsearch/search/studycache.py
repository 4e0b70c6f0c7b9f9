"""The driver's cache of a study: the reads of ``studyreads.StudyReadCache``, this driver's own
running trials answered as it wrote them, and a draw's parameters written together."""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable, Iterator, Sequence
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
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.storage import upsert_attrs
from threshsearch.search.studyreads import StudyReadCache, signature


class CachedStudyStorage(StudyReadCache):
    """The study's reads as ``StudyReadCache`` makes them, and:

    One write cut: within ``holding_params``, the parameters and system attributes a draw
    sets are written together when it ends (see there).

    And this driver's own running trials, those it created, are answered from the cache:
    Optuna reads a running trial whole from the storage at every ``get_trial`` (each ask
    reads the trial it just made, each tell the trial it ends, the searcher a trial's
    attributes), and this cache read one whole again at every change it wrote itself: a
    fifth of the driver's time at 64 workers (py-spy, benchmarks/scale.py). Here
    ``get_trial`` reads such a trial's state alone, and answers from the cache while it is
    running (where another driver failed it, from the storage). Each of this
    driver's writes to such a trial is applied to its cached copy (a new copy: a reader may
    hold the old one) and to its signature, so the light query finds nothing to read. What
    another driver writes to it shows at the next read of the study's trials, as the
    signature differs; a write of this driver's that fails (another driver failed the trial
    as stale) hands the trial back to the storage's reads, as does its end.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        # trial id -> the parameters set on it since its hold began, not yet written
        self._held: dict[int, dict[str, tuple[float, BaseDistribution]]] = {}
        self._held_attrs: dict[int, dict[str, Any]] = {}  # trial id -> system attrs held
        self._owned: set[int] = set()  # running trials this driver created: kept as written

    def _stop_watching(self, trial_id: int) -> None:
        super()._stop_watching(trial_id)
        self._owned.discard(trial_id)

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
            owned = trial_id in self._owned
        # Its state alone is read (one indexed row): another driver may have failed it as
        # stale, and a reader deciding whether to end it must see that at once.
        if owned and self._stored_state(trial_id) == TrialState.RUNNING:
            with self._lock:
                if trial_id in self._owned:
                    return _copied(self._cached(trial_id))
        elif owned:
            self._disown(trial_id)
        return super().get_trial(trial_id)

    def _stored_state(self, trial_id: int) -> TrialState | None:
        model = rdb_models.TrialModel
        with _create_scoped_session(self._backend.scoped_session) as session:
            return session.execute(sqlalchemy.select(model.state)
                                   .where(model.trial_id == trial_id)).scalar_one_or_none()

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
            self._stop_watching(trial_id)

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
        held = self._held_attrs.get(trial_id)
        if held is not None:
            held[key] = value  # the last one, as Optuna's write over a key leaves it
            return
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
        self._keep(trial_id, lambda trial: _set_params(trial, params))

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
        A hold within a hold of the same trial is the outer one.

        The system attributes set within go into the same transaction, each key's last
        value: TPE and GP under the constant liar write their proposal at every ask (for
        other drivers to see while the trial draws), and a draw that repeats a network asks
        several times (5.3 asks a trial, 13 % of the driver's time under cProfile, in a
        600-trial run of ``benchmarks.scale --without-ray``). No one here reads them during
        the draw: the sampler reads the study's trials once as the draw begins
        (``samplers.view.read_once``; GP, unlike TPE, would count the trial it draws for).
        Other drivers' constant liar sees the proposal at the draw's end, with the
        parameters, instead of after its first ask: later, but never a favourite that
        ``FreshDraws`` then set aside."""
        if trial_id in self._held:
            yield
            return
        self._held[trial_id], self._held_attrs[trial_id] = {}, {}
        try:
            yield
        except Exception:
            self._write_held(trial_id)
            raise
        except BaseException:
            self._held.pop(trial_id, None)
            self._held_attrs.pop(trial_id, None)
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
        held, attrs = self._held.pop(trial_id, {}), self._held_attrs.pop(trial_id, {})
        if not held and not attrs:
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
            if held:
                session.execute(sqlalchemy.insert(rdb_models.TrialParamModel), [
                    {"trial_id": trial_id, "param_name": name, "param_value": value,
                     "distribution_json": distribution_to_json(distribution)}
                    for name, (value, distribution) in held.items()])
            upsert_attrs(self._backend, session, rdb_models.TrialSystemAttributeModel,
                         trial_id, attrs)
        with self._lock:
            for name, (_, distribution) in held.items():
                self._studies[study_id].param_distribution.setdefault(name, distribution)

        def change(trial: FrozenTrial) -> None:
            _set_params(trial, held)
            trial._system_attrs.update(_stored(attrs))
        self._keep(trial_id, change)


def _set_params(trial: FrozenTrial, params: dict[str, tuple[float, BaseDistribution]]
                ) -> None:
    """``params`` (name: internal value and distribution) set on the cached copy ``trial``."""
    for name, (value, distribution) in params.items():
        trial._params[name] = distribution.to_external_repr(value)
        trial._distributions[name] = distribution


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
