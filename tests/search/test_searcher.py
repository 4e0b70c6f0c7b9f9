"""The study's searcher without Ray running: what it stores for each way a trial ends, and
what a resumed study's scheduler starts from."""

import time
from datetime import datetime, timedelta

import yaml
from optuna.trial import TrialState

from tests.search.helpers import (
    age_heartbeats,
    epoch_result,
    make_searcher,
    make_space,
    stored,
    write_space,
)
from threshsearch.config import ArchitectureConfig
from threshsearch.search import storage as storage_module
from threshsearch.search.progress import Progress
from threshsearch.search.runner import open_study
from threshsearch.search.searcher import EXHAUSTED_AFTER
from threshsearch.search.space import load_space
from threshsearch.search.storage import retried_numbers


def test_a_trial_cut_by_the_time_budget_is_retried_not_settled(searcher):
    spec = searcher.suggest("ray-1")
    searcher.on_trial_result("ray-1", epoch_result(1, 0.3))
    searcher.on_trial_complete("ray-1", epoch_result(1, 0.3))
    cut = stored(searcher, 0)
    assert cut.user_attrs["status"] == "timed_out"
    # FAIL: samplers leave it out, rather than learn from it as a bad (PRUNED) network.
    assert cut.state == TrialState.FAIL
    assert cut.user_attrs["reason"].startswith("cut short when the run ended")
    retry = stored(searcher, 1)
    assert retry.state == TrialState.WAITING and retry.params == cut.params
    assert retried_numbers(searcher.study.get_trials()) == {0}
    again = searcher.suggest("ray-2")
    assert again is not None and again["architecture"] == spec["architecture"], \
        "the next trial trains the cut network; it is no duplicate of it"


def test_trials_tune_leaves_running_at_the_runs_end_are_cut_and_queued_again(searcher):
    # Tune stops the workers at the time budget (or an interrupt) without telling the
    # searcher: what it left pending is ended here.
    specs = [searcher.suggest(f"ray-{index}") for index in range(2)]
    searcher.on_trial_result("ray-0", epoch_result(1, 0.3))
    searcher.end_cut_trials()
    assert not searcher.pending
    for spec in specs:
        cut = stored(searcher, spec["number"])
        assert (cut.state, cut.user_attrs["status"]) == (TrialState.FAIL, "timed_out")
    assert stored(searcher, specs[0]["number"]).user_attrs["stopped_at_epoch"] == 1
    assert retried_numbers(searcher.study.get_trials()) == {spec["number"] for spec in specs}
    waiting = searcher.study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 2


def test_a_retried_attempt_restarts_its_learning_curve(searcher):
    searcher.suggest("ray-1")
    for epoch, accuracy in ((1, 0.1), (2, 0.2)):
        searcher.on_trial_result("ray-1", epoch_result(epoch, accuracy))
    # The worker died; Tune runs the trial again under the same id, from epoch 1.
    for epoch, accuracy in ((1, 0.4), (2, 0.5), (3, 0.6)):
        searcher.on_trial_result("ray-1", epoch_result(epoch, accuracy))
    searcher.on_trial_complete("ray-1", epoch_result(3, 0.6, trial_done=True))
    trial = stored(searcher, 0)
    curve = trial.user_attrs["learning_curve"]
    assert [(e["epoch"], e["val_accuracy"]) for e in curve] == [(1, 0.4), (2, 0.5), (3, 0.6)]
    assert trial.user_attrs["restarts"] == 1


def test_trials_on_different_devices_are_warned_of_and_recorded(searcher):
    numbers = []
    for index, device in enumerate(("cpu", "cpu", "NVIDIA H200")):
        numbers.append(searcher.suggest(f"ray-{index}")["number"])
        result = epoch_result(3, 0.5, trial_done=True, device=device)
        searcher.on_trial_complete(f"ray-{index}", result)
    assert searcher.study.user_attrs["devices"] == ["NVIDIA H200", "cpu"]
    warnings = [stored(searcher, n).user_attrs["warnings"] for n in numbers]
    assert warnings[:2] == [[], []]
    assert "ran on different devices (NVIDIA H200, cpu)" in warnings[2][0]


def test_a_config_breaking_a_profiled_constraint_never_reaches_a_worker(tmp_path):
    space = make_space(tmp_path, [{"metric": "params", "max": 60000},
                                  {"metric": "memrw_mib", "min": 0.01}], growth=48)
    searcher = make_searcher(space)
    try:
        # Tune asks until told the search is over; a suggestion gives the loop back after
        # a while of draws that all settle without running.
        answers = [searcher.suggest(f"ray-{index}") for index in range(space.study.n_trials)]
        assert "FINISHED" in answers and not any(isinstance(a, dict) for a in answers), \
            "every draw is infeasible"
    finally:
        searcher.close()
    trials = searcher.study.get_trials()
    # Fewer networks than trials in the budget: the draws that repeat one use no budget,
    # and a run of them ends the search.
    first = [t.user_attrs["config_hash"] for t in trials
             if t.user_attrs["status"] != "duplicate"]
    assert len(first) < space.study.n_trials
    assert sorted(first) == sorted({t.user_attrs["config_hash"] for t in trials})
    assert [t.user_attrs["status"] for t in trials[-EXHAUSTED_AFTER:]] == \
        ["duplicate"] * EXHAUSTED_AFTER
    assert "the space is all but exhausted" in searcher.exhausted
    assert trials[0].user_attrs["status"] == "infeasible"
    for trial in trials:
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs["status"] in ("infeasible", "duplicate")
        if trial.user_attrs["status"] == "duplicate":
            continue
        assert trial.user_attrs["reason"].startswith("constraint: params")
        assert trial.user_attrs["params"] > 60000 and "latency_ms" not in trial.user_attrs
        assert set(trial.constraints) == {"params_max", "memrw_mib_min"}
        assert trial.constraints["params_max"] > 0 >= trial.constraints["memrw_mib_min"]


def test_a_latency_constraint_is_left_to_the_worker(tmp_path):
    space = make_space(tmp_path, [{"metric": "latency_ms", "max": 1e-9}], growth=48)
    searcher = make_searcher(space)
    try:
        spec = searcher.suggest("ray-1")
    finally:
        searcher.close()
    assert isinstance(spec, dict) and spec["constraints"][0]["metric"] == "latency_ms"


def test_every_spec_carries_the_figures_counted_on_the_driver(searcher):
    from threshsearch.api import profile
    from threshsearch.search.reports import PROFILED, PROFILED_METRICS

    spec = searcher.suggest("ray-1")  # no constraint asks for them: the worker needs them
    profiled = profile(ArchitectureConfig.from_dict(spec["architecture"]), 32)
    assert spec[PROFILED] == {metric: getattr(profiled, metric) for metric in PROFILED_METRICS}


def test_a_dead_drivers_unfinished_curves_are_no_rung_evidence(tmp_path):
    from threshsearch.search.schedulers import make_early_stopper

    space = make_space(tmp_path, growth=4)
    dead = make_searcher(space)
    dead.suggest("ray-1")
    dead.on_trial_result("ray-1", epoch_result(1, 0.9))
    dead.close()  # the driver dies: its trial stays RUNNING, its heartbeat stops
    dead.heartbeat.thread.join(timeout=30)  # no beat after the heartbeats are aged below
    study = open_study(space)
    assert make_early_stopper(space, study.get_trials()).evidence == 0, \
        "restarted at once: the trial still runs in the storage"
    age_heartbeats(space.storage_url, space.study.grace_s + 1)
    resumed = make_searcher(space, study)
    try:
        resumed.suggest("ray-2")  # fails the stale trial and runs its retry
    finally:
        resumed.close()
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and retried_numbers(trials) == {0}
    stopper = make_early_stopper(space, trials)
    assert stopper.evidence == 0, "the retry is not ranked against its own earlier attempt"


def test_a_trial_whose_driver_died_before_its_first_heartbeat_is_run_again(tmp_path,
                                                                          monkeypatch):
    from threshsearch.search import storage as storage_module

    space = load_space(write_space(tmp_path, n_trials=1))
    study = open_study(space)
    study.ask()  # a driver killed between Optuna's ask and its first heartbeat
    resumed = make_searcher(space, study)
    try:
        assert resumed.suggest("ray-1") is None, \
            "just asked: it may be a live driver's, between its two commits"
        later = datetime.now() + timedelta(seconds=space.study.grace_s + 1)

        class GraceLater(datetime):
            @classmethod
            def now(cls, tz=None):
                return later

        monkeypatch.setattr(storage_module, "datetime", GraceLater)
        resumed.next_look = resumed.next_stale_check = 0.0
        spec = resumed.suggest("ray-2")
    finally:
        resumed.close()
    assert isinstance(spec, dict) and spec["number"] == 1, "the rerun waited for it forever"
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL and retried_numbers(trials) == {0}


def test_a_spent_budget_is_looked_at_once_a_poll_not_once_a_call(tmp_path, monkeypatch):
    from threshsearch.search import searcher as searcher_module

    path = write_space(tmp_path, n_trials=1, grace_s=600)  # no trial goes stale here
    made = make_searcher(load_space(path))
    try:
        assert made.suggest("ray-1") is not None
        reads, stale_checks, full_reads = [], [], []
        refresh = made.index.refresh
        monkeypatch.setattr(made.index, "refresh", lambda: reads.append(1) or refresh())
        get_trials = made.study.get_trials
        monkeypatch.setattr(made.study, "get_trials",
                            lambda *a, **k: full_reads.append(1) or get_trials(*a, **k))
        stale = searcher_module.fail_stale_trials
        monkeypatch.setattr(searcher_module, "fail_stale_trials",
                            lambda study: stale_checks.append(1) or stale(study))
        # Tune asks again and again while the one trial runs: the budget is spent.
        for index in range(50):
            assert made.suggest(f"ray-{index + 2}") is None
        assert len(reads) == 1 and len(stale_checks) <= 1
        assert not full_reads, "the budget is counted from the index, not every trial"
        made.on_trial_complete("ray-1", epoch_result(3, 0.5, trial_done=True))
        made.next_look = 0.0  # the poll interval has passed
        assert made.suggest("ray-99") == "FINISHED"
    finally:
        made.close()


def test_the_progress_line_counts_the_studys_front(tmp_path, capsys):
    from threshsearch.search.searcher import StudySearcher

    space = make_space(tmp_path, growth=4)
    study = open_study(space)
    made = StudySearcher(space, study, 32, Progress(space), {})
    try:
        for index, (accuracy, memrw) in enumerate([(0.5, 2.0), (0.6, 3.0), (0.4, 2.5),
                                                   (0.7, 1.0)]):
            made.suggest(f"ray-{index}")
            made.on_trial_complete(f"ray-{index}", epoch_result(
                3, accuracy, trial_done=True, memrw_mib=memrw))
            line = capsys.readouterr().out.strip().splitlines()[-1]
            networks = [t for t in study.best_trials if t.user_attrs["status"] != "duplicate"]
            assert line.endswith(f"front {len(networks)}"), line
    finally:
        made.close()


def test_a_baseline_cut_by_the_time_budget_queues_nothing_in_the_search(tmp_path):
    from threshsearch.search.baselines import open_baselines_study
    from threshsearch.search.searcher import StudySearcher

    path = write_space(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["baselines"] = ["threshnet79"]
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    study = open_study(space)
    companion = open_baselines_study(study, space.metric_names, space.directions)
    made = StudySearcher(space, study, 32, Progress(space, quiet=True), {}, companion)
    try:
        assert made.suggest("ray-1")["baseline"] == "threshnet79"
        made.on_trial_result("ray-1", epoch_result(1, 0.3, baseline="threshnet79"))
        made.on_trial_complete("ray-1", epoch_result(1, 0.3, baseline="threshnet79"))
    finally:
        made.close()
    assert study.get_trials() == [], "the search's own study holds only its own trials"
    [cut] = companion.get_trials()
    assert cut.state == TrialState.FAIL and cut.user_attrs["status"] == "timed_out"


def test_a_time_cut_retry_keeps_its_own_heartbeat_retry_and_starts_clean(tmp_path):
    from optuna.storages import fail_stale_trials

    space = make_space(tmp_path, growth=4)
    first = make_searcher(space)
    first.suggest("ray-1")
    first.on_trial_result("ray-1", epoch_result(1, 0.3))
    first.on_trial_complete("ray-1", epoch_result(1, 0.3))  # cut: trial 1 queued for 0
    first.suggest("ray-2")  # the retry runs...
    first.on_trial_result("ray-2", epoch_result(1, 0.8))
    first.close()  # ...and its driver dies
    first.heartbeat.thread.join(timeout=30)  # no beat after the heartbeats are aged below
    study = open_study(space)
    age_heartbeats(space.storage_url, space.study.grace_s + 1)
    fail_stale_trials(study)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.WAITING]
    assert retried_numbers(trials) == {0, 1}, "both the cut trial and the dead retry re-run"
    # Optuna's retry copied the dead attempt's curve; the next attempt starts without it.
    assert trials[2].user_attrs["learning_curve"]
    second = make_searcher(space, study)
    try:
        spec = second.suggest("ray-3")
        assert spec["number"] == 2
        assert stored(second, 2).user_attrs["learning_curve"] == []
    finally:
        second.close()


def test_the_heartbeat_goes_on_while_a_suggestion_holds_the_searcher(searcher, monkeypatch):
    searcher.suggest("ray-1")
    beats = []
    record = storage_module.record_heartbeats
    monkeypatch.setattr(storage_module, "record_heartbeats",
                        lambda storage, ids: beats.extend(ids) or record(storage, ids))
    with searcher.lock:  # as a suggestion drawing and profiling config after config does
        deadline = time.monotonic() + 10 * searcher.space.study.heartbeat_s
        while not beats and time.monotonic() < deadline:
            time.sleep(0.05)
    assert beats, "no heartbeat while the searcher was busy: its trials would go stale"


def test_the_searcher_pickles_without_its_live_handles(searcher):
    """Tune pickles its setup (tuner.pkl) with the searcher in it: threads, locks and
    database connections must stay out of it."""
    from ray import cloudpickle

    searcher.suggest("ray-1")
    restored = cloudpickle.loads(cloudpickle.dumps(searcher))
    assert restored.space == searcher.space and not hasattr(restored, "heartbeat")


def test_a_draws_parameters_are_written_in_one_transaction(searcher, monkeypatch):
    from threshsearch.search.studycache import CachedStudyStorage

    writes = []
    write = CachedStudyStorage._write_held
    monkeypatch.setattr(CachedStudyStorage, "_write_held",
                        lambda storage, trial_id: writes.append(
                            dict(storage._held.get(trial_id, {}))) or write(storage, trial_id))
    assert isinstance(searcher.suggest("ray-1"), dict)
    drawn = stored(searcher, 0).params
    assert len(writes) == 1 and set(writes[0]) == set(drawn) and len(drawn) > 1


def test_a_draw_stands_down_for_an_earlier_trial_that_wrote_its_network_later(searcher,
                                                                            monkeypatch):
    import optuna

    study = searcher.study
    other = optuna.load_study(study_name=study.study_name, storage=study._storage._backend)
    earlier = other.ask()  # another driver's trial, asked first, its network not yet written
    wait, written = searcher.index.await_draws_before, []

    def written_meanwhile(number, patience_s):
        if not written:  # the other driver drew the same network, but wrote it later
            earlier.set_user_attr("config_hash", searcher.index.hash_of[number])
            written.append(number)
        wait(number, patience_s)
    monkeypatch.setattr(searcher.index, "await_draws_before", written_meanwhile)
    assert isinstance(searcher.suggest("ray-1"), dict)
    assert written == [1]
    assert stored(searcher, 1).user_attrs["status"] == "duplicate"
    assert stored(searcher, 1).user_attrs["duplicate_of"] == 0
