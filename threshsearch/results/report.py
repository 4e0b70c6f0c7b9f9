"""The study report: one self-contained HTML file of plotly figures (plotly.js inlined, so it
opens offline): the Pareto front for each pair of objectives with every trial behind it,
the study's baselines (the paper's models trained under its recipe; untrained presets,
profiled only, where a study has none) as named points and the confirmed figures with their
error bars; the search's provisional verdict (which front members beat which baseline, by
how much) and the confirmation's (results/confirmed.py); the learning curves (with where
early stopping cut them), parallel coordinates, hyperparameter importances, objective and
hypervolume histories, and a table of the front. Networks timed on a deployment device
(`threshsearch time`'s CSV, results/timings.py) appear beside the search's figures."""

from __future__ import annotations

import html
import itertools
import math
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from threshsearch.api import profile
from threshsearch.confirm.verdict import Confirmation, cost_objectives, load_confirmation
from threshsearch.errors import UserError
from threshsearch.results.confirmed import (
    NOT_CONFIRMED,
    confirmed_trace,
    outcome_table,
    summary_table,
)
from threshsearch.results.tables import front_table, threshold_of, verdict_table
from threshsearch.results.timings import DeviceTimings, timings_trace
from threshsearch.results.worktime import worker_time_figure
from threshsearch.search.baselines import baseline_trials, load_baselines_study
from threshsearch.search.evidence import LEARNING_CURVE
from threshsearch.search.objectives import DEVICE_MODEL, METRICS, PREDICTED_LATENCY
from threshsearch.search.retime import retimed_records
from threshsearch.search.storage import trial_status

REFERENCE_PRESETS = ("threshnet79", "threshnet95", "hardnet85", "densenet121")
PROFILE_METRICS = ("params", "madd", "flops", "memrw_mib", "cio", "activation_mib")
LATENCY_METRICS = ("latency_ms", PREDICTED_LATENCY)  # re-timed points go beside either
LOG_SPAN = 20  # an axis whose points span more than this ratio is drawn on a log scale
THRESHOLD_CAP = 1024  # the colour scale's top when no finite threshold was sampled
SYMBOLS = {"complete": "circle", "duplicate": "circle-open", "pruned": "x",
           "infeasible": "square-open", "failed": "diamond-open"}


def preset_metrics(num_classes: int, input_size: int) -> dict[str, dict[str, float]]:
    """Profile metrics of the reference presets for the study's data (no training needed)."""
    metrics = {}
    for name in REFERENCE_PRESETS:
        figures = profile(name, input_size, num_classes)
        metrics[name] = {key: getattr(figures, key) for key in PROFILE_METRICS}
    return metrics


def _colour_scale(trials: list[FrozenTrial]) -> tuple[float, dict[int, float]]:
    """The top of the threshold colour scale and each trial's colour value: an infinite
    threshold (all stages dense) is drawn a quarter above the largest finite one."""
    finite = [v for v in (threshold_of(t) for t in trials) if math.isfinite(v)]
    top = max(finite, default=THRESHOLD_CAP) * 1.25 or 1.0
    return top, {t.number: min(threshold_of(t), top) for t in trials}


def pair_front(study: optuna.Study, x: str, y: str) -> list[FrozenTrial]:
    """The complete trials that no other complete trial beats on both ``x`` and ``y``,
    sorted by ``x``: the front of this pair of objectives."""
    names = list(study.metric_names or [])
    signs = {name: (-1 if direction == optuna.study.StudyDirection.MAXIMIZE else 1)
             for name, direction in zip(names, study.directions, strict=True)}
    points = [(t, signs.get(x, 1) * _metric(t, x), signs.get(y, 1) * _metric(t, y))
              for t in pareto_candidates(study, x, y)]
    front = [t for t, a, b in points
             if not any(c <= a and d <= b and (c, d) != (a, b) for _, c, d in points)]
    return sorted(front, key=lambda t: _metric(t, x))


def pareto_candidates(study: optuna.Study, x: str, y: str) -> list[FrozenTrial]:
    return [t for t in study.trials if t.state == TrialState.COMPLETE
            and t.user_attrs.get("duplicate_of") is None
            and _metric(t, x) is not None and _metric(t, y) is not None]


def _metric(trial: FrozenTrial, name: str) -> float | None:
    value = trial.user_attrs.get(name)
    return float(value) if isinstance(value, int | float) else None


def pareto_scatter(study: optuna.Study, x: str, y: str, presets: dict[str, dict[str, float]],
                   baselines: dict[str, FrozenTrial] | None = None,
                   confirmation: Confirmation | None = None,
                   timings: DeviceTimings | None = None) -> go.Figure:
    """Every trial with both metrics (marker shape: its status; colour: its threshold), the
    front as a line, the presets where both metrics are profile metrics, the confirmed
    networks with their error bars, and the networks timed on a deployment device."""
    figure = go.Figure()
    top, colours = _colour_scale(study.trials)
    by_status: dict[str, list[FrozenTrial]] = {}
    for trial in study.trials:
        if _metric(trial, x) is not None and _metric(trial, y) is not None:
            by_status.setdefault(trial_status(trial), []).append(trial)
    for status, trials in by_status.items():
        figure.add_trace(go.Scatter(
            x=[_metric(t, x) for t in trials], y=[_metric(t, y) for t in trials],
            mode="markers", name=f"{status} ({len(trials)})",
            text=[f"trial {t.number}<br>hash {t.user_attrs.get('config_hash')}"
                  for t in trials],
            marker={"symbol": SYMBOLS.get(status, "circle"), "size": 9,
                    "color": [colours[t.number] for t in trials], "colorscale": "Viridis",
                    "cmin": 0, "cmax": top,
                    "colorbar": {"title": "threshold<br>(top: inf)"}, "line": {"width": 1}},
            meta={"role": "trials", "status": status},
        ))
    front = pair_front(study, x, y)
    if front:
        figure.add_trace(go.Scatter(
            x=[_metric(t, x) for t in front], y=[_metric(t, y) for t in front],
            mode="lines", name="Pareto front", line={"color": "crimson", "dash": "dot"},
            meta={"role": "front"}, hoverinfo="skip"))
    latency = next((name for name in (x, y) if name in LATENCY_METRICS), None)
    # Beside predictions, only re-timings of the device and settings the model is of.
    retimed = {number: record for number, record in retimed_records(study).items()
               if (record.get(DEVICE_MODEL) is not None) == (latency == PREDICTED_LATENCY)}
    if latency and retimed:
        # The front's latency measured again alone, beside the figure from the search
        # (measured there, or predicted by the study's device model).
        members = [t for t in study.trials if t.number in retimed
                   and _metric(t, x) is not None and _metric(t, y) is not None]

        def value(trial: FrozenTrial, name: str) -> float:
            return retimed[trial.number]["latency_ms"] if name == latency \
                else _metric(trial, name)

        said = "predicted" if latency == PREDICTED_LATENCY else "in the search"
        figure.add_trace(go.Scatter(
            x=[value(t, x) for t in members], y=[value(t, y) for t in members],
            mode="markers", name="front, re-timed alone",
            text=[f"trial {t.number}: {_metric(t, latency):.4g} ms {said}, "
                  f"{retimed[t.number]['latency_ms']:.4g} ms re-timed" for t in members],
            marker={"symbol": "diamond-open", "size": 11, "color": "crimson"},
            meta={"role": "retimed"}))
    plotted = {t.number: {x: _metric(t, x), y: _metric(t, y)} for t in study.trials
               if _metric(t, x) is not None and _metric(t, y) is not None}
    figure.add_traces(timings_trace(timings, plotted, x, y, latency))
    trained = {name: t for name, t in (baselines or {}).items()
               if _metric(t, x) is not None and _metric(t, y) is not None}
    if trained:
        figure.add_trace(go.Scatter(
            x=[_metric(t, x) for t in trained.values()],
            y=[_metric(t, y) for t in trained.values()],
            mode="markers+text", text=list(trained), textposition="top center",
            name="baselines (trained under the study's recipe)",
            marker={"symbol": "star", "size": 14, "color": "black"},
            meta={"role": "baselines"}))
    elif x in PROFILE_METRICS and y in PROFILE_METRICS:
        figure.add_trace(go.Scatter(
            x=[values[x] for values in presets.values()],
            y=[values[y] for values in presets.values()],
            mode="markers+text", text=list(presets), textposition="top center",
            name="presets", marker={"symbol": "star", "size": 14, "color": "black"},
            meta={"role": "presets"}))
    confirmed = confirmed_trace(confirmation, x, y)
    if confirmed is not None:
        figure.add_trace(confirmed)
    figure.update_layout(title=f"{y} against {x}", xaxis_title=x, yaxis_title=y,
                         legend={"orientation": "h"},
                         xaxis_type=_axis_type(figure, "x", x),
                         yaxis_type=_axis_type(figure, "y", y))
    return figure


def _axis_type(figure: go.Figure, axis: str, metric: str) -> str:
    """log for a cost whose points span more than LOG_SPAN (baselines tens of times costlier
    than the trials, say), so neither crowds the other into a corner."""
    if metric not in METRICS or METRICS[metric].direction != "minimize":
        return "linear"
    values = [v for trace in figure.data for v in (getattr(trace, axis) or ())
              if isinstance(v, int | float) and v > 0]
    return "log" if values and max(values) > LOG_SPAN * min(values) else "linear"


def learning_curves(study: optuna.Study, metric: str = "val_accuracy") -> go.Figure | str:
    """``metric`` per epoch for every trained trial, from the learning curve each trial keeps
    in the storage: complete trials solid, early-stopped ones dotted and ending at the rung
    that stopped them."""
    figure = go.Figure()
    drawn = 0
    for trial in study.trials:
        curve = [entry for entry in trial.user_attrs.get(LEARNING_CURVE) or []
                 if metric in entry]
        if not curve:
            continue
        status = trial_status(trial)
        figure.add_trace(go.Scatter(
            x=[entry["epoch"] for entry in curve], y=[entry[metric] for entry in curve],
            mode="lines+markers", name=f"trial {trial.number} ({status})",
            line={"dash": "solid" if status == "complete" else "dot", "width": 1},
            marker={"size": 4}, meta={"role": "curve", "status": status}))
        drawn += 1
    if not drawn:
        return "no trial has reported an epoch yet"
    figure.update_layout(title=f"{metric} per epoch ({drawn} trials; dotted: stopped early)",
                         xaxis_title="epoch", yaxis_title=metric, showlegend=False)
    return figure


def _reference_point(study: optuna.Study) -> list[float]:
    complete = [t.values for t in study.trials if t.state == TrialState.COMPLETE]
    point = []
    for index, direction in enumerate(study.directions):
        values = [v[index] for v in complete]
        spread = (max(values) - min(values)) or abs(max(values)) or 1.0
        if direction == optuna.study.StudyDirection.MAXIMIZE:
            point.append(min(values) - 0.1 * spread)
        else:
            point.append(max(values) + 0.1 * spread)
    return point


def study_figures(study: optuna.Study, num_classes: int, input_size: int,
                  timings: DeviceTimings | None = None) -> list[tuple[str, go.Figure | str]]:
    """(title, figure) pairs in report order; a string instead of a figure says why a
    figure is missing (too few trials, say). ``timings``: networks timed on a deployment
    device, shown beside the search's figures."""
    vis = optuna.visualization
    names = list(study.metric_names or [])
    baselines = baseline_trials(load_baselines_study(study))
    # Untrained presets stand in only for a study without trained baselines.
    presets = {} if baselines else preset_metrics(num_classes, input_size)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    confirmation = load_confirmation(study)
    sections: list[tuple[str, go.Figure | str]] = []
    for x, y in itertools.combinations(names, 2):
        sections.append((f"Pareto front: {y} against {x}",
                         pareto_scatter(study, x, y, presets, baselines, confirmation,
                                        timings)))
    if len(names) == 1:
        sections.append((f"{names[0]} against params", pareto_scatter(
            study, "params", names[0], presets, baselines, confirmation)))
    sections.append(("The Pareto front", front_table(study, baselines, timings)))
    sections.append(("Verdict, provisional (validation accuracy, one seed): the front "
                     "against the baselines", verdict_table(study, baselines)))
    if confirmation is None:
        sections.append(("Confirmed", NOT_CONFIRMED))
    else:
        sections.append(("Confirmed: retrained from scratch, tested on the test split",
                         summary_table(confirmation, cost_objectives(study))))
        sections.append(("Confirmed verdict: each network against each baseline",
                         outcome_table(confirmation)))
    sections.append(("Learning curves", learning_curves(study)))
    sections.append(("Where the workers' time went",
                     worker_time_figure([*study.trials, *baselines.values()])))
    targets = [(name, (lambda t, i=index: t.values[i])) for index, name in enumerate(names)]
    if complete:
        name, target = targets[0]
        sections.append((f"Parallel coordinates (colour: {name})",
                         vis.plot_parallel_coordinate(study, target=target, target_name=name)))
        for name, target in targets:
            sections.append((f"History of {name}", vis.plot_optimization_history(
                study, target=target, target_name=name)))
        if len(names) > 1:
            sections.append(("Hypervolume over trials", vis.plot_hypervolume_history(
                study, reference_point=_reference_point(study))))
    else:
        sections.append(("Histories", "no completed trial yet"))
    if len(complete) >= 2 and any(t.params for t in complete):
        for name, target in targets:
            try:
                # fANOVA: direction-agnostic, unlike Optuna's default evaluator.
                figure = vis.plot_param_importances(
                    study, target=target, target_name=name,
                    evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
            except (RuntimeError, ValueError) as error:  # e.g. a parameter never varied
                figure = f"importances unavailable: {error}"
            sections.append((f"Hyperparameter importance for {name}", figure))
    else:
        sections.append(("Hyperparameter importance", "needs two or more completed trials"))
    return sections


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;}} .note{{color:#666;}}</style>
<script>{plotly_js}</script></head>
<body><h1>{title}</h1><p class="note">{subtitle}</p>
{sections}
<script>
document.querySelectorAll("script.figure").forEach(function (node) {{
  var spec = JSON.parse(node.textContent);
  Plotly.newPlot(node.dataset.target, spec.data, spec.layout, {{responsive: true}});
}});
</script></body></html>
"""


def write_report(study: optuna.Study, out: str | Path, num_classes: int = 10,
                 input_size: int = 32, png_dir: str | Path | None = None,
                 timings: DeviceTimings | None = None) -> Path:
    """Write the report to ``out``; with ``png_dir``, also each figure as a PNG (needs
    kaleido and a Chrome or Chromium browser); ``timings``: networks timed on a deployment
    device (`threshsearch time`), beside the search's figures."""
    from plotly.offline import get_plotlyjs

    sections = study_figures(study, num_classes, input_size, timings)
    parts = []
    for index, (title, figure) in enumerate(sections):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(figure, str):
            parts.append(f'<p class="note">{html.escape(figure)}</p>')
            continue
        spec = figure.to_json().replace("</", "<\\/")
        parts.append(f'<div id="figure-{index}"></div>'
                     f'<script type="application/json" class="figure" '
                     f'data-target="figure-{index}">{spec}</script>')
    counts = Counter(trial_status(trial) for trial in study.trials)
    subtitle = (f"{len(study.trials)} trials: "
                + ", ".join(f"{count} {status}" for status, count in counts.items())
                + f". Presets profiled at {input_size}x{input_size}, {num_classes} classes.")
    page = _PAGE.format(title=html.escape(f"threshsearch study {study.study_name}"),
                        subtitle=html.escape(subtitle), plotly_js=get_plotlyjs(),
                        sections="\n".join(parts))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    if png_dir is not None:
        write_pngs([(t, f) for t, f in sections if not isinstance(f, str)], Path(png_dir))
    return out


def write_pngs(sections: list[tuple[str, Any]], folder: Path) -> list[Path]:
    try:
        import kaleido  # noqa: F401  (plotly's static image engine)
    except ImportError:
        raise UserError("--png: static images need kaleido and a Chrome or Chromium browser: "
                        "pip install kaleido; the HTML report was written") from None
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (_, figure) in enumerate(sections):
        path = folder / f"figure-{index:02d}.png"
        try:
            figure.write_image(path)
        except Exception as error:  # kaleido raises its own types when no browser is found
            summary = " ".join(str(error).split())[:200]
            raise UserError(f"--png: kaleido could not render ({summary}); it needs a Chrome "
                            "or Chromium browser; the HTML report was written") from None
        paths.append(path)
    return paths
