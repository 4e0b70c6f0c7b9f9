"""The report's tables: the Pareto front (with its re-timings and deployment timings beside
the search's figures, then the baselines) and the search's provisional verdict on the
baselines."""

from __future__ import annotations

import math
from typing import Any

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from threshsearch.config import ArchitectureConfig
from threshsearch.results.export import pareto_trials
from threshsearch.results.timings import DeviceTimings
from threshsearch.search.baselines import verdict
from threshsearch.search.retime import retimed_records


def threshold_of(trial: FrozenTrial) -> float:
    """A trial's threshold (inf: every stage dense)."""
    value = (trial.user_attrs.get("architecture") or {}).get("threshold", math.inf)
    return math.inf if value == "inf" else float(value)


def _modes(trial: FrozenTrial) -> str:
    data = trial.user_attrs.get("architecture")
    return " ".join(mode[0].upper() for mode in ArchitectureConfig.from_dict(data).modes) \
        if data else ""


def verdict_table(study: optuna.Study, baselines: dict[str, FrozenTrial]) -> go.Figure | str:
    """For each baseline, the front members that dominate it and by how much."""
    if not baselines:
        return "this study has no trained baselines (the space's baselines: [] or not yet run)"
    names = list(study.metric_names or [])
    verdicts = verdict(pareto_trials(study), baselines, names,
                       [d.name.lower() for d in study.directions])
    rows = []
    for item in verdicts:
        if not item.dominated_by:
            rows.append([item.baseline, "none", "no network of the front dominates it"])
        for comparison in item.dominated_by:
            rows.append([item.baseline, f"trial {comparison.trial}", ", ".join(
                f"{value} {metric}" for metric, value in comparison.differences.items())])
    figure = go.Figure(go.Table(header={"values": ["baseline", "dominated by", "by"]},
                                cells={"values": list(zip(*rows, strict=True))}))
    beaten = sum(bool(item.dominated_by) for item in verdicts)
    figure.update_layout(title=f"{beaten} of {len(verdicts)} baselines dominated by the front")
    return figure


def front_table(study: optuna.Study, baselines: dict[str, FrozenTrial] | None = None,
                timings: DeviceTimings | None = None) -> go.Figure:
    """The front, then the baselines for reference; with ``timings``, a column per device
    the networks were timed on."""
    names = list(study.metric_names or [])
    front = pareto_trials(study)
    retimed = retimed_records(study)
    labels = timings.labels if timings else []
    extra = [*(["latency_ms re-timed"] if retimed else []),
             *(f"latency_ms on {label}" for label in labels)]
    columns = ["trial", *names, *extra, "params", "threshold", "modes", "config hash"]

    def cell(values: dict[Any, float], key: Any) -> str:
        return f"{values[key]:.4g}" if key in values else "-"

    rows = [[t.number, *[f"{v:.4g}" for v in t.values],
             *([f"{retimed[t.number]['latency_ms']:.4g}" if t.number in retimed else "-"]
               if retimed else []),
             *(cell(timings.trials.get(label, {}), t.number) for label in labels),
             t.user_attrs.get("params"),
             f"{threshold_of(t):g}", _modes(t), t.user_attrs.get("config_hash")] for t in front]
    rows += [[f"baseline {name}", *[f"{v:.4g}" for v in t.values],
              *(["-"] if retimed else []),
              *(cell(timings.baselines.get(label, {}), name) for label in labels),
              t.user_attrs.get("params"), f"{threshold_of(t):g}",
              _modes(t), t.user_attrs.get("config_hash")]
             for name, t in sorted((baselines or {}).items())]
    figure = go.Figure(go.Table(header={"values": columns},
                                cells={"values": list(zip(*rows, strict=True)) if rows else
                                       [[] for _ in columns]}))
    figure.update_layout(title=f"The Pareto front: {len(front)} networks")
    return figure
