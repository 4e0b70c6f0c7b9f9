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
from collections.abc import Iterable
from typing import TYPE_CHECKING

from threshsearch.devicemodel.fileformat import LayoutRule
from threshsearch.devicemodel.ops import CONVOLUTION_KINDS, Op

if TYPE_CHECKING:
    from threshsearch.devicemodel.runtimes import Runtime

PROBED_CHANNELS = (1, 64)
PROBED_KERNELS = (1, 3)  # the 1x1 convolutions of dense layers and transitions, the 3x3 ones
MULTIPLES = (2, 4, 8, 16, 32)
PLAIN = "plain"


def probe_layout(runtime: Runtime) -> LayoutRule | None:
    """The rule by which ``runtime`` picks its blocked layout, read from convolutions of
    every input width in PROBED_CHANNELS and each of PROBED_KERNELS; None when it has one
    layout over them all, or (with a warning) when the kernels disagree or no single rule of
    the form "at most n input channels, or a multiple of m" fits."""
    low, high = PROBED_CHANNELS
    by_kernel = [{channels: runtime.blocked_layout(channels, kernel)
                  for channels in range(low, high + 1)} for kernel in PROBED_KERNELS]
    blocked = by_kernel[0]
    agree = all(other == blocked for other in by_kernel)
    if agree and len(set(blocked.values())) == 1:
        return None
    narrow = low - 1
    while blocked.get(narrow + 1):
        narrow += 1
    rules = [LayoutRule(narrow_max_channels=narrow, channel_multiple=multiple,
                        probed_channels=PROBED_CHANNELS) for multiple in (None, *MULTIPLES)]
    fitting = [rule for rule in rules
               if all(rule.blocks(channels) == is_blocked for channels, is_blocked in
                      blocked.items())]
    if agree and len(fitting) == 1:
        return fitting[0]
    if not agree:
        why = "differs between kernel sizes"
    elif fitting:
        why = (f"fits several rules (at most {narrow}, or a multiple of any of "
               f"{', '.join(str(rule.channel_multiple) for rule in fitting)})")
    else:
        why = "follows no rule of the form 'at most n, or a multiple of m'"
    warnings.warn(f"{runtime.name}: its blocked layout over {low}-{high} input channels {why};"
                  " the device model keeps blocked and plain convolutions in the same groups",
                  stacklevel=2)
    return None


def table_group(op: Op, layout: LayoutRule | None) -> str:
    """The table group that prices ``op`` in a model with ``layout`` (or none)."""
    if layout is None or op.kind not in CONVOLUTION_KINDS:
        return op.group
    return op.layout_group(layout.name if layout.blocks(op.in_channels) else PLAIN)


def other_layout_groups(groups: Iterable[str], layout: LayoutRule | None) -> dict[str, str]:
    """For each layout group missing beside a timed one of the same kind and resolution, the
    timed one: {missing: timed}."""
    if layout is None:
        return {}
    present = set(groups)
    pairs = (f"-{layout.name}@", f"-{PLAIN}@")
    found: dict[str, str] = {}
    for group in sorted(present):
        for mine, other in (pairs, pairs[::-1]):
            sibling = group.replace(mine, other)
            if mine in group and sibling not in present:
                found[sibling] = group
    return found
