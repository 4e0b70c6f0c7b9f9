"""What a trial is handed and what it earns: the spec its worker runs, its outcome in the study.

A trial ends in the state it earned: COMPLETE with its objectives when it trained to the end;
PRUNED when early stopping stopped it (Ray's own OptunaSearch would tell such a trial COMPLETE
with truncated values) or when it broke a constraint, with the constraint's values told to
the sampler; FAIL with a reason when it raised. A trial the time budget (or an interrupt)
cut short is FAIL with status ``timed_out`` (samplers leave FAIL trials out: the network is
not bad, only unfinished) and is queued again, to run first when the study resumes. A trial
that drew a config the study evaluated already is not run: it ends as its twin did, status
``duplicate``.
Imports no Ray: ``StudySearcher`` applies what is decided here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from threshsearch.devicelock import lock_env
from threshsearch.search.objectives import DEVICE_MODEL, METRICS
from threshsearch.search.reports import (
    COMPUTE_S,
    DONE,
    FAILED,
    INFEASIBLE,
    LATENCY,
    MEASURE_LATENCY,
    MEASURE_S,
    NODE,
    PAUSED_S,
    THROUGHPUT,
    WARNINGS,
)
from threshsearch.search.sections import Constraint, constraint_values
from threshsearch.search.space import SearchSpace
from threshsearch.search.storage import DUPLICATE, REASON, STOPPED_AT, TIMED_OUT, trial_status
from threshsearch.search.worktime import WORKER_TIME


def trial_spec(space: SearchSpace, trial: optuna.Trial, config_dict: dict[str, Any],
               recipe_dict: dict[str, Any]) -> dict[str, Any]:
    """Everything a worker needs to run one trial, as plain data."""
    return {
        "number": trial.number,
        "architecture": config_dict,
        "recipe": recipe_dict,
        "dataset": space.data.dataset,
        "data_root": str(Path(space.data.root).resolve()),
        "test_fraction": space.data.test_fraction,
        "max_image_pixels": space.data.max_image_pixels,
        "device": space.data.device,
        "latency_batch_size": space.data.latency_batch_size,
        "measurement": space.measurement.for_trials(),
        "constraints": [{"metric": c.metric, "max": c.max, "min": c.min}
                        for c in space.constraints],
        "seed": trial.user_attrs["seed"],
        "cpus": space.resources.cpus,
        "gpus": space.resources.gpus,
        MEASURE_LATENCY: space.measures_latency,
        # The driver's device-lock settings reach every node's trials this way: Ray starts
        # workers in the environment of each node's `ray start`, not the driver's.
        "lock_env": lock_env(),
    }


def nested(result: dict[str, Any], key: str) -> dict[str, Any] | None:
    """``result[key]``, also when Ray has flattened it to ``key/...`` entries."""
    if isinstance(result.get(key), dict):
        return result[key]
    prefix = f"{key}/"
    found = {name[len(prefix):]: value for name, value in result.items()
             if name.startswith(prefix)}
    return found or None


@dataclass
class Outcome:
    """How a trial ends: what the searcher tells the study and records on the trial."""

    state: TrialState
    status: str
    attrs: dict[str, Any] = field(default_factory=dict)
    values: list[float] | None = None
    reason: str | None = None
    constraints: dict[str, float] | None = None
    retry: bool = False  # cut by the time budget: queue it to run again


def trial_outcome(result: dict[str, Any], *, error: bool, stop_reason: str | None,
                  constraints: tuple[Constraint, ...], metric_names: Sequence[str],
                  wall_s: float, device_warnings: list[str], baseline: bool) -> Outcome:
    """The outcome of a trial whose last result is ``result``: ``error`` when Tune saw its
    worker die or raise, ``stop_reason`` when the early-stopping scheduler stopped it,
    ``baseline`` for a baseline (a rerun trains it anyway: no retry is queued)."""
    compute = float(result.get(COMPUTE_S, 0.0))
    account = nested(result, WORKER_TIME)
    attrs = {key: result[key] for key in METRICS if key in result}
    epochs = result.get("epoch", 0)
    attrs |= {"device": result.get("device"), "versions": nested(result, "versions"),
              LATENCY: nested(result, LATENCY),
              THROUGHPUT: nested(result, THROUGHPUT),
              WARNINGS: result.get(WARNINGS) or [],
              MEASURE_S: result.get(MEASURE_S), PAUSED_S: result.get(PAUSED_S),
              "epochs": epochs,
              NODE: result.get(NODE), COMPUTE_S: compute, "wall_s": wall_s,
              WORKER_TIME: account}
    attrs[WARNINGS] = [*attrs[WARNINGS], *device_warnings]
    priced = all(c.metric in result for c in constraints)
    told = constraint_values(constraints, result) if priced else None
    if error or FAILED in result:
        reason = result.get(FAILED) or ("the Ray worker died or raised; see the "
                                        "trial's error file under ray/")
        return Outcome(TrialState.FAIL, "failed", attrs, reason=reason)
    if INFEASIBLE in result:
        return Outcome(TrialState.PRUNED, "infeasible", attrs, constraints=told,
                       reason=f"constraint: {result[INFEASIBLE]}")
    if result.get(DONE):
        values = [float(result[name]) for name in metric_names]
        return Outcome(TrialState.COMPLETE, "complete", attrs, values=values,
                       constraints=told)
    if stop_reason is not None:
        return Outcome(TrialState.PRUNED, "pruned", {**attrs, STOPPED_AT: epochs},
                       reason=stop_reason, constraints=told)
    # Cut by the time budget (or an interrupt): unfinished, not bad. FAIL keeps it from
    # the samplers; the retry trains the network when the study resumes.
    return Outcome(TrialState.FAIL, TIMED_OUT, {**attrs, STOPPED_AT: epochs},
                   reason=f"cut short when the run ended (its time budget, or an "
                          f"interrupt), after epoch {epochs}; queued to run again when "
                          f"the study resumes",
                   constraints=told, retry=not baseline)


def duplicate_outcome(twin: FrozenTrial) -> Outcome:
    """The outcome of a trial that drew the config of ``twin``: the twin's figures, reused."""
    attrs = {key: value for key, value in twin.user_attrs.items()
             if key in METRICS or key in ("device", "versions", COMPUTE_S, "epochs",
                                          LATENCY, THROUGHPUT, DEVICE_MODEL)}
    attrs["duplicate_of"] = twin.number
    status = trial_status(twin)
    if status == "running":
        return Outcome(TrialState.FAIL, DUPLICATE, attrs,
                       reason=f"same config as trial {twin.number}, still running")
    if twin.state == TrialState.COMPLETE:
        return Outcome(TrialState.COMPLETE, DUPLICATE, attrs, values=list(twin.values),
                       constraints=twin.constraints)
    if twin.state == TrialState.PRUNED:
        return Outcome(TrialState.PRUNED, DUPLICATE, attrs, constraints=twin.constraints,
                       reason=f"same config as trial {twin.number}: "
                              f"{twin.user_attrs.get(REASON, 'pruned')}")
    return Outcome(TrialState.FAIL, DUPLICATE, attrs,
                   reason=f"same config as trial {twin.number}: "
                          f"{twin.user_attrs.get(REASON, 'infeasible')}")
