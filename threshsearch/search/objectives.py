"""The metrics a trial produces: the one list of their names, directions and costs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    direction: str  # the natural one: "maximize" or "minimize"
    cheap: bool  # known before training (profiler, latency, device model): a constraint
    description: str


METRICS: dict[str, Metric] = {
    "val_accuracy": Metric("maximize", False, "validation top-1 after the last epoch"),
    "val_top5": Metric("maximize", False, "validation top-5 after the last epoch"),
    "epoch_time_s": Metric("minimize", False, "seconds per training epoch (median)"),
    "train_images_per_s": Metric("maximize", False, "training throughput (median epoch)"),
    "latency_ms": Metric("minimize", True, "inference latency per batch, measured on the trial "
                         "device"),
    "predicted_latency_ms": Metric("minimize", True, "inference latency per batch, predicted "
                                   "by measurement.device_model (the deployment device's)"),
    "params": Metric("minimize", True, "parameters"),
    "madd": Metric("minimize", True, "multiply-adds, torchstat's MAdd"),
    "flops": Metric("minimize", True, "torchstat's Flops"),
    "memrw_mib": Metric("minimize", True, "memory read + write, MiB (torchstat)"),
    "cio": Metric("minimize", True, "HarDNet's CIO: conv input + output elements"),
    "activation_mib": Metric("minimize", True, "float32 size of all layer outputs, MiB"),
}
PREDICTED_LATENCY = "predicted_latency_ms"  # from a device model, on the driver
DEVICE_MODEL = "device_model"  # trial and study user attr: the model that priced its trials
CHEAP_METRICS = tuple(name for name, metric in METRICS.items() if metric.cheap)
