"""Re-timing the front: once a search is over, each Pareto-optimal network is timed again,
one after another, with the machine to itself, on a Ray worker with a trial's resources (so
on a cluster it runs where trials ran). The figures go to the study's user attribute
``latency_retimed`` ({trial number: latency record}); a trial's own ``latency_ms`` stays the
one measured during the search (and its ``predicted_latency_ms`` the device model's), and each
record says which measurement it is."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from threshsearch.devicelock import lock_env
from threshsearch.search.objectives import DEVICE_MODEL, PREDICTED_LATENCY
from threshsearch.search.storage import pareto_trials
from threshsearch.search.trial import retime_network

RETIMED = "latency_retimed"  # study user attr: {str(trial number): latency record}


@dataclass(frozen=True)
class Retimed:
    trial: int
    search_ms: float  # the trial's latency_ms, measured during the search (nan: none was)
    predicted_ms: float  # its predicted_latency_ms, from the study's device model (nan: none)
    retimed_ms: float
    record: dict[str, Any]

    def describe(self) -> str:
        said = [f"{label} {value:.4g} ms" for label, value in (
            ("latency during the search", self.search_ms), ("predicted", self.predicted_ms))
            if not math.isnan(value)]
        ratios = [f"{self.retimed_ms / value:.2f}x" for value in
                  (self.search_ms, self.predicted_ms) if not math.isnan(value)]
        return (f"trial {self.trial:>3}  {', '.join(said)}, re-timed {self.retimed_ms:.4g} ms"
                + (f" ({', '.join(ratios)})" if ratios else ""))


def retimed_records(study: optuna.Study) -> dict[int, dict[str, Any]]:
    return {int(number): record for number, record in
            (study.user_attrs.get(RETIMED) or {}).items()}


def record_retimed(study: optuna.Study, number: int, record: dict[str, Any]) -> None:
    """Add trial ``number``'s record to the study's, read again just before: another process
    re-timing the same study meanwhile keeps its records (all but one written in the same
    instant: a read and a write, not a transaction)."""
    records = retimed_records(study) | {number: record}
    study.set_user_attr(RETIMED, {str(key): value for key, value in sorted(records.items())})


def retime_front(study: optuna.Study, input_size: int, quiet: bool = False,
                 threads: int | None = None, device_model: str | None = None
                 ) -> list[Retimed]:
    """Time the front again through Ray (``ray.init`` must have run), with the device,
    batch size, measurement settings and resources the study was searched with; on
    ``threads`` threads (default: the trials' cpus). ``device_model``: the id of the model
    whose predictions this measures (its device and settings): the records say so, and only
    such records stand beside the predictions."""
    import ray

    data = study.user_attrs.get("data") or {}
    measurement = study.user_attrs.get("measurement") or {}
    resources = study.user_attrs.get("resources") or {"cpus": 1, "gpus": 0}
    task = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"])(retime_network)
    members = [t for t in pareto_trials(study) if "architecture" in t.user_attrs]
    done = []
    if members and not quiet:
        print(f"re-timing the {len(members)} networks of the front, one at a time")
    for trial in members:
        # One at a time: each waits for the last, so no two measurements share the machine.
        record = ray.get(task.remote(trial.user_attrs["architecture"], input_size,
                                     data.get("device", "auto"), measurement,
                                     data.get("latency_batch_size", 1),
                                     threads or resources["cpus"],
                                     lock_env()))
        if device_model:
            record[DEVICE_MODEL] = device_model
        record_retimed(study, trial.number, record)
        predicted = trial.user_attrs.get(PREDICTED_LATENCY) if device_model else None
        item = Retimed(trial.number, float(trial.user_attrs.get("latency_ms", math.nan)),
                       math.nan if predicted is None else float(predicted),
                       record["latency_ms"], record)
        done.append(item)
        if not quiet:
            print(f"  {item.describe()}")
    return done
