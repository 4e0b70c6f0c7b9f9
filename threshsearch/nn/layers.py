"""Small building blocks shared by the stages, the stem and the transitions."""

from __future__ import annotations

from torch import nn

from threshsearch.nn.conv import Conv3x3

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "relu6": nn.ReLU6}


def make_activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name](inplace=True)


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BatchNorm -> activation."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 activation: str = "relu"):
        conv = (Conv3x3(in_channels, out_channels) if (kernel, stride) == (3, 1) else
                nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2,
                          bias=False))
        super().__init__(
            conv,
            nn.BatchNorm2d(out_channels),
            make_activation(activation),
        )


class PreActTransition(nn.Sequential):
    """DenseNet's transition: BN -> activation -> 1x1 conv."""

    def __init__(self, in_channels: int, out_channels: int, activation: str = "relu"):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            make_activation(activation),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
        )
