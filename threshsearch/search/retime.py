"""Re-timing the front: once a search is over, each Pareto-optimal network is timed again,
one after another, with the machine to itself, on a Ray worker with a trial's resources (so
on a cluster it runs where trials ran). The figures go to the study's user attribute
``latency_retimed`` ({trial number: latency record}); a trial's own ``latency_ms`` stays the
one measured during the search, and each record says which measurement it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna

from threshsearch.devicelock import lock_env
from threshsearch.search.storage import pareto_trials
from threshsearch.search.trial import retime_network

RETIMED = "latency_retimed"  # study user attr: {str(trial number): latency record}


@dataclass(frozen=True)
class Retimed:
    trial: int
    search_ms: float
    retimed_ms: float
    record: dict[str, Any]


def retimed_records(study: optuna.Study) -> dict[int, dict[str, Any]]:
    return {int(number): record for number, record in
            (study.user_attrs.get(RETIMED) or {}).items()}


def retime_front(study: optuna.Study, input_size: int, quiet: bool = False) -> list[Retimed]:
    """Time the front again through Ray (``ray.init`` must have run), with the device,
    batch size, measurement settings and resources the study was searched with."""
    import ray

    data = study.user_attrs.get("data") or {}
    measurement = study.user_attrs.get("measurement") or {}
    resources = study.user_attrs.get("resources") or {"cpus": 1, "gpus": 0}
    task = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"])(retime_network)
    members = [t for t in pareto_trials(study) if "architecture" in t.user_attrs]
    records = retimed_records(study)
    done = []
    if members and not quiet:
        print(f"re-timing the {len(members)} networks of the front, one at a time")
    for trial in members:
        # One at a time: each waits for the last, so no two measurements share the machine.
        record = ray.get(task.remote(trial.user_attrs["architecture"], input_size,
                                     data.get("device", "auto"), measurement,
                                     data.get("latency_batch_size", 1), resources["cpus"],
                                     lock_env()))
        records[trial.number] = record
        study.set_user_attr(RETIMED, {str(number): value for number, value in records.items()})
        item = Retimed(trial.number, float(trial.user_attrs.get("latency_ms", float("nan"))),
                       record["latency_ms"], record)
        done.append(item)
        if not quiet:
            print(f"  trial {item.trial:>3}  latency during the search {item.search_ms:.4g} ms,"
                  f" re-timed {item.retimed_ms:.4g} ms ({item.retimed_ms / item.search_ms:.2f}x)")
    return done
