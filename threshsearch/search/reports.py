"""What a trial's spec and reports carry besides the metrics (their keys), the figures
known before training (``profiled_metrics``) and the constraint check on them: shared by
the driver, the worker (``search.trial``) and the surrogate (``search.surrogate``).

Imports no PyTorch (the figures come from ``threshsearch.counting``), so that a Ray worker
running the surrogate starts without it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from threshsearch.config import ArchitectureConfig
from threshsearch.counting import count_profile
from threshsearch.search.objectives import PREDICTED_LATENCY

if TYPE_CHECKING:
    from threshsearch.devicemodel import DeviceModel

# Keys of a trial's reports that the driver reads besides the metrics.
DONE = "trial_done"  # only in a trial's last report: absent means it was stopped early
FAILED = "failed"  # the reason a trial failed
INFEASIBLE = "infeasible"  # the constraint a trial violated
COMPUTE_S = "compute_s"  # seconds spent building, pricing, training and evaluating
NODE = "node"  # the Ray node the trial ran on
LATENCY = "latency"  # the latency measurement's record: statistic, quantiles, passes, ...
THROUGHPUT = "throughput"  # which epochs the training figures count, and their spread
WARNINGS = "warnings"  # what the user should know about a trial's figures
MEASURE_S = "measure_s"  # seconds spent measuring latency, waiting for the device included
PAUSED_S = "paused_s"  # seconds training paused for other trials' measurements
BASELINE = "baseline"  # a baseline's preset name: in its spec, its reports and its trial
MEASURE_LATENCY = "measure_latency"  # in a spec: whether an objective or constraint needs it
PROFILED = "profiled"  # in a spec: the profiler's figures (and the predicted latency, with
# a device model), when the driver has them already

Report = Callable[[dict[str, Any]], None]

PROFILED_METRICS = ("params", "madd", "flops", "memrw_mib", "cio", "activation_mib")


def profiled_metrics(config: ArchitectureConfig, input_size: int,
                     device_model: DeviceModel | None = None) -> dict[str, float]:
    """The metrics known without a device (the profiler's figures, counted from the config:
    the same numbers as a meta-device profile, in microseconds), and the latency
    ``device_model`` predicts: the driver checks constraints on them before a trial is
    handed out, and a trial reports them."""
    figures = count_profile(config, input_size)
    metrics = {metric: getattr(figures, metric) for metric in PROFILED_METRICS}
    if device_model is not None:
        metrics[PREDICTED_LATENCY] = device_model.predict_ms(config, figures)
    return metrics


def violated_constraint(constraints: list[dict[str, Any]], metrics: dict[str, Any]
                        ) -> str | None:
    """The first constraint the metrics break, in words; None when all hold."""
    for constraint in constraints:
        value = metrics[constraint["metric"]]
        upper, lower = constraint.get("max"), constraint.get("min")
        if upper is not None and value > upper:
            return f"{constraint['metric']} {value:.6g} > max {upper:.6g}"
        if lower is not None and value < lower:
            return f"{constraint['metric']} {value:.6g} < min {lower:.6g}"
    return None
