"""`threshsearch time`: exported networks timed on this machine beside the search's figures,
the CSV's round trip, and the report's column and points (no timing asserted)."""

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from threshsearch.cli import main
from threshsearch.deploy import to_onnx
from threshsearch.errors import UserError
from threshsearch.nn import build_model
from threshsearch.results import export_front, read_result
from threshsearch.results.timings import (
    MEASURED,
    DeviceTimings,
    TimingSettings,
    prediction_mismatch,
    ratio,
    read_timings,
    search_figures,
    time_results,
)

FAST = ["--seconds", "0.01", "--repeats", "2"]


@pytest.fixture(scope="module")
def exported(offline_study, tmp_path_factory):
    space, study = offline_study
    out = tmp_path_factory.mktemp("timings") / "pareto"
    return space, study, out, export_front(study, space.storage_url, out)


def test_time_writes_the_search_figures_and_the_measurement_side_by_side(exported, tmp_path,
                                                                        capsys):
    _, study, folder, paths = exported
    csv = tmp_path / "timings.csv"
    assert main(["time", str(folder), *FAST, "--out", str(csv)]) == 0
    printed = capsys.readouterr()
    assert "measured on" in printed.out and f"[{len(paths)}/{len(paths)}]" in printed.err
    frame = pd.read_csv(csv)
    assert sorted(frame["file"]) == sorted(map(str, paths))
    for row in frame.itertuples():
        document = yaml.safe_load(Path(row.file).read_text())
        assert row.network == f"trial {document['study']['trial']}"
        assert row.search_latency_ms == document["metrics"]["latency_ms"]
        assert row.measured_vs_search == pytest.approx(row.measured_ms / row.search_latency_ms)
        assert math.isnan(row.predicted_latency_ms) and math.isnan(row.measured_vs_predicted)
        assert row.runtime == "torch" and row.repeats == 2 and row.threads == 1
        assert row.measured_min_ms <= row.measured_ms <= row.measured_max_ms
    assert set(frame["study"]) == {study.study_name}


def test_the_ratios_and_the_predicted_figure_with_its_device_model():
    assert ratio(3.0, 2.0) == 1.5
    assert math.isnan(ratio(3.0, float("nan"))) and math.isnan(ratio(3.0, 0.0))
    figures = search_figures({"metrics": {"latency_ms": 2.0, "predicted_latency_ms": 1.5},
                              "device": "cpu (1 threads)",
                              "device_model": {"id": "cpu-abc123", "summary": "..."}})
    assert figures == {"search_latency_ms": 2.0, "search_device": "cpu (1 threads)",
                       "predicted_latency_ms": 1.5, "device_model": "cpu-abc123"}


def test_onnxruntime_times_the_exported_onnx_file_of_the_right_shape(exported, tmp_path):
    _, _, _, paths = exported
    path = tmp_path / paths[0].name
    path.write_text(paths[0].read_text())
    settings = TimingSettings(runtime="onnxruntime", repeats=1, seconds=0.01)
    assert time_results([path], settings).loc[0, "onnx_source"] == "exported now"
    to_onnx(build_model(read_result(path).architecture), 32, path=path.with_suffix(".onnx"))
    frame = time_results([path], settings)
    assert frame.loc[0, "onnx_source"] == "file" and frame.loc[0, MEASURED] > 0
    assert frame.loc[0, "runtime"] == "onnxruntime"


def test_the_csv_round_trips_into_the_report(exported, tmp_path):
    from threshsearch.results.report import pareto_scatter
    from threshsearch.results.tables import front_table

    _, study, _, paths = exported
    frame = time_results(paths, TimingSettings(repeats=1, seconds=0.01))
    frame.to_csv(tmp_path / "t.csv", index=False)
    back = read_timings(tmp_path / "t.csv")
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    timings = DeviceTimings.of_study(back, study.study_name, None)
    label = f"{frame.loc[0, 'device']}, torch"
    assert timings.labels == [label]
    measured = dict(zip(frame["trial"], frame[MEASURED], strict=True))
    assert timings.trials[label] == measured
    table = front_table(study, {}, timings).data[0]
    column = list(table.header.values).index(f"latency_ms on {label}")
    trials = list(table.cells.values[0])
    assert [table.cells.values[column][trials.index(n)] for n in measured] == [
        f"{ms:.4g}" for ms in measured.values()]
    figure = pareto_scatter(study, "latency_ms", "val_accuracy", {}, timings=timings)
    timed = next(trace for trace in figure.data if (trace.meta or {}).get("role") == "timed")
    assert sorted(timed.x) == sorted(measured.values())


@pytest.mark.parametrize("runtime", ["torch-cuda", "torch-cuda-graph"])
def test_a_gpu_runtime_on_the_cpu_is_refused_in_one_line(exported, capsys, runtime):
    _, _, folder, _ = exported
    assert main(["time", str(folder), "--runtime", runtime, "--device", "cpu"]) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"--device: 'cpu' is invalid with --runtime {runtime}; use cuda (on a machine with a "
        "CUDA GPU)")


def test_the_graph_runtime_on_a_gpu_times_graph_replays_and_records_its_own_name(
        exported, monkeypatch):
    """Without a GPU: the device resolved as cuda, the network and its estimate replaced by
    stand-ins (fixed figures), so that what is checked is which timing runs and what the
    row says."""
    from types import SimpleNamespace

    import torch

    from threshsearch.results import timings

    _, _, _, paths = exported
    monkeypatch.setattr(timings, "resolve_device", lambda _name: torch.device("cuda"))
    monkeypatch.setattr(timings, "machine_name", lambda _device, _threads: "a GPU")
    network = SimpleNamespace(to=lambda _device: network)
    monkeypatch.setattr(timings, "build_model", lambda _architecture: network)
    figures = iter([2.0, 1.0, 3.0] * len(paths))
    timed = []

    def estimate(model, input_size, device, settings):
        timed.append((settings.cuda_graph, device.type))
        return SimpleNamespace(latency_ms=next(figures))

    monkeypatch.setattr(timings, "estimate_latency", estimate)
    frame = time_results(sorted(paths), TimingSettings("torch-cuda-graph", "cuda", 1, 1, 32,
                                                       3, 0.01))
    assert [graph for graph, _ in timed] == [True] * 3 * len(paths), "graph replays timed"
    assert {kind for _, kind in timed} == {"cuda"}
    assert set(frame["runtime"]) == {"torch-cuda-graph"} and set(frame[MEASURED]) == {2.0}
    model = {"device_kind": "cuda", "runtime": "torch-cuda", "batch_size": 1,
             "input_size": 32, "threads": 1, "dtype": "float32"}
    assert prediction_mismatch({"device_model": model}, TimingSettings(
        "torch-cuda-graph", "cuda", 1, 1, 32, 2, 0.01)) == (
        "runtime torch-cuda predicted, torch-cuda-graph timed")


def test_a_timings_file_of_another_study_or_format_is_refused(exported, tmp_path, capsys):
    space, study, _, _ = exported
    with pytest.raises(UserError, match="lacks the columns"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        read_timings(tmp_path / "bad.csv")
    other = tmp_path / "other.csv"
    pd.DataFrame([{"network": "trial 0", "study": "elsewhere", "trial": 0, "baseline": "",
                   MEASURED: 1.0, "device": "cpu", "runtime": "torch"}]).to_csv(other)
    code = main(["report", "--space", str(space.source), "--out", str(tmp_path / "r.html"),
                 "--timings", str(other)])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert f"none of its networks is from study {study.study_name}" in error


def test_a_timing_under_other_settings_than_the_models_gets_no_predicted_ratio(exported,
                                                                               tmp_path):
    _, _, _, paths = exported
    document = yaml.safe_load(paths[0].read_text())
    document["metrics"]["predicted_latency_ms"] = 1.5
    document["device_model"] = {"id": "m1", "device": "cpu", "device_kind": "cpu",
                                "runtime": "torch", "threads": 1, "batch_size": 1,
                                "input_size": 32, "dtype": "float32"}
    path = tmp_path / paths[0].name
    path.write_text(yaml.safe_dump(document))
    same = time_results([path], TimingSettings(repeats=1, seconds=0.01)).iloc[0]
    assert same.measured_vs_predicted == pytest.approx(same.measured_ms / 1.5)
    assert same.not_comparable == ""
    other = time_results([path], TimingSettings(repeats=1, seconds=0.01, threads=2)).iloc[0]
    assert math.isnan(other.measured_vs_predicted)
    assert other.not_comparable == "threads 1 predicted, 2 timed"
    assert prediction_mismatch(document, TimingSettings(runtime="onnxruntime", batch_size=8)
                               ) == ("runtime torch predicted, onnxruntime timed, "
                                     "batch_size 1 predicted, 8 timed")
    assert prediction_mismatch({"device_model": "m1"}, TimingSettings(threads=4)) == ""
    half = {"device_model": {**document["device_model"], "dtype": "bfloat16",
                             "device_kind": "cuda"}}
    assert prediction_mismatch(half, TimingSettings()) == (
        "device_kind cuda predicted, cpu timed, dtype bfloat16 predicted, float32 timed")
