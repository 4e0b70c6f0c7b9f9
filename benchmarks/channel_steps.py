"""Why ONNX Runtime's device model misses: a convolution's cost against its channel counts, in
ONNX Runtime (full graph optimisation, and without its NCHWc layout) and PyTorch eager, one
thread, batch 1, each timing cycling 8 copies (cold cache, as the device model times them).

A multiply-add count predicts a convolution's cost only if the cost grows smoothly with the
channels. The table shows whether it does, and the last rows whether channel alignment
switches kernels: a 3x3 convolution on a 1x1 map, channels multiples of 16 or not.

    python benchmarks/channel_steps.py        # about a minute
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from threshsearch.deploy import onnx_bytes

COPIES = 8
SECONDS = 0.4


def _p10_ms(run, copies: int) -> float:
    times, index = [], 0
    end = time.perf_counter() + SECONDS
    while time.perf_counter() < end or len(times) < 20:
        started = time.perf_counter()
        run(index % copies)
        times.append(time.perf_counter() - started)
        index += 1
    return float(np.quantile(times, 0.1) * 1000)


def _conv(cin: int, cout: int, kernel: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU()).eval()


def onnxruntime_ms(cin: int, cout: int, kernel: int, size: int, nchwc: bool) -> float:
    import onnxruntime

    model = onnx_bytes(_conv(cin, cout, kernel), (torch.randn(1, cin, size, size),), ["x"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not nchwc:  # every optimisation but the layout ones (NCHWc)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    sessions = [onnxruntime.InferenceSession(model, options,
                                             providers=["CPUExecutionProvider"])
                for _ in range(COPIES)]
    feeds = [{"x": np.random.randn(1, cin, size, size).astype(np.float32)}
             for _ in range(COPIES)]
    return _p10_ms(lambda index: sessions[index].run(None, feeds[index]), COPIES)


def torch_ms(cin: int, cout: int, kernel: int, size: int) -> float:
    last = torch.channels_last
    modules = [_conv(cin, cout, kernel).to(memory_format=last) for _ in range(COPIES)]
    inputs = [torch.randn(1, cin, size, size).contiguous(memory_format=last)
              for _ in range(COPIES)]

    def run(index: int) -> None:
        with torch.inference_mode():
            modules[index](inputs[index])
    return _p10_ms(run, COPIES)


CASES = ([(128, cout, 3, 16) for cout in (16, 24, 32, 40, 48, 56, 64)]
         + [(cin, 96, 1, 16) for cin in (96, 104, 112, 120, 128, 136, 144)]
         + [(480, 160, 3, 1), (472, 152, 3, 1), (144, 128, 3, 1), (142, 128, 3, 1)])


def main() -> None:
    torch.set_num_threads(1)
    print("| kernel | in | out | map | multiply-adds | ONNX Runtime | ONNX Runtime, no NCHWc "
          "| PyTorch eager | ONNX Runtime, GMAC/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cin, cout, kernel, size in CASES:
        macs = kernel * kernel * cin * cout * size * size
        full = onnxruntime_ms(cin, cout, kernel, size, nchwc=True)
        plain = onnxruntime_ms(cin, cout, kernel, size, nchwc=False)
        eager = torch_ms(cin, cout, kernel, size)
        print(f"| {kernel}x{kernel} | {cin} | {cout} | {size}x{size} | {macs / 1e6:.2f} M | "
              f"{full:.4f} ms | {plain:.4f} ms | {eager:.4f} ms | {macs / full / 1e6:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
