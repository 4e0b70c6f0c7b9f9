"""The trials of a study as a pandas DataFrame, one row per trial, with the confirmed
figures (``confirmed_*``) of the networks a confirmation retrained."""

from __future__ import annotations

import optuna
import pandas as pd

from threshsearch.confirm.verdict import load_confirmation
from threshsearch.results.confirmed import confirmed_columns
from threshsearch.search.baselines import load_baselines_study
from threshsearch.search.evidence import LEARNING_CURVE
from threshsearch.search.objectives import METRICS
from threshsearch.search.reports import BASELINE, LATENCY, THROUGHPUT, WARNINGS
from threshsearch.search.storage import trial_status

# Nested records that belong in exported files, not in a table.
_NESTED = ("architecture", "recipe", "versions", LEARNING_CURVE, LATENCY, THROUGHPUT)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """Number, status, state, timing, the searched parameters (``param_*``), every measured
    metric and bookkeeping attributes (config hash, reason, duplicate_of, node, ...); then
    the study's baselines, whose ``baseline`` column names their preset (empty for the
    search's own trials, whose numbers are the study's); last the confirmed figures of its
    latest confirmation (``confirmed_seeds`` 0 where a network was not confirmed)."""
    frame = _study_frame(study)
    frame.insert(1, BASELINE, "")
    companion = load_baselines_study(study)
    if companion is not None and companion.trials:
        extra = _study_frame(companion)
        extra = extra.drop(columns=[BASELINE]).assign(**{BASELINE: [
            t.user_attrs.get(BASELINE, "") for t in companion.trials]})
        frame = pd.concat([frame, extra], ignore_index=True)
    confirmation = load_confirmation(study)
    rows = [confirmed_columns(None if confirmation is None else
                              confirmation.of_baseline(name) if name else
                              confirmation.of_trial(int(number)))
            for name, number in zip(frame[BASELINE], frame["number"], strict=True)]
    confirmed = pd.DataFrame(rows, columns=list(confirmed_columns(None)), index=frame.index)
    frame = pd.concat([frame, confirmed], axis=1)
    for column in frame.select_dtypes(include="object").columns:
        kinds = {type(value) for value in frame[column] if value is not None and value == value}
        if len(kinds) > 1:  # a categorical of 0, 64 and "inf": one type, for parquet
            frame[column] = frame[column].map(
                lambda v: None if v is None or v != v else str(v))
    return frame


def _study_frame(study: optuna.Study) -> pd.DataFrame:
    frame = study.trials_dataframe(
        attrs=("number", "state", "datetime_start", "datetime_complete", "duration",
               "params", "user_attrs"), multi_index=False)
    if frame.empty:
        return pd.DataFrame(columns=["number", "status", "state", *METRICS])
    frame = frame.drop(columns=[f"user_attrs_{name}" for name in _NESTED
                                if f"user_attrs_{name}" in frame.columns])
    frame = frame.rename(columns=lambda column: column.replace("user_attrs_", "")
                         .replace("params_", "param_"))
    frame["duration_s"] = frame.pop("duration").dt.total_seconds()
    if WARNINGS in frame.columns:
        frame[WARNINGS] = frame[WARNINGS].map(
            lambda items: "; ".join(items) if isinstance(items, list) else items)
    statuses = [trial_status(trial) for trial in study.trials]
    frame = frame.drop(columns=["status"], errors="ignore")
    frame.insert(1, "status", statuses)
    for metric in METRICS:
        if metric not in frame.columns:
            frame[metric] = float("nan")
    return frame
