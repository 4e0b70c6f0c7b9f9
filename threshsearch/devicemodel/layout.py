"""A runtime's memory-layout rule, probed once on the device and carried by its device model.

ONNX Runtime's CPU provider runs a convolution in its blocked NCHWc layout or not depending on
the channels it reads (on the project's 2-core machine: at most 16, or a multiple of 4), and
the two kernels can be 4x apart on a small map (docs/benchmarks.md, "Why ONNX Runtime's model
misses"). A table group holding both cannot be fitted by one cost line, so a model with a rule
keeps each convolution kind's blocked and plain operations in groups of their own. The rule is
read from the runtime's optimised graphs of single convolutions, not assumed: it depends on
the CPU's vector width and the library's version.
"""

from __future__ import annotations

import warnings

from threshsearch.devicemodel.fileformat import LayoutRule
from threshsearch.devicemodel.ops import CONVOLUTION_KINDS, Op
from threshsearch.devicemodel.runtimes import Runtime

PROBED_CHANNELS = (1, 64)
MULTIPLES = (2, 4, 8, 16, 32)
PLAIN = "plain"


def probe_layout(runtime: Runtime) -> LayoutRule | None:
    """The rule by which ``runtime`` picks its blocked layout, from a convolution of every
    input width in PROBED_CHANNELS; None when it has one layout over them all, or (with a
    warning) when no rule of the form "at most n channels, or a multiple of m" fits."""
    low, high = PROBED_CHANNELS
    blocked = {channels: runtime.blocked_layout(channels) for channels in range(low, high + 1)}
    if len(set(blocked.values())) == 1:
        return None
    narrow = low - 1
    while blocked.get(narrow + 1):
        narrow += 1
    for multiple in MULTIPLES:
        rule = LayoutRule(narrow_max_channels=narrow, channel_multiple=multiple,
                          probed_channels=PROBED_CHANNELS)
        if all(rule.blocks(channels) == is_blocked for channels, is_blocked in blocked.items()):
            return rule
    warnings.warn(f"{runtime.name}: its blocked layout follows no rule of the form 'at most "
                  f"n input channels, or a multiple of m' over {low}-{high} channels; the "
                  "device model keeps blocked and plain convolutions in the same groups",
                  stacklevel=2)
    return None


def table_group(op: Op, layout: LayoutRule | None) -> str:
    """The table group that prices ``op`` in a model with ``layout`` (or none)."""
    if layout is None or op.kind not in CONVOLUTION_KINDS:
        return op.group
    return op.layout_group(layout.name if layout.blocks(op.in_channels) else PLAIN)
