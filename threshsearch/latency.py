"""A latency estimator that holds under load: time single forward passes (device synchronised
around each), in rounds that double until the estimate stops moving or a time cap is reached,
and report a low quantile of the passes.

Why a low quantile: a pass is only ever slowed down by what else the machine does (another
process on the cores, a page fault, a frequency dip), never sped up, so the fast end of the
distribution is the network's own cost and the slow end is the neighbours'. The 10th
percentile keeps that robustness without the minimum's sensitivity to one lucky pass.
docs/benchmarks.md ("Latency estimator") has the measurements behind the choice.

On a CUDA GPU a pass can instead replay a captured CUDA graph (``cuda_graph``): the CPU's
cost of launching each kernel is paid once at capture, as in serving through CUDA graphs.
On the one H200 measured, graph timings at batch 64 repeated within a run where eager ones'
launch costs wandered (docs/benchmarks.md, "GPU check"); batch 1 and two runs' agreement
are not measured yet.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from threshsearch.measure import (
    MeasuredOn,
    conv_weights_in,
    device_name,
    mixed_precision,
    resolve_device,
    synchronize,
)

STATISTIC = "p10"
QUANTILE = 0.10


@dataclass(frozen=True)
class LatencySettings:
    """How a latency is estimated (the space file's ``measurement`` section)."""

    batch_size: int = 1
    min_passes: int = 20  # the first round; later rounds double the count
    max_time_s: float = 2.0  # timed passes stop here, stable or not
    min_time_s: float = 0.25  # and never settle before this: a fast network gets hundreds
    # of passes, so its estimate spans more than one moment of the machine
    tolerance: float = 0.02  # stable: the estimate moved less than this between rounds
    warmup_s: float = 0.05  # at least this long, and at least 3 passes, untimed
    cuda_graph: bool = False  # on a CUDA device: time replays of a captured CUDA graph


@dataclass(frozen=True)
class LatencyEstimate(MeasuredOn):
    """One batch's inference time, in milliseconds, and how it was obtained."""

    latency_ms: float  # the estimate: the ``statistic`` of the timed passes
    statistic: str
    p10_ms: float
    median_ms: float
    p90_ms: float
    min_ms: float
    passes: int
    stable: bool  # False: the time cap ended the passes before the estimate settled
    seconds: float  # spent timing and warming up
    threads: int
    cuda_graph: bool = False  # the passes replayed a captured CUDA graph


Clock = Callable[[], float]


@dataclass(frozen=True)
class PassTimes:
    """The timed passes of one callable, in seconds, and whether their p10 settled."""

    times: list[float]
    stable: bool

    @property
    def p10_s(self) -> float:
        return float(np.quantile(self.times, QUANTILE))


def _pass_time(run: Callable[[], object], sync: Callable[[], None], clock: Clock) -> float:
    sync()
    start = clock()
    run()
    sync()
    return clock() - start


def _warm_up(run: Callable[[], object], sync: Callable[[], None],
             settings: LatencySettings, clock: Clock) -> None:
    """Untimed passes: at least 3 and ``warmup_s``, then until two windows of five passes
    agree within 10 %: the first passes of a fresh process pay for the allocator, first-call
    set-up (oneDNN primitives, cuDNN's choice of algorithms) and a clock still ramping up
    after the wait for the device. Never longer than half the time cap (after one pass)."""
    start, window, previous, passes = clock(), [], None, 0
    while True:
        window.append(_pass_time(run, sync, clock))
        passes += 1
        spent = clock() - start
        if spent >= settings.max_time_s / 2:
            return
        if passes < 3 or spent < settings.warmup_s:
            continue
        if len(window) >= 5:
            median = float(np.median(window[-5:]))
            if previous is not None and abs(median - previous) <= 0.1 * previous:
                return
            previous, window = median, []


def time_passes(run: Callable[[], object], settings: LatencySettings = LatencySettings(),
                clock: Clock = time.perf_counter, sync: Callable[[], None] = lambda: None
                ) -> PassTimes:
    """Warm ``run`` up, then time single calls of it (``sync`` waits for the device around
    each) in rounds that double from ``settings.min_passes`` until the p10 moves less than
    ``tolerance`` (after ``min_time_s``) or ``max_time_s`` is spent: the estimator for any
    runtime (PyTorch, ONNX Runtime)."""
    _warm_up(run, sync, settings, clock)
    times: list[float] = []
    timed_from, previous, checkpoint = clock(), None, settings.min_passes
    while True:
        times.append(_pass_time(run, sync, clock))
        if len(times) >= checkpoint:  # the end of a round: has the estimate settled?
            estimate = float(np.quantile(times, QUANTILE))
            if previous is not None and abs(estimate - previous) <= (
                    settings.tolerance * previous) and (
                    clock() - timed_from >= settings.min_time_s):
                return PassTimes(times, True)
            previous, checkpoint = estimate, 2 * len(times)
        if clock() - timed_from >= settings.max_time_s:
            return PassTimes(times, False)


class GraphReplay:
    """``module`` on ``inputs`` (on a CUDA device) captured as one CUDA graph; calling it
    replays the graph, which first copies fresh values into the inputs, as a server fed new
    images does, and returns the graph's output (a tensor the next replay overwrites).
    Warmed up on a side stream before capture, as CUDA graphs require; it holds the module
    and tensors whose memory the graph reads."""

    def __init__(self, module: nn.Module, inputs: list[torch.Tensor]):
        self.device = inputs[0].device
        self.module, self.inputs = module, inputs
        self.fresh = [tensor.clone() for tensor in inputs]
        # Capture and replay on the inputs' GPU, whichever is current (cuda:1 included).
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side), torch.no_grad():
                for _ in range(3):
                    module(*inputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, stream=side), torch.no_grad():
                for static, source in zip(inputs, self.fresh, strict=True):
                    static.copy_(source)
                self.output = module(*inputs)

    def __call__(self) -> torch.Tensor:
        self.graph.replay()  # on the capture's device, whichever is current
        return self.output


def estimate_latency(model: nn.Module, input_size: int, device: torch.device | str = "cpu",
                     settings: LatencySettings = LatencySettings(),
                     dtype: torch.dtype = torch.float32, channels_last: bool = True,
                     clock: Clock = time.perf_counter) -> LatencyEstimate:
    """The latency of ``model`` on a batch of ``settings.batch_size`` images, in eval mode,
    with the input and weights laid out channels_last (else NCHW). The model is left as it
    was found. A model too slow to settle within ``max_time_s`` gets the passes that fit
    (one at least) and ``stable=False``. ``clock`` is for tests."""
    device = resolve_device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    x = torch.randn(settings.batch_size, 3, input_size, input_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    began = clock()
    in_graph = settings.cuda_graph and device.type == "cuda"
    # A graph is captured under no_grad (its own); replays happen inside these contexts only:
    # the graph reads the weights conv_weights_in laid out, and is dropped before they are
    # restored.
    grad_mode = contextlib.nullcontext() if in_graph else torch.inference_mode()
    try:
        with conv_weights_in(model, memory_format), grad_mode, mixed_precision(device, dtype):
            run = GraphReplay(model, [x]) if in_graph else lambda: model(x)
            passes = time_passes(run, settings, clock, lambda: synchronize(device))
    finally:
        model.train(was_training)
    times, stable = passes.times, passes.stable
    ms = np.array(times) * 1000
    return LatencyEstimate(
        latency_ms=float(np.quantile(ms, QUANTILE)), statistic=STATISTIC,
        p10_ms=float(np.quantile(ms, 0.10)), median_ms=float(np.median(ms)),
        p90_ms=float(np.quantile(ms, 0.90)), min_ms=float(ms.min()), passes=len(times),
        stable=stable, seconds=clock() - began, threads=torch.get_num_threads(),
        cuda_graph=in_graph,
        batch_size=settings.batch_size, input_size=input_size,
        dtype=str(dtype).removeprefix("torch."), channels_last=channels_last,
        device=device_name(device),
    )
