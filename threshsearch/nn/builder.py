"""Config -> module: the one builder behind every preset, search trial and exported result."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from threshsearch.config import ArchitectureConfig, ResolvedStage
from threshsearch.nn.dense import DenseStage
from threshsearch.nn.harmonic import HarmonicStage
from threshsearch.nn.layers import ConvBNAct, PreActTransition


def _stem(config: ArchitectureConfig) -> nn.Sequential:
    stem = config.stem
    layers: list[nn.Module] = []
    in_channels = 3
    for index, width in enumerate(stem.widths):
        kernel, stride = (stem.kernel, stem.stride) if index == 0 else (3, 1)
        layers.append(ConvBNAct(in_channels, width, kernel, stride, config.activation))
        in_channels = width
    if stem.pool:
        layers.append(nn.MaxPool2d(3, 2, padding=1))
    return nn.Sequential(*layers)


def _stage(stage: ResolvedStage, activation: str) -> nn.Sequential:
    spec = stage.config
    layers: dict[str, nn.Module] = {}
    if stage.mode == "dense":
        layers["block"] = DenseStage(stage.in_channels, spec.depth, spec.growth,
                                     spec.bottleneck or 4 * spec.growth, activation)
    else:
        layers["block"] = HarmonicStage(stage.in_channels, spec.depth, spec.growth,
                                        spec.multiplier, activation)
    if spec.dropout > 0:
        layers["dropout"] = nn.Dropout(spec.dropout)
    if spec.transition == "post":
        layers["transition"] = ConvBNAct(stage.block_channels, stage.out_channels, 1,
                                         activation=activation)
    elif spec.transition == "pre":
        layers["transition"] = PreActTransition(stage.block_channels, stage.out_channels,
                                                activation)
    if spec.downsample:
        layers["pool"] = nn.MaxPool2d(2, 2) if spec.pool == "max" else nn.AvgPool2d(2, 2)
    return nn.Sequential(OrderedDict(layers))


class ThreshNet(nn.Module):
    """A network of the ThreshNet family, built from an ``ArchitectureConfig``.

    ``features`` holds the stem and the stages (``stage1``, ``stage2``, ...), each a block,
    an optional dropout, a transition and an optional pool; the head is global average
    pooling, dropout and a linear classifier.
    """

    def __init__(self, config: ArchitectureConfig):
        super().__init__()
        self.config = config
        self.features = nn.Sequential()
        self.features.add_module("stem", _stem(config))
        for stage in config.resolve():
            self.features.add_module(f"stage{stage.index}", _stage(stage, config.activation))
        channels = config.feature_channels
        self.head_norm = nn.BatchNorm2d(channels) if config.head_norm else None
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(channels, config.num_classes)
        self._activation = F.relu6 if config.activation == "relu6" else F.relu
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.head_norm is not None:
            # A functional activation, as torchvision's DenseNet has it: the profiler's
            # module-level counting then matches the published DenseNet-121 figures.
            x = self._activation(self.head_norm(x))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.classifier(self.dropout(x))


def build_model(config: ArchitectureConfig) -> ThreshNet:
    """Build the network a config describes (weights initialised, training mode)."""
    return ThreshNet(config)
