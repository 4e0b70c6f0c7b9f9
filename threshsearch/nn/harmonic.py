"""Harmonic (HarDNet) stages: layer l reads layers l - 2**i for every power of two dividing l."""

from __future__ import annotations

import torch
from torch import nn

from threshsearch.links import harmonic_input_widths, harmonic_layers, harmonic_output_layers
from threshsearch.nn.layers import ConvBNAct


class HarmonicStage(nn.Module):
    """A harmonic block of 3x3 ConvBNAct layers, wired by ``threshsearch.links``. The output
    is the odd-numbered layers and the last, concatenated; the block input is not part of it."""

    def __init__(self, in_channels: int, depth: int, growth: int, multiplier: float,
                 activation: str = "relu"):
        super().__init__()
        specs = harmonic_layers(depth, growth, multiplier)
        in_widths = harmonic_input_widths(in_channels, depth, growth, multiplier)
        self.links = [spec.inputs for spec in specs]
        self.output_layers = harmonic_output_layers(depth)
        self.layers = nn.ModuleList(
            ConvBNAct(width_in, spec.width, 3, activation=activation)
            for spec, width_in in zip(specs, in_widths, strict=True)
        )
        self.out_channels = sum(specs[index - 1].width for index in self.output_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [x]
        for layer, inputs in zip(self.layers, self.links, strict=True):
            tensors = [outputs[source] for source in inputs]
            outputs.append(layer(torch.cat(tensors, 1) if len(tensors) > 1 else tensors[0]))
        return torch.cat([outputs[index] for index in self.output_layers], 1)
