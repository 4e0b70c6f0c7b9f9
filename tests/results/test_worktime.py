"""The report's account of the workers' time, from the trials' stored accounts."""

import pytest

from threshsearch.results.worktime import work_tally, worker_time_figure
from threshsearch.search.worktime import WORKER_TIME


def test_each_trial_is_a_stack_of_its_phases_as_tall_as_its_slot(offline_study):
    _, study = offline_study
    accounted = [t for t in study.trials if t.user_attrs.get(WORKER_TIME)]
    assert accounted, "trials run by the searcher keep their account"
    figure = worker_time_figure(study.trials)
    phases = {trace.name for trace in figure.data}
    assert {"training", "evaluation", "pricing", "latency", "outside"} <= phases
    for index, trial in enumerate(accounted):
        height = sum(trace.y[index] for trace in figure.data)
        assert height == pytest.approx(trial.user_attrs["wall_s"], rel=0.05)
    share = work_tally(accounted).training_share()
    assert f"training + evaluation {share:.1%}" in figure.layout.title.text


def test_a_study_without_accounts_says_so():
    assert "no trial recorded its worker time" in worker_time_figure([])
