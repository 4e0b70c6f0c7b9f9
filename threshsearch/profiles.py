"""A profile as data: one leaf module's cost, a network's totals, and how the totals are
summed from the leaves. No PyTorch: the profiler (``threshsearch.profiler``) fills it from
a forward pass, the counter (``threshsearch.counting``) from a config's arithmetic, and both
sum it here, so their totals are the same numbers, floats included."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from typing import Any

BYTES_PER_ELEMENT = 4  # float32, as the paper measured
MIB = 2**20


@dataclass(frozen=True)
class LayerCost:
    """One leaf module's cost (element counts, per image)."""

    name: str
    kind: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    madd: int
    flops: int
    mem_read: int
    mem_write: int


@dataclass(frozen=True)
class Profile:
    """Totals over a model. ``cio`` is HarDNet's traffic measure: the sum over convolutions
    of input plus output elements. ``activation_mib`` is the float32 size of every leaf
    module's output (torchstat's "memory")."""

    params: int
    madd: int
    flops: int
    memrw_mib: float
    mem_read_mib: float
    mem_write_mib: float
    cio: int
    activation_mib: float
    input_size: int
    layers: list[LayerCost] = field(repr=False)

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data.pop("layers")
        if per_layer:
            data["layers"] = [asdict(layer) for layer in self.layers]
        return data

    def table(self):  # -> pandas.DataFrame (imported lazily: pandas is slow to import)
        import pandas as pd

        return pd.DataFrame([asdict(layer) for layer in self.layers])


def summed(layers: list[LayerCost], convolutions: Collection[str], params: int,
           input_size: int) -> Profile:
    """The profile of a network of ``layers`` (``convolutions``: the names of those that are
    convolutions, for CIO) with ``params`` parameters in all."""
    read = sum(layer.mem_read for layer in layers) * BYTES_PER_ELEMENT / MIB
    write = sum(layer.mem_write for layer in layers) * BYTES_PER_ELEMENT / MIB
    activations = sum(math.prod(layer.output_shape) for layer in layers)
    cio = sum(math.prod(layer.input_shape) + math.prod(layer.output_shape)
              for layer in layers if layer.name in convolutions)
    return Profile(
        params=params,
        madd=sum(layer.madd for layer in layers),
        flops=sum(layer.flops for layer in layers),
        memrw_mib=read + write,
        mem_read_mib=read,
        mem_write_mib=write,
        cio=cio,
        activation_mib=activations * BYTES_PER_ELEMENT / MIB,
        input_size=input_size,
        layers=layers,
    )
