"""A network as the sequence of operations a device model prices: stem convolutions, dense
layers (with their concatenation), harmonic layers (with the concatenation of their inputs),
a harmonic block's output concatenation, transitions, pools and the head.

Pure arithmetic over a resolved config (no torch), so that pricing a config on the driver
costs a fraction of a millisecond. ``op_module`` builds the module of one operation for timing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from threshsearch.config import ArchitectureConfig
from threshsearch.links import harmonic_input_widths, harmonic_layers, harmonic_output_layers
from threshsearch.nn.dense import DenseStage
from threshsearch.nn.layers import ConvBNAct, PreActTransition, make_activation

KINDS = ("stem_conv", "stem_pool", "dense_layer", "harmonic_layer", "harmonic_output",
         "transition_post", "transition_pre", "pool_max", "pool_avg", "head")
ACTIVATED_KINDS = ("stem_conv", "dense_layer", "harmonic_layer", "transition_post",
                   "transition_pre")
# Kinds whose first convolution reads the operation's in_channels; the layout rule classifies
# them by it. The same kinds as ACTIVATED_KINDS, for another reason. A dense layer's second
# convolution (its 3x3) reads the bottleneck, 4 x growth by default: aligned under a rule whose
# multiple is 4, not always under one of 8 or 16, and not classified.
CONVOLUTION_KINDS = ("stem_conv", "dense_layer", "harmonic_layer", "transition_post",
                     "transition_pre")


@dataclass(frozen=True)
class Op:
    """One operation at a batch of one image. ``resolution`` is the side of its input map.
    ``shape`` holds what else fixes its cost: stem_conv (kernel, stride); dense_layer
    (bottleneck, growth); harmonic_layer and harmonic_output the widths concatenated;
    head (classes, head_norm)."""

    kind: str
    resolution: int
    in_channels: int
    out_channels: int
    shape: tuple[int, ...] = ()
    activation: str = "relu"

    @property
    def group(self) -> str:
        """Operations timed together and fitted with one cost line where the runtime has one
        layout: same kind, resolution, activation (named when not relu) and, for a stem
        convolution, kernel and stride (``layout_group`` adds the layout)."""
        return self.layout_group("")

    def layout_group(self, layout: str) -> str:
        """``group``, split by the memory layout the runtime runs the operation's convolution
        in (``layout`` its name; "" where the runtime has one layout)."""
        extra = f"-k{self.shape[0]}s{self.shape[1]}" if self.kind == "stem_conv" else ""
        if self.activation != "relu":
            extra += f"-{self.activation}"
        if layout:
            extra += f"-{layout}"
        return f"{self.kind}{extra}@{self.resolution}"

    def features(self) -> tuple[float, float, float]:
        """(multiply-adds, activation elements read and written, weights), per image."""
        area = self.resolution * self.resolution
        cin, cout = self.in_channels, self.out_channels
        if self.kind == "stem_conv":
            kernel, stride = self.shape
            out_area = (-(-self.resolution // stride)) ** 2
            weights = kernel * kernel * cin * cout
            return weights * out_area, cin * area + 3 * cout * out_area, weights
        if self.kind == "dense_layer":
            bottleneck, growth = self.shape
            weights = cin * bottleneck + 9 * bottleneck * growth
            moved = (2 * cin + 3 * bottleneck + growth + cout) * area  # the concat copies cin
            return weights * area, moved, weights
        if self.kind == "harmonic_layer":
            weights = 9 * cin * cout
            concat = 2 * cin if len(self.shape) > 1 else 0
            return weights * area, (cin + concat + 3 * cout) * area, weights
        if self.kind in ("transition_post", "transition_pre"):
            weights = cin * cout
            return weights * area, (3 * cin + cout) * area, weights
        if self.kind == "head":
            classes = self.shape[0]
            return cin * area + cin * classes, cin * area * (3 if self.shape[1] else 1), \
                cin * classes
        # Pools and concatenations: data movement only.
        return 0.0, (cin + cout) * area, 0.0


def network_ops(config: ArchitectureConfig, input_size: int) -> list[Op]:
    """Every operation of ``config``'s network on ``input_size`` x ``input_size`` images."""
    config.check_input_size(input_size)
    ops: list[Op] = []
    size, channels, stem = input_size, 3, config.stem
    for index, width in enumerate(stem.widths):
        kernel, stride = (stem.kernel, stem.stride) if index == 0 else (3, 1)
        ops.append(Op("stem_conv", size, channels, width, (kernel, stride)))
        size = (size + 2 * (kernel // 2) - kernel) // stride + 1
        channels = width
    if stem.pool:
        ops.append(Op("stem_pool", size, channels, channels))
        size = (size - 1) // 2 + 1
    for stage in config.resolve():
        spec = stage.config
        if stage.mode == "dense":
            bottleneck = spec.bottleneck or 4 * spec.growth
            for layer in range(spec.depth):
                cin = stage.in_channels + layer * spec.growth
                ops.append(Op("dense_layer", size, cin, cin + spec.growth,
                              (bottleneck, spec.growth)))
        else:
            layers = harmonic_layers(spec.depth, spec.growth, spec.multiplier)
            widths = {0: stage.in_channels} | {layer.index: layer.width for layer in layers}
            inputs = harmonic_input_widths(stage.in_channels, spec.depth, spec.growth,
                                           spec.multiplier)
            for layer, cin in zip(layers, inputs, strict=True):
                ops.append(Op("harmonic_layer", size, cin, layer.width,
                              tuple(widths[source] for source in layer.inputs)))
            outputs = tuple(widths[index] for index in harmonic_output_layers(spec.depth))
            ops.append(Op("harmonic_output", size, sum(outputs), stage.block_channels,
                          outputs))
        if spec.transition != "none":
            ops.append(Op(f"transition_{spec.transition}", size, stage.block_channels,
                          stage.out_channels))
        if spec.downsample:
            ops.append(Op(f"pool_{spec.pool}", size, stage.out_channels, stage.out_channels))
            size //= 2
    ops.append(Op("head", size, config.feature_channels, config.num_classes,
                  (config.num_classes, int(config.head_norm))))
    return [replace(op, activation=config.activation) if _activated(op) else op
            for op in ops]


def _activated(op: Op) -> bool:
    """Whether ``op`` runs the network's activation (a head only with its final norm)."""
    return op.kind in ACTIVATED_KINDS or (op.kind == "head" and bool(op.shape[1]))


class _Concat(nn.Module):
    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return torch.cat(tensors, 1)


class _ConcatConv(nn.Module):
    """A harmonic layer as the network runs it: the concatenation of its inputs, then the
    3x3 convolution-BN-activation."""

    def __init__(self, in_channels: int, out_channels: int, activation: str):
        super().__init__()
        self.layer = ConvBNAct(in_channels, out_channels, 3, activation=activation)

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.layer(torch.cat(tensors, 1) if len(tensors) > 1 else tensors[0])


class _Head(nn.Module):
    def __init__(self, channels: int, classes: int, norm: bool, activation: str):
        super().__init__()
        self.norm = nn.Sequential(nn.BatchNorm2d(channels), make_activation(activation)) \
            if norm else nn.Identity()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(
            self.norm(x), 1), 1))


def op_module(op: Op) -> tuple[nn.Module, list[tuple[int, int, int]]]:
    """The module that runs ``op`` and the (channels, height, width) of each of its inputs."""
    square = (op.resolution, op.resolution)
    single = [(op.in_channels, *square)]
    act = op.activation
    if op.kind == "stem_conv":
        return ConvBNAct(op.in_channels, op.out_channels, *op.shape, activation=act), single
    if op.kind == "stem_pool":
        return nn.MaxPool2d(3, 2, padding=1), single
    if op.kind == "dense_layer":
        bottleneck, growth = op.shape
        return DenseStage(op.in_channels, 1, growth, bottleneck, act), single
    if op.kind == "harmonic_layer":
        return (_ConcatConv(op.in_channels, op.out_channels, act),
                [(width, *square) for width in op.shape])
    if op.kind == "harmonic_output":
        return _Concat(), [(width, *square) for width in op.shape]
    if op.kind == "transition_post":
        return ConvBNAct(op.in_channels, op.out_channels, 1, activation=act), single
    if op.kind == "transition_pre":
        return PreActTransition(op.in_channels, op.out_channels, act), single
    if op.kind == "pool_max":
        return nn.MaxPool2d(2, 2), single
    if op.kind == "pool_avg":
        return nn.AvgPool2d(2, 2), single
    if op.kind == "head":
        return _Head(op.in_channels, op.shape[0], bool(op.shape[1]), act), single
    raise ValueError(f"unknown operation kind {op.kind!r}")
