import json
import re

import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

import threshsearch
from threshsearch.cli import main
from threshsearch.results import export_front, pareto_trials, read_result, trials_frame
from threshsearch.results.export import FORMAT, device_model_record


def test_the_offline_study_has_every_kind_of_trial(offline_study):
    _, study = offline_study
    statuses = {t.user_attrs.get("status") for t in study.trials}
    assert {"complete", "pruned", "infeasible"} <= statuses


def test_export_writes_one_file_per_front_member(offline_study, tmp_path):
    space, study = offline_study
    paths = export_front(study, space.storage_url, tmp_path)
    front = pareto_trials(study)
    assert len(paths) == len(front) >= 1
    excluded = {t.number for t in study.trials if t.state != TrialState.COMPLETE}
    for path in paths:
        document = yaml.safe_load(path.read_text())
        assert document["format"] == FORMAT
        assert document["study"]["trial"] not in excluded
        assert re.fullmatch(r"trial-\d{4}_acc[\d.]+_mem[\d.]+_par\d+\.yaml", path.name)
        for key in ("architecture", "train", "data", "metrics", "device", "versions", "seed",
                    "config_hash", "objectives"):
            assert document[key] is not None, key
        assert document["data"]["dataset"] == "synthetic"
        assert document["versions"]["torch"] == threshsearch_torch_version()
        result = read_result(path)
        assert result.architecture.hash == document["config_hash"]
        assert result.recipe.epochs == 3 and result.recipe.lr == 0.01
        model = threshsearch.build_model(path)
        assert sum(p.numel() for p in model.parameters()) == document["metrics"]["params"]
    pareto = pd.read_csv(tmp_path / "pareto.csv")
    assert sorted(pareto["number"]) == sorted(t.number for t in front)


def threshsearch_torch_version() -> str:
    from importlib.metadata import version

    return version("torch")


def test_an_exported_result_retrains_with_its_own_recipe(offline_study, tmp_path, capsys):
    space, study = offline_study
    path = export_front(study, space.storage_url, tmp_path / "pareto")[0]
    out = tmp_path / "retrain"
    code = main(["train", "--config", str(path), "--epochs", "1", "--out", str(out),
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    document = yaml.safe_load(path.read_text())
    assert metrics["dataset"] == "synthetic" and metrics["seed"] == document["seed"]
    assert metrics["recipe"]["lr"] == 0.01 and metrics["recipe"]["epochs"] == 1
    assert metrics["params"] == document["metrics"]["params"]
    assert metrics["config_hash"] == document["config_hash"]


def figures(page: str) -> list[dict]:
    return [json.loads(spec.replace("<\\/", "</")) for spec in re.findall(
        r'<script type="application/json" class="figure"[^>]*>(.*?)</script>', page, re.S)]


def test_a_re_timed_front_shows_both_measurements(offline_study, tmp_path):
    from threshsearch.results.tables import front_table
    from threshsearch.search.retime import RETIMED

    space, study = offline_study
    member = pareto_trials(study)[0]
    record = {**member.user_attrs["latency"], "latency_ms": 1.25,
              "measurement": "re-timed after the search, one network at a time"}
    study.set_user_attr(RETIMED, {str(member.number): record})
    try:
        path = next(p for p in export_front(study, space.storage_url, tmp_path)
                    if p.name.startswith(f"trial-{member.number:04d}"))
        document = yaml.safe_load(path.read_text())
        assert document["metrics"]["latency_ms"] == member.user_attrs["latency_ms"]
        assert document["latency"]["search"]["measurement"] == "search, device to itself"
        assert document["latency"]["retimed"]["latency_ms"] == 1.25
        table = front_table(study).data[0]
        assert "latency_ms re-timed" in table.header.values
        assert "1.25" in table.cells.values[table.header.values.index("latency_ms re-timed")]
    finally:
        study.set_user_attr(RETIMED, {})


def test_learning_curves_come_from_the_stored_record(offline_study):
    from threshsearch.results.report import learning_curves

    _, study = offline_study
    figure = learning_curves(study)
    trained = [t for t in study.trials if t.user_attrs.get("status") in ("complete", "pruned")]
    assert len(figure.data) == len(trained)
    for trace, trial in zip(figure.data, trained, strict=True):
        curve = trial.user_attrs["learning_curve"]
        assert list(trace.y) == [entry["val_accuracy"] for entry in curve]
        assert (trace.line.dash == "dot") == (trial.state == TrialState.PRUNED)


def test_report_has_one_marker_per_trial_and_the_presets(offline_study, tmp_path, capsys):
    space, study = offline_study
    out = tmp_path / "report.html"
    assert main(["report", "--space", str(space.source), "--out", str(out)]) == 0
    page = out.read_text()
    assert not re.search(r"<script[^>]+src=", page), "the report must open offline"
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs()[:500] in page, "plotly.js must be inlined"
    specs = figures(page)
    scatters = [spec for spec in specs if spec["layout"].get("title", {}).get("text", "")
                .count(" against ")]
    assert len(scatters) == 3  # every pair of the three objectives
    for spec in scatters:
        axes = spec["layout"]["xaxis"]["title"]["text"], spec["layout"]["yaxis"]["title"]["text"]
        expected = sum(1 for t in study.trials
                       if all(isinstance(t.user_attrs.get(a), int | float) for a in axes))
        markers = sum(len(trace["x"]) for trace in spec["data"]
                      if trace.get("meta", {}).get("role") == "trials")
        assert markers == expected > 0
    profile_plot = next(spec for spec in scatters
                        if spec["layout"]["xaxis"]["title"]["text"] == "memrw_mib")
    presets = next(trace for trace in profile_plot["data"]
                   if trace.get("meta", {}).get("role") == "presets")
    assert presets["text"] == ["threshnet79", "threshnet95", "hardnet85", "densenet121"]
    titles = " ".join(spec["layout"].get("title", {}).get("text", "") for spec in specs)
    assert "Parallel Coordinate" in titles and "Hypervolume" in titles


def test_png_export_without_kaleido_is_a_clear_error(offline_study, tmp_path, capsys):
    pytest.importorskip("plotly")
    try:
        import kaleido  # noqa: F401
        pytest.skip("kaleido is installed")
    except ImportError:
        pass
    space, _ = offline_study
    code = main(["report", "--space", str(space.source), "--out", str(tmp_path / "r.html"),
                 "--png", str(tmp_path / "png")])
    assert code == 2
    assert "kaleido" in capsys.readouterr().err
    assert (tmp_path / "r.html").exists()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "json"])
def test_trials_table_has_one_row_per_trial(offline_study, tmp_path, capsys, fmt):
    space, study = offline_study
    out = tmp_path / f"trials.{fmt}"
    assert main(["trials", "--storage", space.storage_url, "--format", fmt,
                 "--out", str(out)]) == 0
    frame = {"csv": pd.read_csv, "parquet": pd.read_parquet, "json": pd.read_json}[fmt](out)
    assert len(frame) == len(study.trials)
    for column in ("number", "status", "state", "val_accuracy", "latency_ms", "param_depth",
                   "duration_s"):
        assert column in frame.columns, column
    assert len(trials_frame(study)) == len(study.trials)


def test_export_onnx_writes_a_checked_twin_beside_each_file(offline_study, tmp_path, capsys):
    space, _ = offline_study
    out = tmp_path / "pareto"
    assert main(["export", "--space", str(space.source), "--out", str(out), "--onnx"]) == 0
    printed = capsys.readouterr().out
    results = sorted(out.glob("trial-*.yaml"))
    assert results and sorted(out.glob("trial-*.onnx")) == [
        path.with_suffix(".onnx") for path in results]
    for path in results:
        assert f"{path.with_suffix('.onnx').name}: ONNX Runtime matches PyTorch" in printed


def test_export_onnx_without_the_extra_is_one_line(offline_study, tmp_path, capsys,
                                                   monkeypatch):
    from threshsearch import deploy

    def missing(name: str, *args):
        raise ImportError(name)

    monkeypatch.setattr(deploy.importlib, "import_module", missing)
    space, _ = offline_study
    code = main(["export", "--space", str(space.source), "--out", str(tmp_path), "--onnx"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "--onnx" in error
    assert "pip install 'threshsearch[onnx]'" in error
    assert not list(tmp_path.glob("*.yaml")), "refused before anything is written"


def test_an_exported_trial_says_what_its_device_model_predicts():
    import optuna

    study = optuna.create_study()
    made_for = {"device": "cpu", "runtime": "torch", "threads": 1, "batch_size": 1,
                "input_size": 32}
    study.set_user_attr("device_model", {"id": "m1", "summary": "s", "path": "p", **made_for})
    priced, unpriced, other = (study.ask() for _ in range(3))
    priced.set_user_attr("device_model", "m1")
    other.set_user_attr("device_model", "m0")  # priced by a model the study no longer records
    for trial in (priced, unpriced, other):
        study.tell(trial, 1.0)
    frozen = study.get_trials()
    assert device_model_record(study, frozen[0]) == {"id": "m1", **made_for}
    assert device_model_record(study, frozen[1]) is None
    assert device_model_record(study, frozen[2]) == {"id": "m0"}
