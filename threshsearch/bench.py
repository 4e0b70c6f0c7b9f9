"""Side-by-side speed of the paper's models on the current device: inference latency at
batch 1 and 64 and training throughput (forward, backward, optimizer step) at batch 64,
with warm-up, interleaved repetitions and medians, as absolute figures and as ratios to
ThreshNet-79.

Two training set-ups are compared. "threshsearch": the builder's modules trained as the
Trainer trains them (channels_last, fused optimizer, bf16 autocast on CUDA) and timed as
trials time them (channels_last input and weights). "plain": NCHW and the default (unfused)
optimizer, as the paper's reference code trains.

The yardstick is the straightforward implementation of ThreshNet-79 in the plain set-up:
the reference code's stage structure (a dense layer returns torch.cat([input, new]), a
harmonic layer concatenates its inputs afresh) with PyTorch's own 3x3 convolution. Two
variants isolate what the builder's modules contribute: "threshnet79-stockconv" (the
builder's network with PyTorch's convolution, threshsearch set-up) and
"threshnet79-listcat" (dense stages that concatenate the list of all earlier outputs for
every layer, as torchvision's DenseNet does).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from threshsearch.measure import (
    device_name,
    measure_latency,
    mixed_precision,
    resolve_device,
    synchronize,
)
from threshsearch.nn import build_model
from threshsearch.nn.conv import Conv3x3
from threshsearch.nn.dense import DenseStage
from threshsearch.presets import get_preset

BASELINE = "threshnet79"


class _ListConcatDense(nn.Module):
    def __init__(self, stage: DenseStage):
        super().__init__()
        self.layers = stage.layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


def with_list_concatenation(model: nn.Module) -> nn.Module:
    """The same network (its parameters shared) with dense stages that concatenate the list
    of all earlier outputs afresh for every layer: the concatenation strategy measured
    against the builder's."""
    for stage in model.features:
        block = getattr(stage, "block", None)
        if isinstance(block, DenseStage):
            stage.block = _ListConcatDense(block)
    return model


def with_stock_convolutions(model: nn.Module) -> nn.Module:
    """The same network (its parameters shared) with PyTorch's own 3x3 convolution in place
    of the builder's ``Conv3x3``."""
    replacements = [(parent, name, child) for parent in model.modules()
                    for name, child in parent.named_children() if isinstance(child, Conv3x3)]
    for parent, name, child in replacements:
        stock = nn.Conv2d(child.in_channels, child.out_channels, 3, padding=1, bias=False)
        stock.weight = child.weight
        setattr(parent, name, stock)
    return model


def _preset(name: str, *variations: Callable[[nn.Module], nn.Module]
            ) -> Callable[[int], nn.Module]:
    """num_classes -> the preset ``name``, built and passed through ``variations``."""
    def make(num_classes: int) -> nn.Module:
        model = build_model(get_preset(name, num_classes))
        for vary in variations:
            model = vary(model)
        return model
    return make


@dataclass(frozen=True)
class Candidate:
    name: str
    setup: str  # "threshsearch" or "plain"
    make: Callable[[int], nn.Module]  # num_classes -> model


def _torchvision_densenet(num_classes: int) -> nn.Module:
    from threshsearch.compat import torchvision

    return torchvision.models.densenet121(weights=None, num_classes=num_classes)


CANDIDATES = (
    Candidate("threshnet79", "threshsearch", _preset("threshnet79")),
    Candidate("threshnet79", "plain", _preset("threshnet79", with_stock_convolutions)),
    Candidate("threshnet79-stockconv", "threshsearch",
              _preset("threshnet79", with_stock_convolutions)),
    Candidate("threshnet79-listcat", "threshsearch",
              _preset("threshnet79", with_list_concatenation)),
    Candidate("threshnet95", "threshsearch", _preset("threshnet95")),
    Candidate("hardnet85", "threshsearch", _preset("hardnet85")),
    Candidate("densenet121", "threshsearch", _preset("densenet121")),
    Candidate("torchvision-densenet121", "threshsearch", _torchvision_densenet),
)


@dataclass
class BenchRow:
    model: str
    setup: str
    input_size: int
    latency_b1_ms: float
    latency_b64_ms: float
    train_images_per_s: float
    latency_b1_ratio: float = 1.0  # this model's latency / ThreshNet-79's (threshsearch set-up)
    latency_b64_ratio: float = 1.0
    train_ratio: float = 1.0  # this model's throughput / ThreshNet-79's


class _Subject:
    """One candidate at one input size, ready to time."""

    def __init__(self, candidate: Candidate, input_size: int, num_classes: int,
                 device: torch.device, train_batch: int):
        self.candidate = candidate
        self.device = device
        self.input_size = input_size
        self.fast = candidate.setup == "threshsearch"
        memory_format = torch.channels_last if self.fast else torch.contiguous_format
        self.amp_dtype = (torch.bfloat16 if self.fast and device.type == "cuda"
                          else torch.float32)
        torch.manual_seed(0)
        self.model = candidate.make(num_classes).to(device, memory_format=memory_format)
        self.optimizer = torch.optim.Adam(self.model.parameters(), fused=self.fast or None)
        self.train_x = torch.randn(train_batch, 3, input_size, input_size, device=device
                                   ).contiguous(memory_format=memory_format)
        self.train_y = torch.randint(0, num_classes, (train_batch,), device=device)

    def latency_ms(self, batch: int, runs: int) -> float:
        return measure_latency(self.model, self.input_size, batch, self.device,
                               self.amp_dtype, channels_last=self.fast, warmup=0,
                               repeats=runs).median_ms

    def train_images_per_s(self, steps: int) -> float:
        self.model.train()
        times = []
        for _ in range(steps):
            synchronize(self.device)
            start = time.perf_counter()
            with mixed_precision(self.device, self.amp_dtype):
                loss = F.cross_entropy(self.model(self.train_x).float(), self.train_y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            synchronize(self.device)
            times.append(time.perf_counter() - start)
        return len(self.train_y) / statistics.median(times)


def run_bench(input_sizes: list[int], device: str = "auto", repeats: int = 5,
              num_classes: int = 10, train_batch: int = 64,
              progress: Callable[[str], None] | None = None,
              candidates: Sequence[Candidate] = CANDIDATES) -> dict:
    """Every candidate (of ``candidates``, which must hold ThreshNet-79 in the threshsearch
    set-up: the ratios' base) at every input size; each repetition measures every candidate
    once (interleaved, so drifting machine load hits all alike) and the medians are
    reported."""
    if not any(c.name == BASELINE and c.setup == "threshsearch" for c in candidates):
        raise ValueError(f"candidates: {BASELINE} (threshsearch set-up) is missing; the "
                         f"ratios are to it")
    torch_device = resolve_device(device)
    rows = []
    for size in input_sizes:
        subjects = [_Subject(c, size, num_classes, torch_device, train_batch)
                    for c in candidates]
        for subject in subjects:  # warm-up: allocator, kernel selection, lazy init
            subject.latency_ms(1, 2)
            subject.latency_ms(64, 1)
            subject.train_images_per_s(1)
        samples: dict[int, list[tuple[float, float, float]]] = {i: [] for i in
                                                                range(len(subjects))}
        for repeat in range(repeats):
            for index, subject in enumerate(subjects):
                if progress:
                    progress(f"{size}x{size} repeat {repeat + 1}/{repeats}: "
                             f"{subject.candidate.name} ({subject.candidate.setup})")
                samples[index].append((subject.latency_ms(1, 5), subject.latency_ms(64, 3),
                                       subject.train_images_per_s(3)))
        measured = []
        for index, subject in enumerate(subjects):
            b1, b64, train = (statistics.median(values) for values in zip(*samples[index],
                                                                            strict=True))
            measured.append(BenchRow(subject.candidate.name, subject.candidate.setup, size,
                                     b1, b64, train))
        base = next(row for row in measured
                    if row.model == BASELINE and row.setup == "threshsearch")
        for row in measured:
            row.latency_b1_ratio = row.latency_b1_ms / base.latency_b1_ms
            row.latency_b64_ratio = row.latency_b64_ms / base.latency_b64_ms
            row.train_ratio = row.train_images_per_s / base.train_images_per_s
        rows.extend(measured)
    return {
        "device": device_name(torch_device),
        "dtype": "bfloat16 autocast (threshsearch set-up)" if torch_device.type == "cuda"
        else "float32",
        "torch": torch.__version__,
        "train_batch": train_batch,
        "repeats": repeats,
        "rows": [asdict(row) for row in rows],
    }


def format_bench(result: dict) -> str:
    lines = [f"device {result['device']}, {result['dtype']}, torch {result['torch']}, "
             f"median of {result['repeats']} interleaved repetitions; ratios are to "
             f"{BASELINE} (threshsearch set-up): latency ratio < 1 and training ratio > 1 "
             "are faster"]
    header = (f"{'model':<28} {'set-up':<12} {'lat b1 ms':>10} {'ratio':>6} {'lat b64 ms':>11} "
              f"{'ratio':>6} {'train img/s':>12} {'ratio':>6}")
    size = None
    for row in result["rows"]:
        if row["input_size"] != size:
            size = row["input_size"]
            lines += ["", f"{size}x{size}, training batch {result['train_batch']}", header]
        lines.append(
            f"{row['model']:<28} {row['setup']:<12} {row['latency_b1_ms']:>10.2f} "
            f"{row['latency_b1_ratio']:>6.2f} {row['latency_b64_ms']:>11.2f} "
            f"{row['latency_b64_ratio']:>6.2f} {row['train_images_per_s']:>12.1f} "
            f"{row['train_ratio']:>6.2f}")
    return "\n".join(lines)
