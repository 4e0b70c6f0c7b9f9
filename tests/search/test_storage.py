"""Opening storages and writing to them: a trial's attributes written together."""

import datetime

import optuna
import pytest
import sqlalchemy

from threshsearch.search.storage import (
    open_storage,
    record_heartbeats,
    set_user_attrs,
)

ATTRS = {"config_hash": "abc", "seed": 3, "architecture": {"stages": [{"depth": 2}]},
         "learning_curve": [{"epoch": 1, "val_accuracy": 0.5}], "reason": None}


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


def test_constraints_written_with_the_attributes_read_back_as_optunas(storage_url):
    storage = open_storage(storage_url)
    study = optuna.create_study(storage=storage, study_name="s")
    together, one_by_one = study.ask(), study.ask()
    commits = []
    sqlalchemy.event.listen(storage.engine, "commit", lambda connection: commits.append(1))
    set_user_attrs(together, {"seed": 1}, constraints={"latency_ms": 0.5, "params_m": -2})
    assert len(commits) == 1
    one_by_one.set_user_attr("seed", 1)
    one_by_one.set_constraint("latency_ms", 0.5)
    one_by_one.set_constraint("params_m", -2)
    for trial in (together, one_by_one):
        study.tell(trial, 1.0)
    reread = optuna.load_study(study_name="s", storage=storage_url).trials
    assert reread[0].system_attrs == reread[1].system_attrs
    assert reread[0].user_attrs == reread[1].user_attrs == {"seed": 1}


def test_a_nan_constraint_is_refused_as_optuna_does(tmp_path):
    trial = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'study.db'}")).ask()
    with pytest.raises(ValueError, match="latency_ms"):
        set_user_attrs(trial, {}, constraints={"latency_ms": float("nan")})


def test_an_sqlite_storage_writes_ahead_and_syncs_only_at_checkpoints(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    with storage.engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 1  # NORMAL


def test_a_sqlite_path_under_the_home_folder_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    optuna.create_study(study_name="s", storage=open_storage("sqlite:///~/studies/s.db"))
    assert (tmp_path / "home" / "studies" / "s.db").exists()
    assert not (tmp_path / "~").exists()


def test_a_sqlite_url_keeps_its_query_and_reads_its_file_without_it(tmp_path):
    from threshsearch.search.storage import load_study

    url = f"sqlite:///{tmp_path / 's.db'}?timeout=30"
    optuna.create_study(study_name="s", storage=open_storage(url))
    assert (tmp_path / "s.db").exists()
    assert load_study(url).study_name == "s"
