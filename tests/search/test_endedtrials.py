"""An ended trial's metric statistics are dropped; its last result and a running trial's
statistics stay."""

import json

import pytest

from threshsearch.search.endedtrials import DropEndedTrialStatistics


def _trial_with_reports(trial_id: str, reports: int = 3):
    from ray.tune.experiment import Trial

    trial = Trial("trainable", config={"number": 1}, stub=True, trial_id=trial_id)
    for epoch in range(1, reports + 1):
        trial.update_last_result({"training_iteration": epoch, "val_accuracy": 0.5 + epoch / 10,
                                  "worker_time": {"training": 0.1 * epoch}})
    return trial


@pytest.mark.parametrize("hook", ["on_trial_complete", "on_trial_error"])
def test_an_ended_trial_keeps_its_last_result_but_not_its_statistics(hook):
    ended, running = _trial_with_reports("ended"), _trial_with_reports("running")
    assert set(ended.metric_analysis) >= {"val_accuracy", "worker_time/training"}
    assert json.loads(ended.get_json_state()[1])["metric_analysis"]  # cached by Tune now
    getattr(DropEndedTrialStatistics(), hook)(iteration=3, trials=[ended, running], trial=ended)
    assert ended.metric_analysis == {} and ended.metric_n_steps == {}
    assert ended.last_result["val_accuracy"] == pytest.approx(0.8)
    assert json.loads(ended.get_json_state()[1])["metric_analysis"] == {}  # Tune's cache too
    assert running.metric_analysis["val_accuracy"]["max"] == pytest.approx(0.8)
