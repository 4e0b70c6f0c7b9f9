"""The confirmed figures in the results: the report's "Confirmed" section (each network's
test accuracy over its seeds, its costs, its outcome against each baseline), the Pareto
plots' confirmed markers with their error bars, and the figures an exported file or the
trials table carries."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from threshsearch.confirm.verdict import ACCURACY_OBJECTIVES, Confirmation, Summary

NOT_CONFIRMED = ("not confirmed yet: the front above is the search's (validation accuracy of "
                 "one seed, on the split it was chosen by); `threshsearch confirm` retrains "
                 "it and the baselines from scratch with several seeds and tests them")


def _axis(summary: Summary, metric: str) -> tuple[float, float, float] | None:
    """(value, minus, plus) of a plot axis: test accuracy's mean and 95 % interval for an
    accuracy objective, a cost's mean and range over the seeds otherwise."""
    if metric in ACCURACY_OBJECTIVES:
        interval = summary.interval
        if interval is None:
            return summary.mean, 0.0, 0.0
        return summary.mean, summary.mean - interval.low, interval.high - summary.mean
    figure = summary.costs.get(metric)
    if figure is None:
        return None
    return figure.mean, figure.mean - figure.low, figure.high - figure.mean


def confirmed_trace(confirmation: Confirmation | None, x: str, y: str) -> go.Scatter | None:
    """The confirmed networks and baselines at their confirmed figures, with error bars: a
    95 % interval on test accuracy, the range over the seeds on a measured cost."""
    if confirmation is None:
        return None
    points = [(s, _axis(s, x), _axis(s, y)) for s in confirmation.summaries.values()]
    points = [(s, a, b) for s, a, b in points if a is not None and b is not None]
    if not points:
        return None
    return go.Scatter(
        x=[a[0] for _, a, _ in points], y=[b[0] for _, _, b in points],
        error_x={"type": "data", "symmetric": False, "array": [a[2] for _, a, _ in points],
                 "arrayminus": [a[1] for _, a, _ in points]},
        error_y={"type": "data", "symmetric": False, "array": [b[2] for _, _, b in points],
                 "arrayminus": [b[1] for _, _, b in points]},
        mode="markers", name="confirmed (test accuracy: mean, 95 % interval)",
        text=[f"{s.network}: {s.describe_accuracy()}" for s, _, _ in points],
        marker={"symbol": "diamond", "size": 10, "color": "darkorange"},
        meta={"role": "confirmed"})


def summary_table(confirmation: Confirmation, cost_metrics: list[str]) -> go.Figure:
    """One row per confirmed network: seeds, test accuracy, interval, costs."""
    columns = ["network", "seeds", "test accuracy % (mean ± sd)", "95 % interval",
               "val accuracy % (mean)", *cost_metrics]
    rows = []
    for summary in confirmation.summaries.values():
        interval = summary.interval
        sd = f" ± {100 * summary.sd:.2f}" if summary.sd is not None else ""
        rows.append([
            summary.network, summary.n, f"{100 * summary.mean:.2f}{sd}",
            f"[{100 * interval.low:.2f}, {100 * interval.high:.2f}]" if interval else
            "none (one seed)" if summary.n == 1 else "none (no spread)",
            f"{100 * summary.to_dict()['val_accuracy_mean']:.2f}",
            *[summary.costs[m].describe() if m in summary.costs else "-"
              for m in cost_metrics]])
    figure = go.Figure(go.Table(header={"values": columns},
                                cells={"values": list(zip(*rows, strict=True))}))
    figure.update_layout(title=f"Confirmed ({confirmation.protocol.get('description')}), "
                               f"test split")
    return figure


def outcome_table(confirmation: Confirmation) -> go.Figure | str:
    """One row per (baseline, network): the outcome, the accuracy difference and its
    interval, the cost ratios."""
    if not confirmation.comparisons:
        return "no baseline was confirmed beside the networks, so there is nothing to compare"
    rows = [[c.baseline, c.network, c.outcome,
             f"{100 * c.difference:+.2f}",
             f"[{100 * c.interval.low:+.2f}, {100 * c.interval.high:+.2f}]" if c.interval
             else "none",
             ", ".join(f"{ratio:.2f}x {metric}" for metric, ratio in c.ratios.items())]
            for c in sorted(confirmation.comparisons, key=lambda c: c.baseline)]
    figure = go.Figure(go.Table(
        header={"values": ["baseline", "network", "outcome", "test acc. difference (pt)",
                           "95 % interval (Welch)", "cost, network / baseline"]},
        cells={"values": list(zip(*rows, strict=True))}))
    beats = sum(c.outcome == "beats" for c in confirmation.comparisons)
    figure.update_layout(title=f"{beats} of {len(confirmation.comparisons)} comparisons: "
                               f"the network beats the baseline beyond its interval")
    return figure


def confirmed_columns(summary: Summary | None) -> dict[str, Any]:
    """The trials table's confirmed columns for one row (empty figures: not confirmed)."""
    if summary is None:
        return {"confirmed_seeds": 0, "confirmed_test_accuracy_mean": None,
                "confirmed_test_accuracy_sd": None, "confirmed_ci95_low": None,
                "confirmed_ci95_high": None}
    interval = summary.interval
    return {"confirmed_seeds": summary.n, "confirmed_test_accuracy_mean": summary.mean,
            "confirmed_test_accuracy_sd": summary.sd,
            "confirmed_ci95_low": interval.low if interval else None,
            "confirmed_ci95_high": interval.high if interval else None}
