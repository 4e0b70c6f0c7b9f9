"""The driver's cache of a study's trials: Optuna's cache over an RDB storage, which reads
again only the unfinished trials that changed since it last read them."""

from __future__ import annotations

from collections.abc import Container

import sqlalchemy
from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage, _StudyInfo
from optuna.storages._rdb import models as rdb_models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.trial import FrozenTrial, TrialState

# What the light query says of a trial's rows: its state, then for each attribute table the
# rows' count (params are never rewritten, intermediate values once a step) or their count
# and the total length of their JSON (attributes are rewritten in place).
Signature = tuple[object, ...]


class CachedStudyStorage(_CachedStorage):
    """Optuna's cache over an RDB storage (what ``optuna.create_study`` wraps one in), with
    two reads cut:

    - Every read of a study's trials first reads again, in Optuna's cache, every unfinished
      trial with all its attributes: with 64 trials running that was a quarter of the
      driver's event loop (py-spy, benchmarks/scale.py), once a draw or more, for trials
      most of which had not changed. Here one light query reads each unfinished trial's
      signature (state; its params' and intermediate values' counts; its attributes' counts
      and the total length of their JSON), and only the trials whose signature changed, and
      new ones, are read whole. An attribute rewritten in place with a value of the same
      length is not seen until the trial changes otherwise or finishes (a finished trial is
      read whole once, as in Optuna); none of this project's readers of running trials
      depends on such a value (a running trial's network, its params, its state).
    - ``Study.ask``'s look for WAITING trials asks the database for those alone: nearly
      always none.
    """

    def __init__(self, backend: RDBStorage) -> None:
        super().__init__(backend)
        self._signatures: dict[int, Signature] = {}  # trial id -> as last read whole

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        if (states is not None and set(states) == {TrialState.WAITING}
                and not self._backend.get_all_trials(study_id, deepcopy=False, states=states)):
            return []
        # Some are waiting: the full read, which enters them in the cache that a trial
        # asked from them must be in.
        return super().get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def _read_trials_from_remote_storage(self, study_id: int) -> None:
        with self._lock:
            study = self._studies.setdefault(study_id, _StudyInfo())
            current = self._read_signatures(study_id, study)
            changed = {trial_id for trial_id, signature in current.items()
                       if self._signatures.get(trial_id) != signature}
            if not changed:
                return
            # Optuna's read of the given ids (those up to the bound) and of every trial past
            # the bound: trials created since the signatures were read come too.
            trials = self._backend._get_trials(study_id, states=None,
                                               included_trial_ids=changed,
                                               trial_id_greater_than=max(current))
            # A trial that changed between the two reads keeps its older signature, and one
            # created between them has none: both are read whole again next time.
            self._add_trials_to_cache(study_id, trials)
            for trial in trials:
                if trial.state.is_finished():
                    study.last_finished_trial_id = max(study.last_finished_trial_id,
                                                       trial._trial_id)
                    study.unfinished_trial_ids.discard(trial._trial_id)
                    self._signatures.pop(trial._trial_id, None)
                else:
                    study.unfinished_trial_ids.add(trial._trial_id)
                    if trial._trial_id in current:
                        self._signatures[trial._trial_id] = current[trial._trial_id]

    def _read_signatures(self, study_id: int, study: _StudyInfo) -> dict[int, Signature]:
        """The signature of every trial that Optuna's cache would read again: the unfinished
        ones it holds and every one past the last finished trial it read."""
        model = rdb_models.TrialModel
        columns = [model.trial_id, model.state]
        for table, lengths in ((rdb_models.TrialParamModel, False),
                               (rdb_models.TrialIntermediateValueModel, False),
                               (rdb_models.TrialUserAttributeModel, True),
                               (rdb_models.TrialSystemAttributeModel, True)):
            rows = sqlalchemy.select(sqlalchemy.func.count()).where(
                table.trial_id == model.trial_id)
            columns.append(rows.scalar_subquery())
            if lengths:
                columns.append(sqlalchemy.select(sqlalchemy.func.coalesce(
                    sqlalchemy.func.sum(sqlalchemy.func.length(table.value_json)), 0))
                    .where(table.trial_id == model.trial_id).scalar_subquery())
        wanted = model.trial_id > study.last_finished_trial_id
        if study.unfinished_trial_ids:
            wanted = sqlalchemy.or_(wanted, model.trial_id.in_(study.unfinished_trial_ids))
        query = sqlalchemy.select(*columns).where(model.study_id == study_id, wanted)
        with _create_scoped_session(self._backend.scoped_session) as session:
            return {row[0]: tuple(row[1:]) for row in session.execute(query)}
