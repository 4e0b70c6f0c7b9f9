"""The report's account of the workers' time: per trial, phase by phase, and the study's
shares (what trained, what measured, what waited)."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from threshsearch.search.reports import BASELINE
from threshsearch.search.worktime import OUTSIDE, PHASES, WORKER_TIME, WorkTally, outside_s


def work_tally(trials: Sequence[FrozenTrial]) -> WorkTally:
    """The accounts of the trials that recorded one, summed."""
    tally = WorkTally()
    for trial in trials:
        if trial.user_attrs.get(WORKER_TIME):
            tally.add(trial.user_attrs[WORKER_TIME], float(trial.user_attrs.get("wall_s", 0)))
    return tally


def _label(trial: FrozenTrial) -> str:
    baseline = trial.user_attrs.get(BASELINE)
    return baseline if baseline else f"trial {trial.number}"


def worker_time_figure(trials: Sequence[FrozenTrial]) -> go.Figure | str:
    """Seconds of each trial's worker slot by phase, stacked; the title gives the shares."""
    accounted = [t for t in trials if t.user_attrs.get(WORKER_TIME)]
    if not accounted:
        return "no trial recorded its worker time (a study made before trials kept that account)"
    tally = work_tally(accounted)
    labels = [_label(trial) for trial in accounted]
    figure = go.Figure()
    for phase in [*PHASES, OUTSIDE]:
        seconds = []
        for trial in accounted:
            account = trial.user_attrs[WORKER_TIME]
            if phase == OUTSIDE:
                seconds.append(outside_s(account, float(trial.user_attrs.get("wall_s", 0))))
            else:
                seconds.append(float(account.get(phase) or 0.0))
        if any(seconds):
            what = PHASES.get(phase, "actor start, scheduling, the driver's own work")
            figure.add_bar(name=phase, x=labels, y=seconds,
                           hovertemplate=f"{phase} ({what}): %{{y:.2f}} s<extra>%{{x}}</extra>")
    figure.update_layout(
        barmode="stack", yaxis_title="seconds of a worker slot", height=420,
        title=f"training + evaluation {tally.training_share():.1%} of "
              f"{tally.total_s:.0f} worker-seconds: {tally.describe()}")
    return figure
