"""The connection rules of dense and harmonic stages, as plain arithmetic.

This is the one place that knows which layer reads which and how wide each layer is. The
config uses it to resolve channel counts (and so the threshold decision) without torch; the
modules in ``threshsearch.nn`` use it to wire themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class HarmonicLayer:
    """Layer ``index`` (1-based) of a harmonic block: what it reads and how wide it is."""

    index: int
    inputs: tuple[int, ...]  # layer indices, nearest first; 0 is the block input
    width: int


def _even_width(width: float) -> int:
    # HarDNet's rounding, kept bit for bit: the presets' parameter counts depend on it.
    return int(int(width + 1) / 2) * 2


@cache
def harmonic_layers(depth: int, growth: int, multiplier: float) -> tuple[HarmonicLayer, ...]:
    """Links and widths of the ``depth`` layers of a harmonic block.

    Layer ``l`` reads every layer ``l - 2**i`` for which ``2**i`` divides ``l``; its width is
    ``growth * multiplier**t`` (``2**t`` the largest power of two dividing ``l``), multiplied
    out step by step in floating point as the reference code does, then rounded to even.
    """
    layers = []
    for index in range(1, depth + 1):
        inputs = []
        width = float(growth)
        step = 1
        while index % step == 0:
            inputs.append(index - step)
            if step > 1:
                width *= multiplier
            step *= 2
        layers.append(HarmonicLayer(index, tuple(inputs), _even_width(width)))
    return tuple(layers)


def harmonic_output_layers(depth: int) -> tuple[int, ...]:
    """The layers concatenated into the block output: the odd ones and the last, ascending."""
    return tuple(index for index in range(1, depth + 1) if index % 2 == 1 or index == depth)


def harmonic_input_widths(
    in_channels: int, depth: int, growth: int, multiplier: float
) -> tuple[int, ...]:
    """The number of channels each layer of a harmonic block reads."""
    layers = harmonic_layers(depth, growth, multiplier)
    widths = {0: in_channels} | {layer.index: layer.width for layer in layers}
    return tuple(sum(widths[source] for source in layer.inputs) for layer in layers)


def harmonic_output_width(depth: int, growth: int, multiplier: float) -> int:
    """Channels leaving a harmonic block (its input is not part of the output)."""
    layers = harmonic_layers(depth, growth, multiplier)
    return sum(layers[index - 1].width for index in harmonic_output_layers(depth))


def dense_output_width(in_channels: int, depth: int, growth: int) -> int:
    """Channels leaving a dense block: its input plus ``growth`` per layer."""
    return in_channels + depth * growth
