"""The confirmation's records: what a rerun still has to train."""

import optuna
from optuna.storages import fail_stale_trials
from optuna.trial import TrialState

from tests.confirm.helpers import KEY, add_record, pair
from tests.search.helpers import age_heartbeats
from threshsearch.confirm.records import (
    completed_records,
    finish_record,
    interrupt_record,
    load_confirm_study,
    open_confirm_study,
    start_record,
    still_to_train,
)
from threshsearch.search.storage import load_study, open_storage


def test_a_half_done_confirmation_trains_only_the_missing_pairs(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_s=1, grace_s=3, retry_stale=False)
    study = optuna.create_study(study_name="s", storage=storage)
    confirm = open_confirm_study(study, storage)
    pairs = [pair(network, seed) for seed in (10, 11) for network in ("trial 1", "base")]
    add_record(confirm, pairs[0], 0.9)  # done
    add_record(confirm, pairs[1], None)  # failed: tried again
    add_record(confirm, pairs[2], 0.8, key="recipe quick")  # another protocol's: not done
    start_record(confirm, pairs[3], KEY, "synthetic")  # running, heartbeat fresh
    todo, elsewhere = still_to_train(confirm, pairs, KEY)
    assert todo == pairs[1:3]
    assert elsewhere == [pairs[3]]
    # its driver died: once its heartbeat is grace_s old it is failed and trained again
    age_heartbeats(url, 4)  # grace_s and one more
    fail_stale_trials(confirm)
    todo, elsewhere = still_to_train(confirm, pairs, KEY)
    assert todo == pairs[1:]
    assert elsewhere == []
    assert [r.user_attrs["network"] for r in completed_records(confirm, KEY)] == ["trial 1"]


def test_a_config_changed_under_a_name_is_not_done(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    confirm = open_confirm_study(study, storage)
    add_record(confirm, pair("base", 10, config_hash="old"), 0.9)
    todo, _ = still_to_train(confirm, [pair("base", 10, config_hash="new")], KEY)
    assert len(todo) == 1


def test_the_companion_is_not_a_study_to_choose(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="s", storage=storage)
    assert load_confirm_study(study) is None
    open_confirm_study(study, storage)
    assert load_study(url).study_name == "s"
    assert load_confirm_study(study).study_name == "s-confirm"


def test_a_record_another_driver_ended_meanwhile_keeps_its_end(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_s=1, grace_s=3, retry_stale=False)
    study = optuna.create_study(study_name="s", storage=storage)
    confirm = open_confirm_study(study, storage)
    records = [start_record(confirm, pair("trial 1", seed), KEY, "synthetic")
               for seed in (10, 11)]
    age_heartbeats(url, 4)
    fail_stale_trials(confirm)  # another driver found them stale
    assert finish_record(records[0], {"test_accuracy": 0.9}, 1.0) is None
    interrupt_record(records[1])
    for record in confirm.get_trials():
        assert record.state == TrialState.FAIL and "test_accuracy" not in record.user_attrs
        assert record.user_attrs.get("reason") != "interrupted"


def test_a_record_failed_between_its_writes_and_its_end_keeps_that_end(tmp_path, monkeypatch):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    study = optuna.create_study(study_name="s", storage=storage)
    confirm = open_confirm_study(study, storage)
    records = [start_record(confirm, pair("trial 1", seed), KEY, "synthetic")
               for seed in (10, 11)]
    tell = optuna.Study.tell

    def failed_just_before(self, trial, *args, **kwargs):
        # Another driver's stale check, between this driver's attribute writes and its tell.
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return tell(self, trial, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "tell", failed_just_before)
    assert finish_record(records[0], {"test_accuracy": 0.9}, 1.0) is None
    interrupt_record(records[1])
    assert [r.state for r in confirm.get_trials()] == [TrialState.FAIL, TrialState.FAIL]
