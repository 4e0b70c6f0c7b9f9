"""The device-model file: one self-describing JSON document (device, runtime and library
versions, settings, what it covers, the operation table, the calibration and its own
held-out error), declared once as pydantic models. ``threshsearch schema device-model``
writes its JSON Schema.
"""

from __future__ import annotations

from typing import Annotated, Literal

from annotated_types import Ge
from pydantic import Field

from threshsearch.devicemodel.ops import KINDS
from threshsearch.devicemodel.runtimes import DTYPES, RUNTIMES
from threshsearch.validation import Bool, Choice, Int, Schema, SchemaError

FORMAT = "threshsearch-device-model"
FORMAT_VERSION = 1

Milliseconds = Annotated[float, Ge(0)]


class DeviceModelError(SchemaError):
    """A device-model file that does not read back."""


class _Section(Schema):
    error = DeviceModelError
    what = "device model"


class DeviceInfo(_Section):
    kind: Choice("cpu", "cuda") = Field(description="the device type the model was made on")
    name: str = Field(description="the CPU model (/proc/cpuinfo) or the GPU's name")
    hostname: str = Field(description="the machine it was profiled on")
    logical_cores: Int(1, 1 << 20) = Field(description="logical cores of that machine")


class RuntimeInfo(_Section):
    name: Choice(*RUNTIMES) = Field(description="the runtime the networks were timed in")
    versions: dict[str, str] = Field(description="torch, onnxruntime and python versions")


class Settings(_Section):
    batch_size: Int(1, 1 << 16) = Field(description="images per inference")
    input_size: Int(1, 1 << 16) = Field(description="side of the square input image")
    threads: Int(1, 1024) = Field(description="intra-op threads of the runtime")
    dtype: Choice(*DTYPES) = Field(description="the computation's data type")
    channels_last: Bool = Field(description="PyTorch only: weights and inputs channels_last")


class ChannelRange(_Section):
    in_channels: tuple[int, int] = Field(description="lowest and highest input channels timed")
    out_channels: tuple[int, int] = Field(description="lowest and highest output channels")


class Coverage(_Section):
    kinds: list[Choice(*KINDS)] = Field(description="operation kinds the table prices")
    resolutions: list[int] = Field(description="feature-map sides the table prices")
    groups: dict[str, ChannelRange] = Field(
        description="per table group (see TableGroup.group): the channel counts it was "
        "timed at; outside them its cost line is extrapolated")


class LayoutRule(_Section):
    """Which convolutions the runtime runs in its blocked memory layout, probed on the
    device: the table keeps those and the others in groups of their own."""

    name: Literal["nchwc"] = Field("nchwc", description="the blocked layout (ONNX Runtime's)")
    narrow_max_channels: Int(0, 1 << 20) = Field(
        description="a convolution reading at most this many channels runs blocked")
    channel_multiple: Int(1, 1 << 20) | None = Field(
        description="so does one reading a multiple of this many channels (null: no multiple)")
    probed_channels: tuple[int, int] = Field(
        description="the input channels probed (lowest, highest): the rule held for each")

    def blocks(self, in_channels: int) -> bool:
        """Whether a convolution reading ``in_channels`` runs in the blocked layout."""
        return in_channels <= self.narrow_max_channels or (
            self.channel_multiple is not None and in_channels % self.channel_multiple == 0)


class TableSample(_Section):
    in_channels: int
    out_channels: int
    shape: list[int] = Field(description="the operation's other shape figures (see ops.Op)")
    ms: Milliseconds = Field(description="p10 of its timed calls, copies cycled (cold cache), "
                             "less the runtime's call overhead")


class TableGroup(_Section):
    group: str = Field(description="kind@resolution, with the layout (-nchwc, -plain) where "
                       "the model has a layout rule")
    coefficients: list[float] = Field(
        description="ms = c0 + c1 * multiply-adds + c2 * elements moved + c3 * weights "
        "(non-negative least squares over the samples)")
    samples: list[TableSample]


class Calibration(_Section):
    form: str = Field(description="how the features combine into the network's latency")
    features: list[str] = Field(description="the features, in the coefficients' order")
    coefficients: list[float]
    networks: Int(1, 1 << 20) = Field(description="whole networks timed to fit it")
    call_overhead_ms: Milliseconds = Field(
        description="the runtime's cost of one call with nothing to compute; taken off every "
        "timed operation (the table's samples are net of it)")


class HeldOutError(_Section):
    method: str = Field(description="how the networks were held out")
    networks: Int(1, 1 << 20)
    within_10pct: float = Field(description="share of held-out networks within +-10 %")
    median_abs_pct: float = Field(description="median absolute error, % of the measured")
    p90_abs_pct: float
    max_abs_pct: float
    spearman: float = Field(description="rank correlation, predicted vs measured")


class ProfilingInfo(_Section):
    started: str = Field(description="when profiling began (ISO 8601, UTC)")
    seconds: Annotated[float, Ge(0)] = Field(description="how long profiling took")
    operations_timed: int
    networks_timed: int
    seed: int
    rounds: Int(1, 1 << 10) = Field(1, description="rounds of timings (the first over all of "
                                    "them); each timing's fastest round counts")
    round_spread_p90_pct: Annotated[float, Ge(0)] | None = Field(
        None, description="how far apart the rounds of the same timing were (p90 of slowest / "
        "fastest - 1, in %, over the timings a later round took whatever their figures: all, "
        "or the sentinels): how steady the machine was while profiled")
    timings_by_round: list[Annotated[int, Ge(0)]] | None = Field(
        None, description="how many timings each round took: the first all of them, a later "
        "one those the fit of the rounds before found suspiciously slow, the call overhead "
        "and the sentinels, a random tenth of all timings (or all again)")


class DeviceModelFile(_Section):
    """A device model: the latency of networks of the ThreshNet family on one device and
    runtime, predicted from a table of timed operations and a calibration on whole networks."""

    format: Literal[FORMAT] = FORMAT
    format_version: int = Field(FORMAT_VERSION, description="bumped on incompatible changes")
    device: DeviceInfo
    runtime: RuntimeInfo
    settings: Settings
    covers: Coverage
    layout: LayoutRule | None = Field(
        None, description="the runtime's layout rule (None: one layout, groups not split)")
    table: list[TableGroup]
    calibration: Calibration
    held_out: HeldOutError
    profiling: ProfilingInfo
