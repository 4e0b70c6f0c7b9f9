"""The searcher beside other drivers and a busy event loop: its own live trials never go
stale under its own check, and a trial another driver ended is dropped, not fatal."""

from optuna.trial import TrialState

from tests.search.helpers import age_heartbeats, epoch_result, make_searcher, make_space, stored
from threshsearch.search.storage import retried_numbers


def test_a_driver_never_fails_its_own_live_trial_as_stale(tmp_path):
    space = make_space(tmp_path, growth=4)
    busy = make_searcher(space)
    try:
        busy.suggest("ray-1")
        # The beat thread starved (a driver busy with 64 workers' results): no beat since.
        busy.heartbeat.stop.set()
        busy.heartbeat.thread.join(timeout=30)
        age_heartbeats(space.storage_url, space.study.grace_s + 1)
        busy.next_stale_check = 0.0
        busy.suggest("ray-2")  # looks for stale trials first
        assert stored(busy, 0).state == TrialState.RUNNING
        assert not retried_numbers(busy.study.get_trials())
    finally:
        busy.close()


def test_results_of_a_trial_another_driver_ended_are_dropped_not_fatal(searcher, capsys):
    searcher.curves.every_s = 0.0  # each result written: the write that finds it ended
    searcher.suggest("ray-1")
    searcher.on_trial_result("ray-1", epoch_result(1, 0.3))
    trial = searcher.pending["ray-1"]
    # Another driver found its heartbeat stale and failed it meanwhile.
    searcher.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    searcher.on_trial_result("ray-1", epoch_result(2, 0.4))  # no UpdateFinishedTrialError
    assert "ray-1" not in searcher.pending
    assert "trial 0 was ended in the storage while it ran here" in capsys.readouterr().out
    searcher.on_trial_complete("ray-1", epoch_result(3, 0.5))  # already dropped: ignored
    assert stored(searcher, 0).state == TrialState.FAIL
    assert searcher.index.counts().running == 0
    searcher.suggest("ray-2")
    assert searcher.index.counts().running == 1


def test_a_trial_ended_elsewhere_before_its_completion_is_dropped(searcher, capsys):
    searcher.suggest("ray-1")
    trial = searcher.pending["ray-1"]
    searcher.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    searcher.on_trial_complete("ray-1", epoch_result(1, 0.5))
    assert "trial 0 was ended in the storage" in capsys.readouterr().out
    assert stored(searcher, 0).state == TrialState.FAIL and not searcher.pending


def test_a_trial_failed_elsewhere_while_drawn_is_left_and_another_drawn(searcher, monkeypatch):
    prepare, drawn = searcher._prepare, []

    def failed_meanwhile(trial):
        if not drawn:  # another driver's stale check fails it before its first beat here
            searcher.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        drawn.append(trial.number)
        return prepare(trial)
    monkeypatch.setattr(searcher, "_prepare", failed_meanwhile)
    assert isinstance(searcher.suggest("ray-1"), dict)
    assert drawn[0] == 0 and len(drawn) >= 2
    assert stored(searcher, 0).state == TrialState.FAIL
    assert searcher.index.counts().running == 1


def test_a_trial_failed_elsewhere_between_its_record_and_its_tell_is_dropped(searcher,
                                                                            monkeypatch, capsys):
    from threshsearch.search import searcher as searcher_module

    searcher.suggest("ray-1")
    trial = searcher.pending["ray-1"]
    write = searcher_module.set_user_attrs

    def then_failed(written, attrs, constraints=None):
        write(written, attrs, constraints)
        if written is trial and "status" in attrs:
            searcher.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    monkeypatch.setattr(searcher_module, "set_user_attrs", then_failed)
    searcher.on_trial_complete("ray-1", epoch_result(3, 0.5, trial_done=True))  # a COMPLETE
    assert "trial 0 was ended in the storage" in capsys.readouterr().out
    assert stored(searcher, 0).state == TrialState.FAIL and not searcher.pending
