"""Analytic cost of any module: parameters, MAdd, Flops, memory traffic, CIO.

The counting rules are those of the torchstat tool, which is what the ThreshNet paper's
Table V reports ("MACs" there is torchstat's MAdd, "FLOPs" its Flops, "MemR+W" its memory
read + write), re-implemented here because torchstat itself no longer runs on current pandas.
One forward pass at batch 1 with a hook on every leaf module; a module called several times
is counted once, at its last call, as torchstat does. Models on the ``meta`` device are
profiled without computing anything, which is how the CLI and the search use it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from threshsearch.profiles import LayerCost, Profile, summed

__all__ = ["LayerCost", "Profile", "profile_model"]


def _kernel_area(module: nn.Module) -> int:
    kernel = module.kernel_size
    return kernel * kernel if isinstance(kernel, int) else math.prod(kernel)


def _cost(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> tuple[int, int, int, int]:
    """(MAdd, Flops, elements read, elements written) for one image, by torchstat's rules."""
    n_in = inp[0].numel()
    n_out = out[0].numel()
    n_params = sum(parameter.numel() for parameter in module.parameters(recurse=False))
    if isinstance(module, nn.Conv2d):
        per_output = _kernel_area(module) * module.in_channels // module.groups
        bias = module.bias is not None
        madd = (2 * per_output - (0 if bias else 1)) * n_out
        flops = per_output * n_out + (n_out if bias else 0)
        return madd, flops, n_in + n_params, n_out
    if isinstance(module, nn.BatchNorm2d):
        return 4 * n_in, (2 if module.affine else 1) * n_in, n_in + 2 * module.num_features, n_in
    if isinstance(module, nn.ReLU | nn.ReLU6):
        return n_in, n_in, n_in, n_in
    if isinstance(module, nn.MaxPool2d):
        return (_kernel_area(module) - 1) * n_out, n_in, n_in, n_out
    if isinstance(module, nn.AvgPool2d):
        return _kernel_area(module) * n_out, n_in, n_in, n_out
    if isinstance(module, nn.Linear):
        return (module.out_features * (2 * module.in_features - 1),
                module.in_features * module.out_features, n_in + n_params, n_out)
    return 0, 0, 0, 0


def profile_model(model: nn.Module, input_size: int = 224, in_channels: int = 3) -> Profile:
    """Profile ``model`` on a 1 x ``in_channels`` x ``input_size`` x ``input_size`` input, on
    whatever device its parameters are (use ``torch.device("meta")`` to build it for free)."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    costs: dict[str, LayerCost] = {}
    handles = []

    def record(name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not inputs or not isinstance(inputs[0], torch.Tensor):
                return
            madd, flops, read, write = _cost(module, inputs[0], output)
            costs[name] = LayerCost(
                name, type(module).__name__, tuple(inputs[0].shape[1:]), tuple(output.shape[1:]),
                sum(p.numel() for p in module.parameters(recurse=False)),
                madd, flops, read, write,
            )
        return hook

    for name, module in model.named_modules():
        if not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_channels, input_size, input_size, device=device))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    convolutions = {name for name, module in model.named_modules()
                    if isinstance(module, nn.Conv2d)}
    return summed(list(costs.values()), convolutions,
                  sum(p.numel() for p in model.parameters()), input_size)
