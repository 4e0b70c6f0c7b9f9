"""Runtime measurements: inference latency on the device a model runs on.

Each figure is recorded with what it depends on (device name, batch size, input size, dtype),
since a latency without its device is not a number anyone can compare.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from threshsearch.errors import UserError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" is CUDA when available, else CPU; "cuda" without a GPU is an error."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device: {name!r} asked for, but no CUDA GPU is available; "
                            "expected cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"device: {name!r} is invalid; expected one of {', '.join(DEVICES)}")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def mixed_precision(device: torch.device, dtype: torch.dtype) -> torch.autocast:
    """Autocast to ``dtype`` on ``device``; float32 means full precision, no autocast."""
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class MeasuredOn:
    """What a timing depends on, recorded with it."""

    batch_size: int
    input_size: int
    dtype: str
    channels_last: bool
    device: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Latency(MeasuredOn):
    """Inference time for one batch, in milliseconds, over ``repeats`` timed runs."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int


@contextmanager
def conv_weights_in(model: nn.Module, memory_format: torch.memory_format) -> Iterator[None]:
    """Lays the model's 4-D weights out in ``memory_format`` for the ``with`` block and puts
    the original tensors back afterwards."""
    originals = [(parameter, parameter.data) for parameter in model.parameters()
                 if parameter.dim() == 4]
    try:
        for parameter, data in originals:
            parameter.data = data.contiguous(memory_format=memory_format)
        yield
    finally:
        for parameter, data in originals:
            parameter.data = data


def measure_latency(model: nn.Module, input_size: int, batch_size: int = 1,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                    channels_last: bool = True, warmup: int = 5,
                    repeats: int = 20) -> Latency:
    """Median time of ``repeats`` forward passes in eval mode after ``warmup`` untimed ones,
    with the device synchronised around each pass. ``channels_last`` lays out the input and
    the weights so (the faster inference set-up on CPU and GPU); NCHW otherwise. The model
    is left as it was found."""
    device = resolve_device(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    was_training = model.training
    model.eval()
    x = torch.randn(batch_size, 3, input_size, input_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    times = []
    try:
        with (conv_weights_in(model, memory_format), torch.inference_mode(),
              mixed_precision(device, dtype)):
            for index in range(warmup + repeats):
                synchronize(device)
                start = time.perf_counter()
                model(x)
                synchronize(device)
                if index >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        model.train(was_training)
    return Latency(
        median_ms=statistics.median(times), min_ms=min(times), max_ms=max(times),
        repeats=repeats, batch_size=batch_size, input_size=input_size,
        dtype=str(dtype).removeprefix("torch."), channels_last=channels_last,
        device=device_name(device),
    )
