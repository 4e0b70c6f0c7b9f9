"""The profiler's figures for a config, worked out from the config: the layers, costs and
totals that ``profiler.profile_model`` gives for the network ``nn.build_model`` builds,
without building it (no PyTorch; microseconds where the meta-device profile takes tens to
hundreds of milliseconds).

The rules are the profiler's (torchstat's), applied to the modules the builder makes, in
the order of the forward pass and under the names ``named_modules`` gives them; the
oracle test (tests/test_counting.py) holds them equal to the meta-device profile, layer by
layer, over random configs of the shipped spaces and every preset. A change to the builder
or the profiler's rules is a change here too.
"""

from __future__ import annotations

from threshsearch.config import ArchitectureConfig
from threshsearch.links import harmonic_input_widths, harmonic_layers
from threshsearch.profiles import LayerCost, Profile, summed

ACTIVATION_KINDS = {"relu": "ReLU", "relu6": "ReLU6"}


class _Network:
    """The leaf layers of one network, recorded as the forward pass would meet them."""

    def __init__(self, activation: str) -> None:
        self.layers: list[LayerCost] = []
        self.convolutions: set[str] = set()
        self.activation = ACTIVATION_KINDS[activation]

    def add(self, name: str, kind: str, shape_in: tuple[int, ...], shape_out: tuple[int, ...],
            params: int, madd: int, flops: int, read: int, write: int) -> None:
        self.layers.append(LayerCost(name, kind, shape_in, shape_out, params, madd, flops,
                                     read, write))

    def conv(self, name: str, channels_in: int, channels_out: int, kernel: int, stride: int,
             size: int) -> int:
        """A bias-free convolution with padding kernel // 2; returns its output side. The
        builder makes a 3x3 stride-1 one a ``Conv3x3`` (a Conv2d to the profiler)."""
        out = (size + 2 * (kernel // 2) - kernel) // stride + 1
        per_output = kernel * kernel * channels_in
        params = per_output * channels_out
        n_in, n_out = channels_in * size * size, channels_out * out * out
        kind = "Conv3x3" if (kernel, stride) == (3, 1) else "Conv2d"
        self.add(name, kind, (channels_in, size, size), (channels_out, out, out), params,
                 (2 * per_output - 1) * n_out, per_output * n_out, n_in + params, n_out)
        self.convolutions.add(name)
        return out

    def norm(self, name: str, channels: int, size: int) -> None:
        n = channels * size * size
        shape = (channels, size, size)
        self.add(name, "BatchNorm2d", shape, shape, 2 * channels, 4 * n, 2 * n,
                 n + 2 * channels, n)

    def act(self, name: str, channels: int, size: int) -> None:
        n = channels * size * size
        shape = (channels, size, size)
        self.add(name, self.activation, shape, shape, 0, n, n, n, n)

    def conv_norm_act(self, name: str, channels_in: int, channels_out: int, kernel: int,
                      stride: int, size: int) -> int:
        """``nn.layers.ConvBNAct``; returns its output side."""
        out = self.conv(f"{name}.0", channels_in, channels_out, kernel, stride, size)
        self.norm(f"{name}.1", channels_out, out)
        self.act(f"{name}.2", channels_out, out)
        return out

    def pool(self, name: str, kind: str, kernel: int, stride: int, padding: int,
             channels: int, size: int) -> int:
        out = (size + 2 * padding - kernel) // stride + 1
        n_in, n_out = channels * size * size, channels * out * out
        area = kernel * kernel
        madd = (area - 1) * n_out if kind == "MaxPool2d" else area * n_out
        self.add(name, kind, (channels, size, size), (channels, out, out), 0, madd, n_in,
                 n_in, n_out)
        return out

    def passive(self, name: str, kind: str, shape: tuple[int, ...]) -> None:
        """A leaf that costs nothing but whose output counts as memory (Dropout, Identity)."""
        self.add(name, kind, shape, shape, 0, 0, 0, 0, 0)


def _stem(net: _Network, config: ArchitectureConfig, size: int) -> tuple[int, int]:
    stem, channels = config.stem, 3
    for index, width in enumerate(stem.widths):
        kernel, stride = (stem.kernel, stem.stride) if index == 0 else (3, 1)
        size = net.conv_norm_act(f"features.stem.{index}", channels, width, kernel, stride,
                                 size)
        channels = width
    if stem.pool:
        size = net.pool(f"features.stem.{len(stem.widths)}", "MaxPool2d", 3, 2, 1, channels,
                        size)
    return channels, size


def count_profile(config: ArchitectureConfig, input_size: int) -> Profile:
    """What ``profiler.profile_model(build_model(config), input_size)`` gives, from the
    config alone; ConfigError when the input is too small for the network."""
    config.check_input_size(input_size)
    net = _Network(config.activation)
    channels, size = _stem(net, config, input_size)
    for stage in config.resolve():
        spec, prefix = stage.config, f"features.stage{stage.index}"
        if stage.mode == "dense":
            bottleneck = spec.bottleneck or 4 * spec.growth
            for layer in range(spec.depth):
                name = f"{prefix}.block.layers.{layer}"
                width = stage.in_channels + layer * spec.growth
                net.norm(f"{name}.norm1", width, size)
                net.act(f"{name}.act1", width, size)
                net.conv(f"{name}.conv1", width, bottleneck, 1, 1, size)
                net.norm(f"{name}.norm2", bottleneck, size)
                net.act(f"{name}.act2", bottleneck, size)
                net.conv(f"{name}.conv2", bottleneck, spec.growth, 3, 1, size)
        else:
            layers = harmonic_layers(spec.depth, spec.growth, spec.multiplier)
            widths = harmonic_input_widths(stage.in_channels, spec.depth, spec.growth,
                                           spec.multiplier)
            for index, (layer, width) in enumerate(zip(layers, widths, strict=True)):
                net.conv_norm_act(f"{prefix}.block.layers.{index}", width, layer.width, 3, 1,
                                  size)
        channels = stage.block_channels
        if spec.dropout > 0:
            net.passive(f"{prefix}.dropout", "Dropout", (channels, size, size))
        if spec.transition == "post":
            net.conv_norm_act(f"{prefix}.transition", channels, stage.out_channels, 1, 1, size)
        elif spec.transition == "pre":
            net.norm(f"{prefix}.transition.0", channels, size)
            net.act(f"{prefix}.transition.1", channels, size)
            net.conv(f"{prefix}.transition.2", channels, stage.out_channels, 1, 1, size)
        channels = stage.out_channels
        if spec.downsample:
            kind = "MaxPool2d" if spec.pool == "max" else "AvgPool2d"
            size = net.pool(f"{prefix}.pool", kind, 2, 2, 0, channels, size)
    if config.head_norm:
        net.norm("head_norm", channels, size)
    net.passive("dropout", "Dropout" if config.dropout > 0 else "Identity", (channels,))
    params = channels * config.num_classes + config.num_classes
    net.add("classifier", "Linear", (channels,), (config.num_classes,), params,
            config.num_classes * (2 * channels - 1), channels * config.num_classes,
            channels + params, config.num_classes)
    return summed(net.layers, net.convolutions, sum(layer.params for layer in net.layers),
                  input_size)
