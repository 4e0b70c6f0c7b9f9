"""The driver's own writes: a draw's parameters are written together, as Optuna would have
written them one by one, and this driver's running trials are answered as it wrote them,
equal to a fresh read, with no read of the storage but their state's."""

import random

import optuna
import pytest
import sqlalchemy
from optuna.storages._cached_storage import _CachedStorage
from optuna.trial import TrialState

from tests.helpers import whole_reads
from threshsearch.search.storage import open_storage
from threshsearch.search.studycache import CachedStudyStorage, params_held


def _draw(trial):
    return (trial.suggest_int("depth", 1, 4), trial.suggest_float("lr", 1e-4, 1e-1, log=True),
            trial.suggest_categorical("growth", [8, 12, 16]))


def test_held_params_are_one_transaction_and_read_back_as_written_one_by_one(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    _draw(study.ask())  # the study knows the distributions, as after its first draw
    held, one_by_one = study.ask(), study.ask()
    commits, statements = [], []
    engine = storage._backend.engine
    sqlalchemy.event.listen(engine, "commit", lambda connection: commits.append(1))
    sqlalchemy.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(1))
    with params_held(held):
        drawn = _draw(held)
        assert commits == [] and statements == []
    assert len(commits) == 1
    assert len(statements) == 2  # the trial's row, one INSERT of the three
    _draw(one_by_one)
    assert len(commits) == 1 + 3
    fresh = optuna.load_study(study_name="s", storage=open_storage(storage_url)).trials
    assert tuple(fresh[1].params[name] for name in ("depth", "lr", "growth")) == drawn
    assert fresh[1].distributions == fresh[2].distributions
    assert held.params == fresh[1].params


@pytest.mark.parametrize("draws", [True, False])
def test_system_attrs_set_in_a_hold_are_written_with_its_params_each_keys_last(storage_url,
                                                                             draws):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    commits = []
    sqlalchemy.event.listen(storage._backend.engine, "commit",
                            lambda connection: commits.append(1))
    with params_held(trial):  # as the constant liar's proposal, written at every ask
        storage.set_trial_system_attr(trial._trial_id, "proposal", [1])
        if draws:
            _draw(trial)
        storage.set_trial_system_attr(trial._trial_id, "proposal", [2])
        storage.set_trial_system_attr(trial._trial_id, "other", "x")
        assert commits == []
    assert len(commits) == 1
    fresh = optuna.load_study(study_name="s", storage=open_storage(storage_url)).trials[0]
    assert fresh.system_attrs == {"proposal": [2], "other": "x"}
    assert fresh.params == trial.params and len(fresh.params) == 3 * draws
    assert storage.get_trial(trial._trial_id).system_attrs == fresh.system_attrs


def test_a_held_param_incompatible_with_the_studys_is_refused_when_set(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    _draw(study.ask())
    trial = study.ask()
    with pytest.raises(ValueError), params_held(trial):
        trial.suggest_categorical("depth", ["a", "b"])
    # And one the study has only in the database (another driver's) at the write.
    fresh = CachedStudyStorage(open_storage(storage_url))
    again = optuna.load_study(study_name="s", storage=fresh).ask()
    assert not fresh._studies[again.study._study_id].param_distribution  # read at the write
    with pytest.raises(ValueError), params_held(again):
        again.suggest_categorical("growth", ["x"])
    trials = optuna.load_study(study_name="s", storage=storage_url).trials
    assert trials[1].params == trials[2].params == {}


def test_a_trial_finished_by_another_driver_during_the_draw_refuses_its_params(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    other = optuna.load_study(study_name="s", storage=open_storage(storage_url))
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), params_held(trial):
        _draw(trial)
        other.tell(trial.number, state=TrialState.FAIL)  # failed as stale meanwhile
    assert optuna.load_study(study_name="s", storage=storage_url).trials[0].params == {}


def test_params_are_written_one_by_one_where_the_study_has_no_driver_cache():
    study = optuna.create_study()
    trial = study.ask()
    with params_held(trial):
        _draw(trial)
        assert len(study.trials[0].params) == 3


def test_params_drawn_before_an_error_are_written_as_optuna_would_have(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(RuntimeError), params_held(trial):
        depth = trial.suggest_int("depth", 1, 4)
        storage.set_trial_system_attr(trial._trial_id, "proposal", [depth])
        raise RuntimeError("an unbuildable draw")
    stored = optuna.load_study(study_name="s", storage=storage_url).trials[0]
    assert stored.params == {"depth": depth} and stored.system_attrs == {"proposal": [depth]}


def test_a_hold_within_a_hold_of_the_same_trial_is_the_outer_one(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with params_held(trial):
        trial.suggest_int("depth", 1, 4)
        with params_held(trial):
            trial.suggest_int("growth", 8, 16)
        assert study.trials[0].params == {}  # nothing written before the outer hold ends
    assert set(study.trials[0].params) == {"depth", "growth"}


def test_params_held_through_an_interrupt_are_not_written(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    with pytest.raises(KeyboardInterrupt), params_held(trial):
        trial.suggest_int("depth", 1, 4)
        storage.set_trial_system_attr(trial._trial_id, "proposal", [1])
        raise KeyboardInterrupt
    stored = optuna.load_study(study_name="s", storage=storage_url).trials[0]
    assert stored.params == {} and stored.system_attrs == {}
    assert trial._trial_id not in storage._held
    assert trial._trial_id not in storage._held_attrs


def _whole(t):
    return (t.number, t.state, t.params, t.user_attrs, t.system_attrs, t.intermediate_values,
            t.values, t.distributions, t.datetime_start)


def test_this_drivers_running_trials_are_answered_as_written_without_a_read(storage_url,
                                                                            monkeypatch):
    from threshsearch.search.storage import set_user_attrs

    storage = CachedStudyStorage(open_storage(storage_url))
    reads = whole_reads(storage, monkeypatch)
    study = optuna.create_study(storage=storage, study_name="s",
                                directions=["minimize", "maximize"],
                                sampler=optuna.samplers.RandomSampler(0))
    statements = []
    sqlalchemy.event.listen(storage._backend.engine, "before_cursor_execute",
                            lambda *args: statements.append(args[2]))
    rng = random.Random(0)
    mine: list[optuna.Trial] = []
    for step in range(150):
        action = rng.choice(["ask", "draw", "attr", "batch", "system", "report", "tell",
                             "prune"])
        if action == "ask" or not mine:
            mine.append(study.ask())
            continue
        trial = rng.choice(mine)
        if action == "draw":
            with params_held(trial):
                _draw(trial)
            trial.suggest_int(f"p{rng.randint(0, 2)}", 0, 9)
        elif action == "attr":
            trial.set_user_attr(f"key{step % 7}", ("v" * rng.randint(0, 9), step))
        elif action == "batch":
            set_user_attrs(trial, {"curve": list(range(step)), "status": "running"},
                           constraints={"c0": float(step)})
        elif action == "system":
            storage.set_trial_system_attr(trial._trial_id, "notes", [step])
        elif action == "report":
            storage.set_trial_intermediate_value(trial._trial_id, step, float(step))
        else:
            mine.remove(trial)
            if action == "tell":
                study.tell(trial, [step, -step])
            else:
                study.tell(trial, state=TrialState.PRUNED)
        fresh = _CachedStorage(open_storage(storage_url))
        reads.clear()
        trials = study._get_trials(deepcopy=False)
        read = {trial_id for ids in reads for trial_id in ids}
        assert not read & {trial._trial_id for trial in mine}, "its own writes were read back"
        for trial in trials:
            statements.clear()
            answered = storage.get_trial(trial._trial_id)
            if trial.state == TrialState.RUNNING:  # its state alone is read
                assert len(statements) == 1 and "trial_params" not in statements[0]
                assert "trial_user_attributes" not in statements[0]
            assert _whole(answered) == _whole(fresh.get_trial(trial._trial_id))


def test_a_trial_another_driver_failed_is_answered_by_the_storage_after_a_refused_write(
        storage_url):
    from threshsearch.search.storage import set_user_attrs

    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    first, second = study.ask(), study.ask()
    other = open_storage(storage_url)  # another driver, finding both stale
    for trial in (first, second):
        other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    assert storage.get_trial(first._trial_id).state == TrialState.FAIL  # at once
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        first.set_user_attr("curve", [1, 2])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        set_user_attrs(second, {"curve": [1, 2]})
    for trial in (first, second):
        assert storage.get_trial(trial._trial_id).state == TrialState.FAIL
        assert "curve" not in storage.get_trial(trial._trial_id).user_attrs


def test_another_drivers_change_to_a_trial_of_this_driver_shows_at_the_next_read(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    open_storage(storage_url).set_trial_user_attr(trial._trial_id, "note", "theirs")
    study._get_trials(deepcopy=False)
    assert storage.get_trial(trial._trial_id).user_attrs == {"note": "theirs"}
    trial.set_user_attr("mine", 1)
    assert storage.get_trial(trial._trial_id).user_attrs == {"note": "theirs", "mine": 1}


def test_a_trial_another_driver_failed_is_told_as_finished(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    open_storage(storage_url).set_trial_state_values(trial._trial_id, TrialState.FAIL)
    told = []
    after_trial = study.sampler.after_trial
    study.sampler.after_trial = lambda *args: told.append(args) or after_trial(*args)
    assert study.tell(trial, 1.0, skip_if_finished=True).state == TrialState.FAIL
    assert told == []  # the sampler is not told of a trial already ended


def test_a_deleted_studys_trials_are_not_kept_for_a_trial_that_takes_their_id(storage_url):
    storage = CachedStudyStorage(open_storage(storage_url))
    deleted = optuna.create_study(storage=storage, study_name="deleted")
    trial_id = deleted.ask()._trial_id
    optuna.delete_study(study_name="deleted", storage=storage)
    assert trial_id not in storage._owned and trial_id not in storage._signatures
    other = optuna.create_study(storage=open_storage(storage_url), study_name="other")
    theirs = other.ask()
    assert len(optuna.load_study(study_name="other", storage=storage).trials) == 1  # read here
    theirs.set_user_attr("k", "x")
    assert storage.get_trial(theirs._trial_id).user_attrs == {"k": "x"}
