"""Exported networks timed on the machine at hand (the deployment device), beside the figures
the search recorded for them: what `threshsearch time` measures and writes as a CSV, and what
the report draws from that CSV.

Each network is timed ``repeats`` times, each a full estimate (warm-up, then passes until
the p10 settles, at least ``seconds`` long), and the median of those is its figure: one
estimate of a quarter second repeats within 10 % only for most networks (docs/benchmarks.md),
so a reference takes longer. PyTorch eager runs the network as the search built it
(channels_last, float32), on the CPU or a GPU; ``torch-cuda-graph`` replays it captured as
a CUDA graph (``latency.GraphReplay``, as trials with ``measurement.cuda_graph`` and that
device-model runtime do); ONNX Runtime runs the ``.onnx`` file
that `threshsearch export --onnx` wrote beside the result (or one exported now, where none
of that shape is there) with ``threads`` threads inside operators and one between them.
"""

from __future__ import annotations

import platform
import statistics
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from threshsearch.config import ConfigError, read_structured_file
from threshsearch.deploy import onnx_input_shape, onnx_session, require_onnx, to_onnx
from threshsearch.devicemodel.profiling import cpu_name
from threshsearch.devicemodel.runtimes import (
    CUDA_GRAPH_RUNTIME,
    CUDA_RUNTIME,
    GPU_RUNTIMES,
    RUNTIMES,
)
from threshsearch.errors import UserError
from threshsearch.latency import LatencySettings, estimate_latency, time_passes
from threshsearch.measure import resolve_device
from threshsearch.nn import build_model
from threshsearch.results.export import ResultFile, is_result_document, read_result
from threshsearch.search.objectives import PREDICTED_LATENCY
from threshsearch.search.reports import BASELINE

MEASURED = "measured_ms"
# The columns a timings CSV must have for the report to place its rows.
REQUIRED = ("network", "study", "trial", BASELINE, MEASURED, "device", "runtime")
TEXT = ("network", "file", "study", BASELINE, "config_hash", "search_device", "device_model",
        "device", "runtime", "runtime_version", "onnx_source", "threshsearch_version",
        "python", "not_comparable")  # empty is "" (none), never a missing number


@dataclass(frozen=True)
class TimingSettings:
    """How `threshsearch time` times each network."""

    runtime: str = "torch"
    device: str = "cpu"
    threads: int = 1
    batch_size: int = 1
    input_size: int = 32
    repeats: int = 3  # independent estimates; the network's figure is their median
    seconds: float = 1.0  # each estimate times at least this long

    def latency_settings(self) -> LatencySettings:
        return LatencySettings(batch_size=self.batch_size, min_time_s=self.seconds,
                               max_time_s=4 * self.seconds,
                               cuda_graph=self.runtime == CUDA_GRAPH_RUNTIME)


def result_files(sources: list[str | Path]) -> list[Path]:
    """The exported result files named or found (recursively) under the folders named;
    UserError for a named file that is not one, or a folder with none."""
    files: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir():
            found = [path for path in sorted(source.rglob("*.yaml"))
                     if _is_result(path)]
            if not found:
                raise UserError(f"{source}: no exported result file (*.yaml from "
                                f"`threshsearch export`) in this folder")
            files += found
        elif source.is_file():
            read_result(source)  # ConfigError naming the file when it is not one
            files.append(source)
        else:
            raise UserError(f"{source}: no such file or folder; expected exported result "
                            f"files or the folder `threshsearch export` wrote")
    return files


def _is_result(path: Path) -> bool:
    try:
        return is_result_document(read_structured_file(path))
    except ConfigError:
        return False


def machine_name(device: torch.device, threads: int) -> str:
    """The device in words: the GPU's name, or the CPU's model and the threads used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_name()} ({threads} threads)"


def _installed(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def network_name(document: dict[str, Any]) -> str:
    return (f"baseline {document[BASELINE]}" if document.get(BASELINE)
            else f"trial {document['study']['trial']}")


def search_figures(document: dict[str, Any]) -> dict[str, Any]:
    """What the search recorded about a network's latency: the measured figure (and where),
    the predicted one (and which device model predicted it)."""
    metrics = document.get("metrics") or {}
    model = document.get("device_model") or {}
    return {
        "search_latency_ms": metrics.get("latency_ms", np.nan),
        "search_device": document.get("device") or "",
        "predicted_latency_ms": metrics.get("predicted_latency_ms", np.nan),
        "device_model": model.get("id", "") if isinstance(model, dict) else str(model),
    }


def prediction_mismatch(document: dict[str, Any], settings: TimingSettings) -> str:
    """Why this timing is not comparable with the network's predicted latency (the device
    type, runtime, threads, batch, input size or dtype differ from the model's: "" when they
    agree or the result does not say what the model was made for). `time` runs float32."""
    model = document.get("device_model")
    if not isinstance(model, dict):
        return ""
    asked = {"device_kind": resolve_device(settings.device).type, "runtime": settings.runtime,
             "threads": settings.threads, "batch_size": settings.batch_size,
             "input_size": settings.input_size, "dtype": "float32"}
    return ", ".join(f"{name} {model[name]} predicted, {value} timed"
                     for name, value in asked.items()
                     if name in model and model[name] != value)


def _torch_estimates(result: ResultFile, settings: TimingSettings, device: torch.device
                     ) -> tuple[list[float], str]:
    model = build_model(result.architecture).to(device)
    return [estimate_latency(model, settings.input_size, device, settings.latency_settings()
                             ).latency_ms for _ in range(settings.repeats)], ""


def _onnx_estimates(path: Path, result: ResultFile, settings: TimingSettings
                    ) -> tuple[list[float], str]:
    shape = (settings.batch_size, 3, settings.input_size, settings.input_size)
    onnx_path = path.with_suffix(".onnx")
    session = onnx_session(onnx_path, settings.threads) if onnx_path.exists() else None
    source = "file"
    if session is None or onnx_input_shape(session) != shape:
        model = build_model(result.architecture)
        session = onnx_session(to_onnx(model, settings.input_size, settings.batch_size),
                               settings.threads)
        source = "exported now"
    feed = {session.get_inputs()[0].name:
            np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    estimates = []
    for _ in range(settings.repeats):
        passes = time_passes(lambda: session.run(None, feed), settings.latency_settings())
        estimates.append(float(passes.p10_s) * 1000)
    return estimates, source


def ratio(measured: float, reference: float) -> float:
    """measured / reference, NaN where the reference is missing or not positive."""
    return measured / reference if reference == reference and reference > 0 else np.nan


def time_results(paths: list[Path], settings: TimingSettings,
                 progress: Callable[[int, int, dict[str, Any]], None] | None = None
                 ) -> pd.DataFrame:
    """Time each exported result; one row per network, the search's figures beside the
    measurement; ``progress(index, total, row)`` after each."""
    if settings.runtime not in RUNTIMES:
        raise UserError(f"--runtime: {settings.runtime!r} is invalid; expected one of "
                        f"{', '.join(RUNTIMES)}")
    device = resolve_device(settings.device)
    if settings.runtime == "onnxruntime":
        require_onnx("--runtime onnxruntime")
        if device.type != "cpu":
            raise UserError(f"--device: {settings.device!r} is invalid with --runtime "
                            f"onnxruntime; its CPU provider is what is timed: use cpu")
    in_torch = settings.runtime in ("torch", *GPU_RUNTIMES)
    if settings.runtime in GPU_RUNTIMES and device.type != "cuda":
        raise UserError(f"--device: {settings.device!r} is invalid with --runtime "
                        f"{settings.runtime}; use cuda (on a machine with a CUDA GPU)")
    if settings.runtime == "torch" and device.type == "cuda":
        # PyTorch on a GPU is the runtime a GPU's device model is made for, by its name.
        settings = replace(settings, runtime=CUDA_RUNTIME)
    torch.set_num_threads(settings.threads)
    runtime_version = _installed("torch" if in_torch else "onnxruntime")
    machine = machine_name(device, settings.threads)
    rows = []
    for index, path in enumerate(paths, start=1):
        result = read_result(path)
        try:
            result.architecture.check_input_size(settings.input_size)
        except ConfigError as error:
            raise UserError(f"--input-size: {path}: {error}") from None
        document = result.document
        if in_torch:
            estimates, source = _torch_estimates(result, settings, device)
        else:
            estimates, source = _onnx_estimates(path, result, settings)
        figures = search_figures(document)
        mismatch = prediction_mismatch(document, settings)
        measured = statistics.median(estimates)
        row = {
            "network": network_name(document), "file": str(path),
            "study": document["study"]["name"], "trial": document["study"]["trial"],
            BASELINE: document.get(BASELINE) or "", "config_hash": document["config_hash"],
            **figures,
            MEASURED: measured, "measured_min_ms": min(estimates),
            "measured_max_ms": max(estimates), "repeats": len(estimates),
            "measured_vs_search": ratio(measured, figures["search_latency_ms"]),
            "measured_vs_predicted": np.nan if mismatch else ratio(
                measured, figures["predicted_latency_ms"]),
            "not_comparable": mismatch,
            "device": machine, "runtime": settings.runtime,
            "runtime_version": runtime_version, "onnx_source": source,
            "threads": settings.threads, "batch_size": settings.batch_size,
            "input_size": settings.input_size, "seconds_each": settings.seconds,
            "threshsearch_version": _installed("threshsearch"),
            "python": platform.python_version(),
        }
        rows.append(row)
        if progress:
            progress(index, len(paths), row)
    return pd.DataFrame(rows)


def format_table(frame: pd.DataFrame) -> str:
    """The side-by-side table to print: the search's figures, the measurement, the ratios."""
    shown = frame[["network", "search_latency_ms", "predicted_latency_ms", "device_model",
                   MEASURED, "measured_vs_search", "measured_vs_predicted"]]
    first = frame.iloc[0]
    header = (f"measured on {first['device']}, {first['runtime']} "
              f"{first['runtime_version']}, batch {first['batch_size']}, "
              f"{first['input_size']}x{first['input_size']} (median of {first['repeats']} "
              f"estimates of >= {first['seconds_each']:g} s each):")
    table = shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-")
    notes = [f"{row.network}: no measured/predicted ratio: {row.not_comparable}"
             for row in frame.itertuples(index=False) if row.not_comparable]
    return "\n".join([header, table, *notes])


def read_timings(path: str | Path) -> pd.DataFrame:
    """A CSV `threshsearch time` wrote (UserError naming it and what is missing otherwise)."""
    try:
        frame = pd.read_csv(path, dtype=dict.fromkeys(TEXT, str))
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise UserError(f"--timings: {path} cannot be read as a CSV ({error})") from None
    missing = [column for column in REQUIRED if column not in frame.columns]
    if missing:
        raise UserError(f"--timings: {path} lacks the columns {', '.join(missing)}; expected "
                        f"a CSV written by `threshsearch time`")
    for column in TEXT:
        if column in frame.columns:
            frame[column] = frame[column].fillna("")
    return frame


@dataclass(frozen=True)
class DeviceTimings:
    """A timings CSV's measurements of one study's networks, by where they were taken."""

    trials: dict[str, dict[int, float]]  # label (device, runtime) -> trial -> ms
    baselines: dict[str, dict[str, float]]  # label -> baseline name -> ms

    @classmethod
    def of_study(cls, frame: pd.DataFrame, study_name: str, baselines_study: str | None,
                 source: str = "--timings") -> DeviceTimings:
        """The rows of ``study_name`` (its trials) and of ``baselines_study`` (its
        baselines); UserError when none is."""
        trials: dict[str, dict[int, float]] = {}
        baselines: dict[str, dict[str, float]] = {}
        for row in frame.itertuples(index=False):
            label = f"{row.device}, {row.runtime}"
            name = getattr(row, BASELINE)
            if name and str(row.study) == baselines_study:
                baselines.setdefault(label, {})[name] = float(getattr(row, MEASURED))
            elif not name and str(row.study) == study_name:
                trials.setdefault(label, {})[int(row.trial)] = float(getattr(row, MEASURED))
        if not trials and not baselines:
            raise UserError(f"{source}: none of its networks is from study {study_name}")
        return cls(trials, baselines)

    @property
    def labels(self) -> list[str]:
        return sorted({*self.trials, *self.baselines})


def timings_trace(timings: DeviceTimings | None, values: dict[int, dict[str, float]],
                  x: str, y: str, latency: str | None) -> list[go.Scatter]:
    """One trace per device of ``timings``: the timed trials at their measured latency
    (``values``: each trial's other metrics), where ``latency`` (measured or predicted in the
    search) is one of the axes."""
    if timings is None or latency not in (x, y):
        return []
    said = "predicted" if latency == PREDICTED_LATENCY else "in the search"
    traces = []
    for label in timings.labels:
        measured = {number: ms for number, ms in timings.trials.get(label, {}).items()
                    if number in values}
        points = [{**values[number], latency: ms} for number, ms in measured.items()]
        if not points:
            continue
        traces.append(go.Scatter(
            x=[point[x] for point in points], y=[point[y] for point in points],
            mode="markers", name=f"timed on {label}",
            text=[f"trial {number}: {values[number][latency]:.4g} ms {said}, "
                  f"{ms:.4g} ms on {label}" for number, ms in measured.items()],
            marker={"symbol": "triangle-up-open", "size": 11, "color": "darkorange"},
            meta={"role": "timed", "device": label}))
    return traces
