"""Baselines: the space's list, the companion study, training once, and the verdict."""

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.search.helpers import TINY_SPACE, age_heartbeats, budget_used
from threshsearch.search.baselines import (
    PAPER_BASELINES,
    baseline_trials,
    default_baselines,
    fits,
    load_baselines_study,
    open_baselines_study,
    verdict,
)
from threshsearch.search.progress import Progress
from threshsearch.search.runner import open_study
from threshsearch.search.searcher import StudySearcher
from threshsearch.search.space import SearchSpace, SpaceError, load_space
from threshsearch.search.trial import BASELINE, DONE, FAILED, evaluate_candidate


def parse(data):
    space = {**TINY_SPACE}
    if data is None:
        del space["baselines"]
    else:
        space["baselines"] = data
    try:
        return SearchSpace.from_dict(space).baselines, []
    except SpaceError as error:
        return None, error.problems


def test_the_default_is_the_papers_models_and_an_empty_list_is_none():
    assert parse(None) == (PAPER_BASELINES, [])
    assert parse([]) == ((), [])
    assert parse(["hardnet85", "threshnet79"]) == (("hardnet85", "threshnet79"), [])


@pytest.mark.parametrize(("data", "expected"), [
    (["threshnet80"], "baselines[0]: 'threshnet80' is invalid; expected one of threshnet79"),
    (["threshnet79", "threshnet79"], "baselines[1]: 'threshnet79' is listed twice"),
    ("threshnet79", "baselines: 'threshnet79' is invalid; expected a list of preset names"),
])
def test_bad_baselines_name_the_entry_and_the_valid_choices(data, expected):
    _, problems = parse(data)
    assert any(expected in problem for problem in problems), problems


def test_a_preset_too_deep_for_the_input_size_does_not_fit():
    assert not fits("threshnet79", 8) and fits("threshnet79", 32)
    assert default_baselines(8) == ()


def _trial(values, number, **attrs):
    trial = optuna.trial.create_trial(values=values, user_attrs=attrs)
    trial.number = number
    return trial


def test_the_verdict_names_the_members_that_dominate_each_baseline():
    metrics, directions = ["val_accuracy", "memrw_mib"], ["maximize", "minimize"]
    better = _trial([0.95, 1.0], 31)
    cheaper_but_worse = _trial([0.80, 0.5], 32)
    baselines = {"threshnet79": _trial([0.946, 2.0], 0, baseline="threshnet79"),
                 "densenet121": _trial([0.99, 3.0], 1, baseline="densenet121")}
    result = {v.baseline: v for v in verdict([better, cheaper_but_worse], baselines, metrics,
                                             directions)}
    beaten = result["threshnet79"]
    assert [c.trial for c in beaten.dominated_by] == [31]
    assert beaten.dominated_by[0].differences == {"val_accuracy": "+0.4 pt",
                                                   "memrw_mib": "0.50x"}
    assert "trial 31 vs threshnet79: +0.4 pt val_accuracy, 0.50x memrw_mib" in beaten.describe()
    assert result["densenet121"].dominated_by == []
    assert "no network of the front dominates it" in result["densenet121"].describe()


def _offline_space(tmp_path, baselines, n_trials=3):
    data = {**TINY_SPACE, "study": {**TINY_SPACE["study"], "n_trials": n_trials,
                                    "storage": f"sqlite:///{tmp_path / 'study.db'}"},
            "train": {**TINY_SPACE["train"], "epochs": 1}, "early_stopping": {"kind": "none"},
            "baselines": baselines}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_space(path)


def _drive(space, fail_baselines=False):
    """The searcher and trial code in this process (no Ray); returns the study."""
    study = open_study(space)
    companion = (open_baselines_study(study, space.metric_names, space.directions)
                 if space.baselines else None)
    searcher = StudySearcher(space, study, 32, Progress(space, quiet=True), {}, companion)
    try:
        for index in range(20):
            spec = searcher.suggest(f"t{index}")
            if not isinstance(spec, dict):
                if spec is None and not searcher.pending:
                    continue
                break
            if spec.get(BASELINE) and fail_baselines:
                searcher.on_trial_complete(f"t{index}", {FAILED: "boom", DONE: True})
                continue
            reports = []
            evaluate_candidate(spec, reports.append)
            for report in reports:
                searcher.on_trial_result(f"t{index}", report)
            searcher.on_trial_complete(f"t{index}", reports[-1])
    finally:
        searcher.close()
    return study


def test_a_live_drivers_baseline_is_left_to_it_and_a_dead_ones_is_trained_again_clean(
        tmp_path):
    space = _offline_space(tmp_path, ["threshnet79", "hardnet68"])
    study = open_study(space)
    companion = open_baselines_study(study, space.metric_names, space.directions)

    def driver():
        return StudySearcher(space, study, 32, Progress(space, quiet=True), {}, companion)

    # Two drivers started together: each baseline is handed out once.
    first, second = driver(), driver()
    try:
        assert first.suggest("a")[BASELINE] == "threshnet79"
        first.pending["a"].set_user_attr("learning_curve", [{"epoch": 1}])
        assert second.suggest("b")[BASELINE] == "hardnet68", "threshnet79 is the first's"
        assert driver().baseline_queue == [], "a third finds both taken"
        first.close()  # the first driver dies
        age_heartbeats(space.storage_url, space.study.grace_s + 1)
        # The second's stale check fails the dead driver's baseline, and it trains it.
        assert second.suggest("c")[BASELINE] == "threshnet79"
        retry = companion._storage.get_trial(second.pending["c"]._trial_id)
    finally:
        first.close()
        second.close()
    assert "failed_trial" in retry.system_attrs, "Optuna's retry of the dead attempt"
    assert retry.user_attrs["learning_curve"] == [], "not the dead attempt's curve"


def test_a_failed_baseline_is_recorded_and_the_search_goes_on(tmp_path):
    space = _offline_space(tmp_path, ["threshnet79"])
    study = _drive(space, fail_baselines=True)
    companion = load_baselines_study(study)
    [failed] = companion.trials
    assert failed.state == TrialState.FAIL and failed.user_attrs["reason"] == "boom"
    assert failed.user_attrs[BASELINE] == "threshnet79"
    assert budget_used(study.trials) == 3, "the search ran its whole budget"


@pytest.fixture(scope="module")
def with_baseline(tmp_path_factory):
    """(folder, space, study): two search trials and threshnet79 trained beside them, once
    for the tests that read such a study (training the baseline is most of their cost)."""
    folder = tmp_path_factory.mktemp("baselines")
    space = _offline_space(folder, ["threshnet79"], n_trials=2)
    return folder, space, _drive(space)


def test_baselines_train_once_and_stay_out_of_the_sampled_study(with_baseline, tmp_path):
    import sqlite3

    folder, _, study = with_baseline
    companion = load_baselines_study(study)
    trained = baseline_trials(companion)
    assert list(trained) == ["threshnet79"]
    baseline = trained["threshnet79"]
    assert baseline.values[0] >= 0
    # Priced as the trials are: this study asks for no latency, so none is measured.
    assert baseline.user_attrs["latency"] is None
    assert baseline.user_attrs["worker_time"]["latency"] == 0
    assert baseline.user_attrs["epochs"] == 1, "no early stopping, the study's recipe"
    # The sampler's study holds only points of the search space.
    assert all(BASELINE not in t.user_attrs for t in study.trials)
    searched = set(optuna.search_space.intersection_search_space(study.get_trials()))
    assert searched == {"depth", "growth", "threshold"}
    # A rerun (more trials) trains no baseline again: on a copy of the storage (SQLite's
    # backup: the WAL's pages included), so that the shared study keeps its two trials.
    source, copy = sqlite3.connect(folder / "study.db"), sqlite3.connect(tmp_path / "study.db")
    source.backup(copy)
    source.close()
    copy.close()
    more = _offline_space(tmp_path, ["threshnet79"], n_trials=3)
    study = _drive(more)
    assert len(load_baselines_study(study).trials) == 1
    assert budget_used(study.trials) == 3


def test_baselines_show_on_every_pareto_plot_in_the_table_and_the_files(with_baseline,
                                                                         tmp_path):
    import threshsearch
    from threshsearch.results import export_baselines, read_result, trials_frame
    from threshsearch.results.report import study_figures

    _, space, study = with_baseline
    sections = dict(study_figures(study, 10, 32))
    plots = [figure for title, figure in sections.items() if title.startswith("Pareto front")]
    assert plots
    for figure in plots:
        [marker] = [trace for trace in figure.data if (trace.meta or {}).get("role")
                    == "baselines"]
        assert list(marker.text) == ["threshnet79"]
    assert ("Verdict, provisional (validation accuracy, one seed): the front against the "
            "baselines") in sections
    table = sections["The Pareto front"].data[0]
    assert "baseline threshnet79" in table.cells.values[0]
    frame = trials_frame(study)
    assert list(frame[frame["baseline"] != ""]["baseline"]) == ["threshnet79"]
    assert (frame["baseline"] == "").sum() == 2
    [path] = export_baselines(study, space.storage_url, tmp_path / "pareto")
    document = yaml.safe_load(path.read_text())
    assert document["baseline"] == "threshnet79" and document["data"]["dataset"] == "synthetic"
    model = threshsearch.build_model(path)
    assert sum(p.numel() for p in model.parameters()) == document["metrics"]["params"]
    result = read_result(path)  # what `threshsearch train --config` reads
    assert result.recipe.epochs == 1 and result.dataset == "synthetic"
    assert result.architecture.hash == document["config_hash"]
