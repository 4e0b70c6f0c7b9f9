"""An ended trial is cut to its identity (its statistics dropped, its last report and config
cut to Tune's bookkeeping, Tune's cached JSON of both rewritten short);
a running trial keeps all it has; Tune's printer is silenced."""

import json

import pytest

from threshsearch.search.endedtrials import ShedEndedTrials

SPEC = {"number": 7, "architecture": {"stages": [{"depth": 3, "growth": 12}] * 4},
        "recipe": {"epochs": 6, "lr": 0.001}, "measurement": {"min_passes": 20}}


def _trial_with_reports(trial_id: str, config: dict, reports: int = 3):
    from ray.tune.experiment import Trial

    trial = Trial("trainable", config=dict(config), stub=True, trial_id=trial_id,
                  experiment_tag=f"7_architecture={config['architecture']}")
    for epoch in range(1, reports + 1):
        trial.update_last_result({"training_iteration": epoch, "val_accuracy": 0.5 + epoch / 10,
                                  "worker_time": {"training": 0.1 * epoch},
                                  "latency": {"p10_ms": 1.5}, "trial_id": trial_id,
                                  "done": epoch == reports, "config": dict(config)})
    return trial


@pytest.mark.parametrize("hook", ["on_trial_complete", "on_trial_error"])
def test_an_ended_trial_keeps_its_identity_and_tunes_bookkeeping_only(hook):
    ended, running = _trial_with_reports("ended", SPEC), _trial_with_reports("running", SPEC)
    assert set(ended.metric_analysis) >= {"val_accuracy", "worker_time/training"}
    state, metadata = ended.get_json_state()  # cached by Tune now, as a state write does
    assert "architecture" in state and json.loads(metadata)["metric_analysis"]
    getattr(ShedEndedTrials(), hook)(iteration=3, trials=[ended, running], trial=ended)
    assert ended.metric_analysis == {} and ended.metric_n_steps == {}
    assert ended.last_result == {"training_iteration": 3, "trial_id": "ended", "done": True}
    assert ended.config == ended.evaluated_params == {"number": 7}
    assert ended.experiment_tag == "7"
    state, metadata = ended.get_json_state()
    assert "architecture" not in state and json.loads(state)["config"] == {"number": 7}
    assert json.loads(metadata)["metric_analysis"] == {}
    assert json.loads(metadata)["last_result"] == ended.last_result
    assert running.metric_analysis["val_accuracy"]["max"] == pytest.approx(0.8)
    assert running.config == SPEC and running.last_result["latency"] == {"p10_ms": 1.5}


def test_a_baseline_keeps_the_preset_it_trains():
    baseline = _trial_with_reports("baseline", {**SPEC, "baseline": "threshnet79"})
    ShedEndedTrials().on_trial_complete(iteration=3, trials=[baseline], trial=baseline)
    assert baseline.config == {"number": 7, "baseline": "threshnet79"}


def test_tunes_printer_would_print_a_cut_trials_end_and_the_runs_own_prints_nothing(capsys):
    from ray.tune.progress_reporter import TrialProgressCallback
    from ray.tune.utils.callback import _create_default_callbacks

    from threshsearch.search.endedtrials import SilentTrialProgress

    for printer, printed in ((TrialProgressCallback(), True), (SilentTrialProgress(), False)):
        trial = _trial_with_reports("ended", SPEC)
        ShedEndedTrials().on_trial_complete(iteration=3, trials=[trial], trial=trial)
        printer.on_trial_complete(iteration=3, trials=[trial], trial=trial)
        assert ("completed. Last result" in capsys.readouterr().out) is printed
        assert bool(printer._completed_trials) is printed  # Tune's keeps every trial
    callbacks = _create_default_callbacks([ShedEndedTrials(), SilentTrialProgress()])
    printers = [c for c in callbacks if isinstance(c, TrialProgressCallback)]
    assert len(printers) == 1 and isinstance(printers[0], SilentTrialProgress)


def _controller_holding(trials):
    from types import SimpleNamespace

    from ray.tune.experiment import Trial

    return SimpleNamespace(
        _trials=list(trials), _stopped_trials={t for t in trials if t.status == Trial.TERMINATED},
        _trials_to_cache=set(trials), _trial_metadata={t.trial_id: "{}" for t in trials},
        _trial_to_actor={})


def test_the_controller_forgets_a_terminated_trial_off_its_actor_but_not_its_last():
    from types import SimpleNamespace

    from ray.tune.experiment import Trial

    from threshsearch.search.endedtrials import forget

    ended, failed, cached, running = (_trial_with_reports(name, SPEC)
                                      for name in ("ended", "failed", "cached", "running"))
    for trial, status in ((ended, Trial.TERMINATED), (failed, Trial.ERROR),
                          (cached, Trial.TERMINATED), (running, Trial.RUNNING)):
        trial.set_status(status)
    controller = _controller_holding([ended, failed, cached, running])
    controller._trial_to_actor[cached] = "its actor, not yet let go"
    view = SimpleNamespace(_tune_controller=controller)  # what a scheduler is given
    assert [forget(view, trial) for trial in (ended, failed, cached, running)] == [
        True, False, False, False]
    assert controller._trials == [failed, cached, running]
    assert controller._stopped_trials == {cached}
    assert controller._trials_to_cache == {failed, cached, running}
    assert set(controller._trial_metadata) == {"failed", "cached", "running"}
    assert not forget(SimpleNamespace(get_trials=list), running)  # laid out otherwise
    last = _controller_holding([ended])  # the list's last trial stays, for Tune to read
    assert not forget(last, ended) and last._trials == [ended]
