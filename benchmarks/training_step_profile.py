"""Where a training step's time goes: torch.profiler over a few training steps of one model
as the Trainer runs it (channels_last, fused Adam), grouped into convolutions, matrix
products (the 3x3 convolutions on 1x1 and 2x2 maps, and the classifier), batch norm,
activations, concatenation, layout copies and the optimizer. It bounds what any one
optimisation can gain: fusing batch norm with ReLU, for instance, can save at most their
share.

    python benchmarks/training_step_profile.py [--model threshnet79] [--input-size 32]
        [--batch 64] [--steps 4] [--device cpu]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from threshsearch import build_model
from threshsearch.measure import resolve_device

# The first matching fragment of an aten op's name decides its group.
GROUPS = (
    ("convolution_backward", "convolution backward"),
    ("convolution", "convolution forward"),
    ("batch_norm", "batch norm"),
    ("threshold_backward", "activation"),
    ("relu", "activation"),
    ("clamp", "activation"),
    ("cat", "concatenation"),
    ("mm", "matrix products"),
    ("copy_", "layout copies"),
    ("adam", "optimizer"),
)


def _group(name: str) -> str:
    lowered = name.lower()
    return next((group for fragment, group in GROUPS if fragment in lowered), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="threshnet79", help="a preset name or config file")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    model = build_model(args.model, num_classes=10).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    images = torch.randn(args.batch, 3, args.input_size, args.input_size, device=device
                         ).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 10, (args.batch,), device=device)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda"
                                           else [])
    with profile(activities=activities) as profiler:
        for _ in range(args.steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    on_device = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    totals: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        if event.key.startswith("aten::"):
            totals[_group(event.key)] += getattr(event, on_device)
    whole = sum(totals.values())
    print(f"{args.model}, {args.input_size}x{args.input_size}, batch {args.batch}, "
          f"{device.type}: {whole / 1e3 / args.steps:.1f} ms of aten ops per training step")
    for group, micros in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {group:22s} {micros / whole:6.1%}  {micros / 1e3 / args.steps:8.1f} ms")


if __name__ == "__main__":
    main()
