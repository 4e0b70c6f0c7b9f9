"""The runtimes a device model can be made for: PyTorch eager on the CPU or a CUDA GPU,
PyTorch replaying a captured CUDA graph, and ONNX Runtime (CPU).

A runtime turns a module and its input shapes into a callable that runs it once. ``copies``
distinct copies (own weights, own inputs) are run in turn, so that an operation timed alone
finds its data out of cache, as it does inside a whole network where the other layers have
evicted it; one copy would keep everything in L2 and time the operation too fast.
"""

from __future__ import annotations

import copy
import platform
from collections.abc import Callable, Sequence
from itertools import cycle
from typing import Protocol

import torch
from torch import nn

from threshsearch.deploy import (
    onnx_bytes,
    onnx_optimised_ops,
    onnx_session,
    onnx_session_options,
)
from threshsearch.errors import UserError
from threshsearch.latency import GraphReplay

CUDA_RUNTIME = "torch-cuda"
CUDA_GRAPH_RUNTIME = "torch-cuda-graph"
GPU_RUNTIMES = (CUDA_RUNTIME, CUDA_GRAPH_RUNTIME)
RUNTIMES = ("torch", "onnxruntime", *GPU_RUNTIMES)
DTYPES = {"float32": torch.float32}
ONNX_INSTALL = "pip install 'threshsearch[onnx]'"
NCHWC_CONV = "com.microsoft.nchwc:Conv"  # ONNX Runtime's convolution in its blocked layout
BLOCK_PROBE_OUT = 6  # not a multiple of 4: the rule is read where outputs do not align


class Runtime(Protocol):
    name: str
    device: torch.device  # where the networks run: what profiling describes and locks

    def versions(self) -> dict[str, str]:
        """The library versions the timings depend on."""
        ...

    def prepare(self, module: nn.Module, shapes: Sequence[tuple[int, ...]], copies: int
                ) -> Callable[[], object]:
        """A callable that runs the next of ``copies`` copies of ``module`` once, on inputs
        of ``shapes`` (batch included)."""
        ...

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        """Whether a ``kernel`` x ``kernel`` convolution reading ``in_channels`` runs in the
        runtime's blocked memory layout (None: the runtime has one layout only)."""
        ...


def _inputs(shapes: Sequence[tuple[int, ...]], channels_last: bool,
            device: torch.device) -> list[torch.Tensor]:
    tensors = [torch.randn(*shape, device=device) for shape in shapes]
    if channels_last:
        tensors = [t.contiguous(memory_format=torch.channels_last) if t.dim() == 4 else t
                   for t in tensors]
    return tensors


def _fresh(module: nn.Module) -> nn.Module:
    """A copy in eval mode with its own weights: equal values, other memory, which is what
    the cache sees. (Redrawn small weights would shrink activations towards denormal
    floats, which the CPU computes far slower.)"""
    return copy.deepcopy(module).eval()


class TorchRuntime:
    """PyTorch eager in inference mode, weights and inputs channels_last, on the CPU or (the
    ``torch-cuda`` runtime) a CUDA GPU, where each run waits for the GPU's work to finish:
    a timing is the device's, not the time to queue its kernels."""

    def __init__(self, channels_last: bool = True, device: str = "cpu"):
        self.channels_last = channels_last
        self.device = torch.device(device)
        self.name = CUDA_RUNTIME if self.device.type == "cuda" else "torch"

    def versions(self) -> dict[str, str]:
        found = {"torch": torch.__version__, "python": platform.python_version()}
        if self.device.type == "cuda":
            found["cuda"] = torch.version.cuda or "unknown"
        return found

    def placed_copies(self, module: nn.Module, shapes: Sequence[tuple[int, ...]],
                      copies: int) -> list[tuple[nn.Module, list[torch.Tensor]]]:
        """``copies`` copies of ``module`` on the device, each with its own inputs."""
        memory_format = torch.channels_last if self.channels_last else torch.contiguous_format
        runs = []
        for _ in range(copies):
            clone = _fresh(module).to(self.device)
            for parameter in clone.parameters():
                if parameter.dim() == 4:
                    parameter.data = parameter.data.contiguous(memory_format=memory_format)
            runs.append((clone, _inputs(shapes, self.channels_last, self.device)))
        return runs

    def prepare(self, module: nn.Module, shapes: Sequence[tuple[int, ...]], copies: int
                ) -> Callable[[], object]:
        turns = cycle(self.placed_copies(module, shapes, copies))
        on_gpu = self.device.type == "cuda"

        def run() -> object:
            clone, inputs = next(turns)
            with torch.inference_mode():
                output = clone(*inputs)
            if on_gpu:
                torch.cuda.synchronize(self.device)
            return output
        return run

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        return None


class CudaGraphRuntime(TorchRuntime):
    """PyTorch on a CUDA GPU, each copy captured once as a CUDA graph and replayed: the CPU's
    cost of launching each kernel is paid once at capture, as in a deployment that serves
    through CUDA graphs (``torch.compile(mode="reduce-overhead")``, a CUDA graph of its
    own). A replay copies a new input into the graph's input buffer first, as serving a
    network does, and waits for the GPU to finish. An operation timed alone pays that copy
    of its own input too, which inside a network it does not; the calibration's traffic
    term takes it up (docs/benchmarks.md, "GPU check", was measured so)."""

    def __init__(self, channels_last: bool = True, device: str = "cuda"):
        super().__init__(channels_last, device)
        self.name = CUDA_GRAPH_RUNTIME

    def prepare(self, module: nn.Module, shapes: Sequence[tuple[int, ...]], copies: int
                ) -> Callable[[], object]:
        replays = [GraphReplay(clone, inputs)
                   for clone, inputs in self.placed_copies(module, shapes, copies)]
        turns = cycle(replays)

        def run() -> object:
            output = next(turns)()
            torch.cuda.synchronize(self.device)
            return output
        return run


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"runtime: onnxruntime is not installed; {ONNX_INSTALL}") from None
    return onnxruntime


class OnnxRuntime:
    """ONNX Runtime's CPU provider: ``threads`` intra-op threads, one inter-op thread,
    sequential execution. Each copy is its own session (its own weights)."""

    name = "onnxruntime"
    device = torch.device("cpu")

    def __init__(self, threads: int = 1):
        self.threads = threads
        self.ort = _onnxruntime()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "onnxruntime": self.ort.__version__,
                "python": platform.python_version()}

    def session(self, module: nn.Module, shapes: Sequence[tuple[int, ...]]):
        names = [f"x{index}" for index in range(len(shapes))]
        model = onnx_bytes(module.eval(), tuple(torch.randn(*shape) for shape in shapes),
                           names)
        return lambda: onnx_session(model, self.threads)

    def prepare(self, module: nn.Module, shapes: Sequence[tuple[int, ...]], copies: int
                ) -> Callable[[], object]:
        new_session = self.session(_fresh(module), shapes)
        runs = []
        for _ in range(copies):
            feeds = {f"x{index}": torch.randn(*shape).numpy()
                     for index, shape in enumerate(shapes)}
            runs.append((new_session(), feeds))
        turns = cycle(runs)

        def run() -> object:
            session, feeds = next(turns)
            return session.run(None, feeds)
        return run

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        """Read from the graph ONNX Runtime optimises (the layout is its transformer's choice,
        made per convolution from its channel counts and the CPU's vector width)."""
        conv = nn.Conv2d(in_channels, BLOCK_PROBE_OUT, kernel, padding=kernel // 2,
                         bias=False)
        model = onnx_bytes(conv.eval(), (torch.randn(1, in_channels, 4, 4),), ["x"])
        return NCHWC_CONV in onnx_optimised_ops(model, onnx_session_options(self.threads))


def make_runtime(name: str, threads: int = 1, channels_last: bool = True) -> Runtime:
    """The runtime called ``name``; a missing onnxruntime says how to install it."""
    if name == "torch":
        return TorchRuntime(channels_last)
    if name in GPU_RUNTIMES and not torch.cuda.is_available():
        raise UserError(f"runtime: {name} needs a CUDA GPU, and PyTorch sees none here; on "
                        f"this machine: torch or onnxruntime")
    if name == CUDA_RUNTIME:
        return TorchRuntime(channels_last, "cuda")
    if name == CUDA_GRAPH_RUNTIME:
        return CudaGraphRuntime(channels_last)
    if name == "onnxruntime":
        return OnnxRuntime(threads)
    raise UserError(f"runtime: {name!r} is invalid; expected one of {', '.join(RUNTIMES)}")
