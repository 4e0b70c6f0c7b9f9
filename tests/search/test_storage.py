"""Opening storages and writing to them: a trial's attributes written together."""

import contextlib
import datetime

import optuna
import pytest
import sqlalchemy

from threshsearch.search.storage import (
    CachedStudyStorage,
    open_storage,
    record_heartbeats,
    set_user_attrs,
)

ATTRS = {"config_hash": "abc", "seed": 3, "architecture": {"stages": [{"depth": 2}]},
         "learning_curve": [{"epoch": 1, "val_accuracy": 0.5}], "reason": None}


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A storage for studies named "s": a file, or the session's PostgreSQL database, which
    other tests share (so the study is deleted after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    with contextlib.suppress(KeyError):  # a test that failed before creating it
        optuna.delete_study(study_name="s", storage=url)


def test_attributes_written_together_read_back_as_written_one_by_one(storage_url):
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    together, one_by_one = study.ask(), study.ask()
    commits, statements = [], []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    sqlalchemy.event.listen(storage.engine, "before_cursor_execute",
                            lambda *args: statements.append(1))
    set_user_attrs(together, ATTRS)
    together_commits, together_statements = len(commits), len(statements)
    for key, value in ATTRS.items():
        one_by_one.set_user_attr(key, value)
    assert together.user_attrs == one_by_one.user_attrs == ATTRS
    reread = optuna.load_study(study_name=study.study_name, storage=storage_url).trials
    assert reread[0].user_attrs == reread[1].user_attrs == ATTRS
    assert together_commits == 1 and len(commits) - together_commits == len(ATTRS)
    # The trial's row read once, one upsert of them all; Optuna reads and writes each.
    assert together_statements == 2
    assert len(statements) - together_statements >= 2 * len(ATTRS)


def test_attributes_written_again_replace_the_old_values(storage_url):
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    set_user_attrs(trial, ATTRS)
    set_user_attrs(trial, {"seed": 4, "reason": "stopped"})
    reread = optuna.load_study(study_name=study.study_name, storage=storage_url).trials[0]
    assert reread.user_attrs == {**ATTRS, "seed": 4, "reason": "stopped"}


def test_a_finished_trial_refuses_them_as_optuna_does(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    study.tell(trial, 1.0)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # what the searcher catches
        set_user_attrs(trial, {"late": 1})


def test_an_in_memory_study_gets_them_too():
    trial = optuna.create_study().ask()
    set_user_attrs(trial, ATTRS)
    assert trial.user_attrs == ATTRS


def _running_study(url, running=3):
    storage = CachedStudyStorage(open_storage(url))
    study = optuna.create_study(storage=storage, study_name="s")
    trials = [study.ask() for _ in range(running)]
    for trial in trials:
        trial.set_user_attr("curve", list(range(50)))
    return storage, study


def test_asking_reads_no_running_trial_again(storage_url, monkeypatch):
    storage, study = _running_study(storage_url)
    study._get_trials(deepcopy=False)  # the cache holds the running trials
    reads = []
    read = storage._read_trials_from_remote_storage
    monkeypatch.setattr(storage, "_read_trials_from_remote_storage",
                        lambda study_id: reads.append(study_id) or read(study_id))
    study.ask()
    assert reads == []  # Optuna's cache reads the three running trials again
    assert len(study._get_trials(deepcopy=False)) == 4
    assert reads == [study._study_id]


def test_a_trial_queued_by_another_driver_is_asked_first(storage_url):
    _, study = _running_study(storage_url)
    study._get_trials(deepcopy=False)
    other = optuna.load_study(study_name="s", storage=CachedStudyStorage(
        open_storage(storage_url)))
    other.enqueue_trial({"x": 3})
    trial = study.ask()
    assert trial.suggest_int("x", 0, 9) == 3
    assert [t.number for t in study.trials] == [0, 1, 2, 3]  # no new trial besides it


def _heartbeats(storage):
    model = optuna.storages._rdb.models.TrialHeartbeatModel
    with storage.scoped_session() as session:
        return {row.trial_id: row.heartbeat for row in session.query(model).all()}


def test_running_trials_beat_together_in_one_commit(storage_url):
    storage = open_storage(storage_url, heartbeat_s=5, grace_s=10)
    study = optuna.create_study(storage=storage, study_name="s")
    ids = [study.ask()._trial_id for _ in range(3)]
    for trial_id in ids:
        storage.record_heartbeat(trial_id)
    model = optuna.storages._rdb.models.TrialHeartbeatModel
    with storage.scoped_session() as session:  # their beats, long ago: stale
        session.query(model).update({model.heartbeat: datetime.datetime(2000, 1, 1)})
        session.commit()
    assert sorted(storage._get_stale_trial_ids(study._study_id)) == ids
    commits = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    record_heartbeats(storage, ids)
    assert len(commits) == 1
    assert storage._get_stale_trial_ids(study._study_id) == []


def test_a_trial_with_no_first_beat_gets_one(storage_url):
    storage = open_storage(storage_url, heartbeat_s=5, grace_s=10)
    study = optuna.create_study(storage=storage, study_name="s")
    first, second = study.ask()._trial_id, study.ask()._trial_id
    storage.record_heartbeat(first)
    record_heartbeats(storage, [first, second])
    assert set(_heartbeats(storage)) >= {first, second}
