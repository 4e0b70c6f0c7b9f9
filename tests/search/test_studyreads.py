"""The driver's reads of a study: it reads again only the unfinished trials that changed, and
what it answers, for any states, equals a fresh read after any sequence of changes by
another driver, with no pass over its settled trials."""

import random

import optuna
import pytest
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import TrialState

from tests.helpers import whole_reads
from threshsearch.search.storage import open_storage
from threshsearch.search.studycache import CachedStudyStorage
from threshsearch.search.studyreads import StudyReadCache


def _running_study(url, running=3):
    storage = StudyReadCache(open_storage(url))
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


def test_unchanged_running_trials_are_not_read_whole_again(storage_url, monkeypatch):
    storage, study = _running_study(storage_url)
    ids = [t._trial_id for t in study._get_trials(deepcopy=False)]
    reads = whole_reads(storage, monkeypatch)
    study._get_trials(deepcopy=False)
    assert reads == []  # Optuna's cache reads the three again
    optuna.Trial(_elsewhere(storage_url), ids[1]).set_user_attr("curve", list(range(51)))
    study._get_trials(deepcopy=False)
    assert reads == [[ids[1]]]
    study._get_trials(deepcopy=False)
    assert reads == [[ids[1]]]  # read whole once per change


def _elsewhere(url):
    """The study "s" as another driver opens it."""
    return optuna.load_study(study_name="s", storage=open_storage(url))


def _view(trials):
    return [(t.number, t.state, t.params, t.user_attrs, t.system_attrs,
             t.intermediate_values, t.values) for t in trials]


@pytest.mark.parametrize("cache", [StudyReadCache, CachedStudyStorage])
def test_reads_equal_a_fresh_read_after_another_drivers_changes(storage_url, cache):
    storage = cache(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s",
                                directions=["minimize", "maximize"])
    other = optuna.load_study(study_name="s", storage=open_storage(storage_url))
    rng = random.Random(0)
    running: list[optuna.Trial] = []
    for step in range(120):
        action = rng.choice(["ask", "own", "enqueue", "attr", "curve", "system", "report",
                             "param", "tell", "fail", "prune"])
        if action == "ask" or not running:
            running.append(other.ask())
        elif action == "own":  # the cached driver's own trial, which it writes to as well
            mine = study.ask()
            mine.set_user_attr("config_hash", f"h{step}")
            running.append(mine)
        elif action == "enqueue":
            other.enqueue_trial({"x": rng.randint(0, 9)})
        else:
            trial = rng.choice(running)
            if action == "attr":
                trial.set_user_attr(f"key{step}", "v" * rng.randint(0, 9))
            elif action == "curve":
                curve = trial.user_attrs.get("curve", [])
                trial.set_user_attr("curve", [*curve, step])
            elif action == "system":
                notes = trial.storage.get_trial(trial._trial_id).system_attrs.get("notes", [])
                trial.storage.set_trial_system_attr(trial._trial_id, "notes", [*notes, step])
            elif action == "report":
                trial.storage.set_trial_intermediate_value(trial._trial_id, step, float(step))
            elif action == "param":
                trial.suggest_int(f"p{rng.randint(0, 2)}", 0, 9)
            else:
                running.remove(trial)
                if action == "tell":
                    other.tell(trial, [step, -step])
                else:
                    other.tell(trial, state=TrialState[action.upper().replace(
                        "PRUNE", "PRUNED")])
        if step % 3 == 0:  # read now and then, as a driver does between its draws
            fresh = _CachedStorage(open_storage(storage_url))
            study_id = study._study_id
            for states in _STATES[step % len(_STATES)]:
                assert _view(storage.get_all_trials(study_id, states=states)) == _view(
                    fresh.get_all_trials(study_id, states=states))
                assert _view(storage.trials_in_order(study_id, states)) == _view(
                    fresh.get_all_trials(study_id, states=states))
    assert storage._in_order[study._study_id].settled > 0


# Reads of several states, in turns: a set first asked for late starts from the settled.
_STATES = [(None,), (None, (TrialState.COMPLETE,)),
           ((TrialState.COMPLETE, TrialState.PRUNED), (TrialState.RUNNING,)),
           ((TrialState.FAIL, TrialState.COMPLETE, TrialState.WAITING), None)]


def test_settled_trials_are_not_gone_through_again(storage_url, monkeypatch):
    storage = StudyReadCache(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    for value in range(6):
        study.tell(study.ask(), value)
    running = study.ask()
    states = (TrialState.COMPLETE, TrialState.RUNNING)
    storage.get_all_trials(study._study_id, deepcopy=False, states=states)
    assert storage._in_order[study._study_id].settled == 6
    settled = study._get_trials(deepcopy=False)[:6]  # the cache's own
    for trial in settled:  # a pass over the settled trials would read their state
        monkeypatch.setattr(trial, "state", _Unreadable())
    study.tell(running, 6)
    trials = storage.get_all_trials(study._study_id, deepcopy=False, states=states)
    assert all(got is held for got, held in zip(trials[:6], settled, strict=True))
    assert [t.number for t in trials[6:]] == [running.number]
    assert storage._in_order[study._study_id].settled == 7


class _Unreadable:
    def __eq__(self, other):
        raise AssertionError("a settled trial's state was read again")

    __hash__ = None


def test_an_attribute_rewritten_at_the_same_length_is_read_when_the_trial_finishes(
        storage_url):
    _, study = _running_study(storage_url, running=1)
    mine = study._get_trials(deepcopy=False)[0]._trial_id
    trial = optuna.Trial(_elsewhere(storage_url), mine)  # another driver's writes to it
    trial.set_user_attr("status", "ab")
    study._get_trials(deepcopy=False)
    trial.set_user_attr("status", "cd")  # the documented blind spot
    assert study._get_trials(deepcopy=False)[0].user_attrs["status"] == "ab"
    study.tell(optuna.Trial(study, mine), 1.0)
    assert study._get_trials(deepcopy=False)[0].user_attrs["status"] == "cd"


def test_a_change_between_the_light_and_the_whole_read_is_read_next_time(storage_url,
                                                                          monkeypatch):
    storage, study = _running_study(storage_url, running=1)
    trial = optuna.Trial(_elsewhere(storage_url), study._get_trials(deepcopy=False)[0]._trial_id)
    trial.set_user_attr("status", "aa")
    study._get_trials(deepcopy=False)
    trial.set_user_attr("status", "bbb")
    read = storage._backend._get_trials

    def written_meanwhile(*args, **kwargs):
        monkeypatch.setattr(storage._backend, "_get_trials", read)
        trial.set_user_attr("status", "cccc")  # after the light query saw "bbb"
        return read(*args, **kwargs)
    monkeypatch.setattr(storage._backend, "_get_trials", written_meanwhile)
    assert study._get_trials(deepcopy=False)[0].user_attrs["status"] == "cccc"
    trial.set_user_attr("status", "ddd")  # the length the light query saw before
    assert study._get_trials(deepcopy=False)[0].user_attrs["status"] == "ddd"


def test_two_studies_in_one_storage_are_cached_apart(storage_url):
    storage, study = _running_study(storage_url, running=2)
    companion = optuna.create_study(storage=storage, study_name="s-baselines")
    try:
        other = optuna.load_study(study_name="s-baselines",
                                  storage=open_storage(storage_url))
        mine = companion.ask()
        for reader in (study, companion):
            reader._get_trials(deepcopy=False)
        other.tell(mine, 1.0)
        theirs = other.ask()
        optuna.Trial(study, study._get_trials(deepcopy=False)[0]._trial_id).set_user_attr(
            "curve", [])
        fresh = _CachedStorage(open_storage(storage_url))
        for reader in (study, companion):
            assert _view(storage.get_all_trials(reader._study_id)) == _view(
                fresh.get_all_trials(reader._study_id))
        assert [t.state for t in companion.trials] == [TrialState.COMPLETE,
                                                      TrialState.RUNNING]
        assert theirs.number == 1
    finally:
        optuna.delete_study(study_name="s-baselines", storage=storage_url)


def test_a_trial_another_driver_made_and_not_read_here_is_skipped(storage_url):
    storage = StudyReadCache(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    study.tell(study.ask(), 0.0)
    study._get_trials(deepcopy=False)  # trial 0 read finished
    other = optuna.load_study(study_name="s", storage=open_storage(storage_url))
    other.ask()  # trial 1, not read here
    study.ask()  # trial 2, in the cache as it is made
    study_id = study._study_id
    assert [t.number for t in storage.trials_in_order(study_id)] == [0, 2]
    assert [t.number for t in storage.trials_in_order(study_id, (TrialState.RUNNING,))] == [2]
    assert [t.number for t in storage.get_all_trials(study_id)] == [0, 1, 2]  # read now
