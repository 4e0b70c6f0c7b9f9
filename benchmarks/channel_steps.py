"""Why ONNX Runtime's device model misses: a layer's cost against its channel counts, in ONNX
Runtime (full graph optimisation, and without its NCHWc layout) and PyTorch eager, one thread,
batch 1. The layer is the project's ``ConvBNAct`` (convolution, batch norm, ReLU) and each
timing cycles copies of it that together reach ``COLD_BYTES`` (up to ``MAX_COPIES`` copies),
as the device model times its operations.

A multiply-add count predicts a convolution's cost only if the cost grows smoothly with the
channels. The table shows whether it does, and whether ONNX Runtime ran the convolution in
its NCHWc layout (read from its optimised graph): the last rows are 3x3 convolutions on a 1x1
map with channel counts that are multiples of 16, of 8 only, or of neither.

    python benchmarks/channel_steps.py        # about 30 s, alone on the machine
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import cycle
from typing import Any

import numpy as np
import torch

from threshsearch.deploy import onnx_bytes, onnx_optimised_ops, onnx_session_options
from threshsearch.devicemodel.calibration import BYTES
from threshsearch.devicemodel.profiling import COLD_BYTES, MAX_COPIES
from threshsearch.devicemodel.runtimes import NCHWC_CONV, TorchRuntime
from threshsearch.latency import LatencySettings, time_passes
from threshsearch.nn.layers import ConvBNAct

SECONDS = 0.4


def copies(cin: int, cout: int, kernel: int, size: int) -> int:
    """Copies of the layer whose weights, input and output add up to ``COLD_BYTES``, at most
    ``MAX_COPIES``."""
    size_bytes = BYTES * (kernel * kernel * cin * cout + (cin + cout) * size * size)
    return max(1, min(MAX_COPIES, math.ceil(COLD_BYTES / size_bytes)))


def _p10_ms(run: Callable[[], object]) -> float:
    """The p10 of single calls of ``run`` over ``SECONDS``, by the project's estimator."""
    settings = LatencySettings(min_time_s=SECONDS, max_time_s=SECONDS)
    return time_passes(run, settings).p10_s * 1000


def _layer(cin: int, cout: int, kernel: int) -> torch.nn.Module:
    return ConvBNAct(cin, cout, kernel).eval()


def session_options(nchwc: bool) -> Any:
    """The device model's session options (one thread, sequential) with every graph
    optimisation, or every one but the layout ones (NCHWc) when ``nchwc`` is false."""
    import onnxruntime

    options = onnx_session_options(1)
    level = onnxruntime.GraphOptimizationLevel
    options.graph_optimization_level = level.ORT_ENABLE_ALL if nchwc else level.ORT_ENABLE_EXTENDED
    return options


def optimised_ops(model: bytes, nchwc: bool) -> set[str]:
    """The operators of ONNX Runtime's optimised graph for ``model``, as ``domain:type``."""
    return onnx_optimised_ops(model, session_options(nchwc))


def onnxruntime_ms(cin: int, cout: int, kernel: int, size: int, nchwc: bool
                   ) -> tuple[float, bool]:
    """The layer's p10 time, and whether its convolution ran in the NCHWc layout."""
    import onnxruntime

    count = copies(cin, cout, kernel, size)
    model = onnx_bytes(_layer(cin, cout, kernel), (torch.randn(1, cin, size, size),), ["x"])
    sessions = [onnxruntime.InferenceSession(model, session_options(nchwc),
                                             providers=["CPUExecutionProvider"])
                for _ in range(count)]
    feeds = [{"x": np.random.randn(1, cin, size, size).astype(np.float32)}
             for _ in range(count)]
    turns = cycle(list(zip(sessions, feeds, strict=True)))

    def run() -> object:
        session, feed = next(turns)
        return session.run(None, feed)
    milliseconds = _p10_ms(run)
    return milliseconds, NCHWC_CONV in optimised_ops(model, nchwc)


def torch_ms(cin: int, cout: int, kernel: int, size: int) -> float:
    """The layer's p10 time under the device model's PyTorch runtime (channels_last)."""
    count = copies(cin, cout, kernel, size)
    return _p10_ms(TorchRuntime().prepare(_layer(cin, cout, kernel), [(1, cin, size, size)],
                                          count))


CASES = ([(128, cout, 3, 16) for cout in (16, 24, 32, 40, 48, 56, 64)]
         + [(cin, 96, 1, 16) for cin in (96, 104, 112, 120, 128, 136, 144)]
         + [(480, 160, 3, 1), (472, 152, 3, 1), (476, 154, 3, 1),
            (144, 128, 3, 1), (136, 128, 3, 1), (142, 128, 3, 1)])


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        print("| kernel | in | out | map | multiply-adds | ONNX Runtime | NCHWc | "
              "ONNX Runtime, no NCHWc | PyTorch eager | ONNX Runtime, GMAC/s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for cin, cout, kernel, size in CASES:
            macs = kernel * kernel * cin * cout * size * size
            full, in_nchwc = onnxruntime_ms(cin, cout, kernel, size, nchwc=True)
            plain, _ = onnxruntime_ms(cin, cout, kernel, size, nchwc=False)
            eager = torch_ms(cin, cout, kernel, size)
            print(f"| {kernel}x{kernel} | {cin} | {cout} | {size}x{size} | "
                  f"{macs / 1e6:.2f} M | {full:.3f} ms | {'yes' if in_nchwc else 'no'} | "
                  f"{plain:.3f} ms | {eager:.3f} ms | {macs / full / 1e6:.1f} |", flush=True)
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
