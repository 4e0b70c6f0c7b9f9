"""Dense (DenseNet) stages: every layer reads the concatenation of all before it."""

from __future__ import annotations

import torch
from torch import nn

from threshsearch.nn.conv import Conv3x3
from threshsearch.nn.layers import make_activation


class _DenseLayer(nn.Module):
    """Pre-activation bottleneck: BN-act-1x1 conv to ``bottleneck``, BN-act-3x3 conv to
    ``growth``. Returns only the new ``growth`` channels; the stage does the concatenation."""

    def __init__(self, in_channels: int, growth: int, bottleneck: int, activation: str):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.act1 = make_activation(activation)
        self.conv1 = nn.Conv2d(in_channels, bottleneck, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bottleneck)
        self.act2 = make_activation(activation)
        self.conv2 = Conv3x3(bottleneck, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act2(self.norm2(self.conv1(self.act1(self.norm1(x))))))


class DenseStage(nn.Module):
    """``depth`` dense layers; the output is the input followed by every layer's new channels."""

    def __init__(self, in_channels: int, depth: int, growth: int, bottleneck: int,
                 activation: str = "relu"):
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(in_channels + index * growth, growth, bottleneck, activation)
            for index in range(depth)
        )
        self.out_channels = in_channels + depth * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Growing the concatenation one layer at a time (the reference code's way) measured
        # the same as concatenating the list of all earlier outputs for every layer
        # (torchvision's way), within the noise: docs/benchmarks.md.
        for layer in self.layers:
            x = torch.cat([x, layer(x)], 1)
        return x
