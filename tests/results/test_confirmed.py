"""The confirmed figures in the results: exported files, the trials table, the report."""

import optuna
import pytest
import yaml

from tests.confirm.helpers import KEY, add_record, pair
from threshsearch.confirm.records import LATEST, open_confirm_study
from threshsearch.results import export_front, trials_frame, write_report
from threshsearch.results.report import study_figures
from threshsearch.search.storage import load_study, pareto_trials

ACCURACIES = {0: 0.90, 1: 0.92, 2: 0.94}  # by seed: mean 0.92, sd 0.02


@pytest.fixture
def confirmed_study(offline_study, tmp_path):
    """A copy of the offline study, its front and one baseline confirmed with 3 seeds."""
    space, original = offline_study
    url = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.copy_study(from_study_name=original.study_name, from_storage=space.storage_url,
                      to_storage=url)
    study = load_study(url)
    confirm = open_confirm_study(study, study._storage)
    costs = {"memrw_mib": 1.0, "params": 1000, "latency_ms": 1.0}
    for trial in pareto_trials(study):
        for seed, accuracy in ACCURACIES.items():
            add_record(confirm, pair(f"trial {trial.number}", seed), accuracy, costs=costs)
    for seed in ACCURACIES:
        add_record(confirm, pair("threshnet79", seed), 0.5, costs={
            "memrw_mib": 9.0, "params": 9000, "latency_ms": 9.0})
    confirm.set_user_attr(LATEST, {"name": "search", "key": KEY, "description": "search",
                                   "seeds": list(ACCURACIES)})
    return study, url


def test_export_carries_the_confirmed_figures(confirmed_study, tmp_path):
    study, url = confirmed_study
    paths = export_front(study, url, tmp_path / "pareto")
    document = yaml.safe_load(paths[0].read_text())
    confirmed = document["confirmed"]
    assert confirmed["test_accuracy"]["mean"] == pytest.approx(0.92)
    assert confirmed["test_accuracy"]["sd"] == pytest.approx(0.02)
    low, high = confirmed["test_accuracy"]["ci95"]
    assert low < 0.92 < high
    assert confirmed["seeds"] == [0, 1, 2]
    assert [c["outcome"] for c in confirmed["comparisons"]] == ["beats"]
    assert document["metrics"]["val_accuracy"] != confirmed["test_accuracy"]["mean"]


def test_trials_table_has_confirmed_columns(confirmed_study):
    study, _ = confirmed_study
    frame = trials_frame(study).set_index("number")
    front = [t.number for t in pareto_trials(study)]
    assert list(frame.loc[front, "confirmed_seeds"]) == [3] * len(front)
    assert frame.loc[front[0], "confirmed_test_accuracy_mean"] == pytest.approx(0.92)
    others = frame[~frame.index.isin(front)]
    assert set(others["confirmed_seeds"]) == {0}


def test_report_has_the_confirmed_section_and_error_bars(confirmed_study, tmp_path):
    study, _ = confirmed_study
    sections = dict(study_figures(study, 10, 32))
    table = sections["Confirmed: retrained from scratch, tested on the test split"]
    cells = table.data[0].cells.values
    assert "threshnet79" in cells[0] and "92.00 ± 2.00" in cells[2]
    outcomes = sections["Confirmed verdict: each network against each baseline"]
    assert set(outcomes.data[0].cells.values[2]) == {"beats"}
    scatter = sections["Pareto front: memrw_mib against val_accuracy"]
    confirmed = next(t for t in scatter.data if t.meta and t.meta["role"] == "confirmed")
    assert confirmed.x[0] == pytest.approx(0.92)
    assert confirmed.error_x.arrayminus[0] > 0  # the 95 % interval
    assert confirmed.error_x.arrayminus[-1] == 0  # the baseline's seeds agree: no spread
    html = write_report(study, tmp_path / "report.html").read_text()
    assert "Confirmed verdict" in html


def test_report_says_when_nothing_was_confirmed(offline_study):
    _, study = offline_study
    sections = dict(study_figures(study, 10, 32))
    assert "not confirmed yet" in sections["Confirmed"]


def test_export_prints_the_provisional_verdict_then_the_confirmed_one(confirmed_study, capsys,
                                                                       tmp_path):
    from threshsearch.cli import main
    from threshsearch.search.baselines import open_baselines_study
    from threshsearch.search.trial import BASELINE

    study, url = confirmed_study
    companion = open_baselines_study(study, list(study.metric_names),
                                     [d.name.lower() for d in study.directions])
    trial = companion.ask()
    trial.set_user_attr(BASELINE, "threshnet79")
    trial.set_user_attr("config_hash", "h")
    trial.set_user_attr("architecture", {"stem": "cifar"})
    companion.tell(trial, [0.0, 1e9, 1e9])  # dominated by every front member
    assert main(["export", "--storage", url, "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    provisional = out.index("PROVISIONAL")
    assert f"to confirm it: threshsearch confirm --storage {url}" in out
    confirmed = out.index("confirmed (search; test split):")
    assert provisional < confirmed
    front = pareto_trials(study)
    assert f"trial {front[0].number} beats threshnet79: +42.00 pt test accuracy" in out
