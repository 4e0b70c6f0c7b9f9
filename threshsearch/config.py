"""The architecture config: one validated, serialisable, hashable description of a network of
the ThreshNet family (DenseNet and HarDNet included).

A config says what to build, never how: ``threshsearch.nn.build_model`` turns it into a module.
Fields that can be derived (a stage's connection mode from the threshold, a transition width
from a reduction rate, a dense bottleneck from the growth) may be left out; ``resolve`` works
them out and the content hash is taken over the resolved network, so two configs that build
the same network hash alike.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Interval, Len
from pydantic import AfterValidator, BeforeValidator, Field, Strict, model_validator

from threshsearch.links import dense_output_width, harmonic_output_width
from threshsearch.validation import (
    Bool,
    Choice,
    Int,
    Number,
    Schema,
    SchemaError,
    expect,
    expected,
    problem,
)

MODES = ("auto", "dense", "harmonic")
TRANSITIONS = ("post", "pre", "none")
POOLS = ("max", "avg")
ACTIVATIONS = ("relu", "relu6")

# Bounds that keep a hand-written or sampled config buildable on real hardware.
MAX_STAGES = 16
MAX_DEPTH = 256
MAX_WIDTH = 8192
MAX_CLASSES = 100_000
MAX_KERNEL = 15
MAX_STRIDE = 4
MAX_REDUCTION = 4.0


class ConfigError(SchemaError):
    """An invalid config. Each problem names the field, the bad value and what is valid."""


class _Config(Schema):
    error = ConfigError


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError("even")
    return value


Width = Int(1, MAX_WIDTH)


class StemConfig(_Config):
    """Convolutions before the first stage: ``widths[0]`` is a ``kernel`` x ``kernel`` conv
    with ``stride``, every further width a 3x3 conv; ``pool`` adds a 3x3 stride-2 max pool."""

    widths: Annotated[tuple[Width, ...], Len(1, 4), expect("a list of 1 to 4 channel counts")] \
        = Field((32, 64), description="output channels of each stem convolution")
    kernel: Annotated[int, Strict(), Interval(ge=1, le=MAX_KERNEL), AfterValidator(_odd),
                      expect(f"an odd integer from 1 to {MAX_KERNEL}")] = Field(
        3, description="kernel size of the first convolution")
    stride: Int(1, MAX_STRIDE) = Field(2, description="stride of the first convolution")
    pool: Bool = Field(True, description="a 3x3 stride-2 max pool after the convolutions")


STEM_STYLES: dict[str, StemConfig] = {
    "threshnet": StemConfig(widths=(32, 64), kernel=3, stride=2, pool=True),
    "hardnet85": StemConfig(widths=(48, 96), kernel=3, stride=2, pool=True),
    "densenet": StemConfig(widths=(64,), kernel=7, stride=2, pool=True),
    # Full resolution for 32x32 inputs: no stride, no pool.
    "cifar": StemConfig(widths=(32, 64), kernel=3, stride=1, pool=False),
}


def _stem_style(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value in STEM_STYLES:
        return STEM_STYLES[value]
    raise expected(f"one of {', '.join(STEM_STYLES)} or a mapping of stem fields")


class StageConfig(_Config):
    """One stage: a dense or harmonic block, then its transition.

    ``mode`` "auto" lets the threshold decide. ``bottleneck`` (dense only) defaults to
    4 x growth; ``multiplier`` is HarDNet's m (harmonic only). ``transition_width`` None means
    "derive it from the block output and the config's reduction rate". ``transition`` is
    "post" (conv-BN-act, ThreshNet/HarDNet), "pre" (BN-act-conv, DenseNet) or "none".
    ``dropout`` applies before the transition.
    """

    depth: Int(1, MAX_DEPTH) = Field(description="layers in the block")
    growth: Width = Field(description="channels each layer adds (k)")
    mode: Choice(*MODES) = Field(
        "auto", description="dense, harmonic, or auto: harmonic iff the channels entering "
        "the stage are >= the config's threshold")
    bottleneck: Width | None = Field(
        None, description="dense only: 1x1 bottleneck width; default 4 x growth")
    multiplier: Number(0, 4, low_open=True) = Field(
        1.7, description="harmonic only: HarDNet's channel multiplier m")
    transition_width: Width | None = Field(
        None, description="channels leaving the stage; default: from the reduction rate")
    transition: Choice(*TRANSITIONS) = Field(
        "post", description="post: conv-BN-act; pre: BN-act-conv (DenseNet); none")
    downsample: Bool = Field(True, description="halve the feature map after the stage")
    pool: Choice(*POOLS) = Field("max", description="the downsampling pool")
    dropout: Number(0, 1, high_open=True) = Field(
        0.0, description="dropout before the transition")


@dataclass(frozen=True)
class ResolvedStage:
    """A stage with everything derived: what the builder and the profiler work from."""

    index: int  # 1-based
    mode: str  # "dense" or "harmonic"
    in_channels: int
    block_channels: int  # leaving the block, before the transition
    out_channels: int  # leaving the stage
    config: StageConfig


def _infinity(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("inf", ".inf", "infinity"):
        return math.inf
    return value


class ArchitectureConfig(_Config):
    """A whole network. ``threshold``: a stage in "auto" mode is harmonic iff the channels
    entering it are >= threshold (0: all harmonic, HarDNet; inf: all dense, DenseNet).
    ``dense_reduction``/``harmonic_reduction`` derive transition widths not given explicitly.
    ``head_norm`` adds DenseNet's final BN and activation; ``dropout`` precedes the classifier.
    """

    stages: Annotated[tuple[StageConfig, ...], Len(1, MAX_STAGES),
                      expect(f"a list of 1 to {MAX_STAGES} stages")] = Field(
        description="the stages, in order")
    stem: Annotated[StemConfig, BeforeValidator(
        _stem_style, json_schema_input_type=StemConfig | Choice(*STEM_STYLES))] = Field(
        STEM_STYLES["threshnet"], description=f"a stem style ({', '.join(STEM_STYLES)}) or "
        "its fields")
    threshold: Annotated[float, BeforeValidator(
        _infinity, json_schema_input_type=Annotated[float, Ge(0)] | Literal["inf"]),
        Strict(), Ge(0), expect("a number >= 0 or inf (0: every stage harmonic, inf: every "
                                "stage dense)")] = Field(
        math.inf, json_schema_extra={"default": "inf"},
        description="auto stages are harmonic iff the channels entering them are >= this")
    dense_reduction: Number(0, MAX_REDUCTION, low_open=True) = Field(
        0.5, description="transition width / block output of a dense stage")
    harmonic_reduction: Number(0, MAX_REDUCTION, low_open=True) = Field(
        0.85, description="transition width / block output of a harmonic stage")
    activation: Choice(*ACTIVATIONS) = Field("relu", description="the activation everywhere")
    dropout: Number(0, 1, high_open=True) = Field(0.0, description="dropout before the "
                                                  "classifier")
    head_norm: Bool = Field(False, description="DenseNet's BN and activation before the head")
    num_classes: Int(1, MAX_CLASSES) = Field(1000, description="classifier outputs")

    @model_validator(mode="after")
    def _widths_fit(self) -> ArchitectureConfig:
        for stage in self.resolve():
            for name, value in (("block output", stage.block_channels),
                                ("transition width", stage.out_channels)):
                if value > MAX_WIDTH * 4:
                    raise problem(f"{name} of {value} channels is too wide; expected at most "
                                  f"{MAX_WIDTH * 4}", f"stages[{stage.index - 1}]")
        return self

    # ----------------------------------------------------------------- derived views
    def resolve(self) -> tuple[ResolvedStage, ...]:
        """Every stage's mode and channel counts, in order."""
        resolved = []
        channels = self.stem.widths[-1]
        for index, stage in enumerate(self.stages, start=1):
            mode = stage.mode
            if mode == "auto":
                mode = "harmonic" if channels >= self.threshold else "dense"
            if mode == "dense":
                block = dense_output_width(channels, stage.depth, stage.growth)
                rate = self.dense_reduction
            else:
                block = harmonic_output_width(stage.depth, stage.growth, stage.multiplier)
                rate = self.harmonic_reduction
            if stage.transition == "none":
                out = block
            elif stage.transition_width is not None:
                out = stage.transition_width
            else:
                out = max(1, math.floor(block * rate + 0.5))
            resolved.append(ResolvedStage(index, mode, channels, block, out, stage))
            channels = out
        return tuple(resolved)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(stage.mode for stage in self.resolve())

    @property
    def feature_channels(self) -> int:
        """Channels entering the classifier."""
        return self.resolve()[-1].out_channels

    def canonical(self) -> dict[str, Any]:
        """The network as built, with every derived field spelled out and every field that
        cannot change the network (the threshold once modes are known, the multiplier of a
        dense stage, ...) left out. Equal canonical forms build equal networks."""
        stages = []
        for stage in self.resolve():
            spec: dict[str, Any] = {
                "mode": stage.mode,
                "depth": stage.config.depth,
                "growth": stage.config.growth,
                "transition": stage.config.transition,
                "downsample": stage.config.downsample,
                "dropout": float(stage.config.dropout),
            }
            if stage.mode == "dense":
                spec["bottleneck"] = stage.config.bottleneck or 4 * stage.config.growth
            else:
                spec["multiplier"] = float(stage.config.multiplier)
            if stage.config.transition != "none":
                spec["transition_width"] = stage.out_channels
            if stage.config.downsample:
                spec["pool"] = stage.config.pool
            stages.append(spec)
        return {
            "stem": self.stem.model_dump() | {"widths": list(self.stem.widths)},
            "stages": stages,
            "activation": self.activation,
            "dropout": float(self.dropout),
            "head_norm": self.head_norm,
            "num_classes": self.num_classes,
        }

    @property
    def hash(self) -> str:
        """A stable content hash of the network this config builds (16 hex digits)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ input size
    def spatial_sizes(self, input_size: int) -> list[int]:
        """Feature-map side length inside each stage's block for a square input."""
        size = input_size
        for index, _ in enumerate(self.stem.widths):
            kernel, stride = (self.stem.kernel, self.stem.stride) if index == 0 else (3, 1)
            size = (size + 2 * (kernel // 2) - kernel) // stride + 1
        if self.stem.pool:
            size = (size - 1) // 2 + 1 if size > 0 else 0
        sizes = []
        for stage in self.stages:
            sizes.append(size)
            if stage.downsample:
                size //= 2
        sizes.append(size)  # what the head sees
        return sizes

    def min_input_size(self) -> int:
        size = 1
        while min(self.spatial_sizes(size)) < 1:
            size *= 2
        low, high = size // 2, size
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if min(self.spatial_sizes(middle)) < 1 else (low, middle)
        return high

    def check_input_size(self, input_size: int) -> None:
        """Raise ConfigError if the downsampling would shrink ``input_size`` below 1x1."""
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 1:
            raise ConfigError(f"input_size: {input_size!r} is invalid; expected an integer >= 1")
        sizes = self.spatial_sizes(input_size)
        for index, size in enumerate(sizes):
            if size < 1:
                where = f"stage {index + 1}" if index < len(self.stages) else "the head"
                raise ConfigError(
                    f"input_size: {input_size} is too small for this network: {where} would "
                    f"see a {size}x{size} feature map; expected an input_size >= "
                    f"{self.min_input_size()}"
                )

    # ------------------------------------------------------------------- conversions
    def with_num_classes(self, num_classes: int) -> ArchitectureConfig:
        return self.replace(num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) that ``from_dict`` takes back."""
        data = self.model_dump(mode="json")
        data["threshold"] = "inf" if math.isinf(self.threshold) else self.threshold
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> ArchitectureConfig:
        """Build from plain data, reporting unknown keys, wrong types and bad values with the
        key path of each (``path`` prefixes them when the config sits inside a larger file)."""
        return cls.parse(data, path)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_yaml(cls, text: str) -> ArchitectureConfig:
        return cls.from_dict(load_structured_text(text, "YAML"))

    @classmethod
    def from_json(cls, text: str) -> ArchitectureConfig:
        return cls.from_dict(load_structured_text(text, "JSON"))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        text = self.to_json() if path.suffix == ".json" else self.to_yaml()
        path.write_text(text)
        return path


def load_structured_text(text: str, kind: str = "YAML") -> Any:
    """Parse YAML (safely: no tags, no objects) or JSON, as a ConfigError on failure."""
    try:
        return json.loads(text) if kind == "JSON" else yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"not valid {kind}: nested too deeply") from None
    except (yaml.YAMLError, json.JSONDecodeError) as error:
        summary = " ".join(str(error).split())
        raise ConfigError(f"not valid {kind}: {summary}") from None


def read_structured_file(path: str | Path) -> Any:
    """Read a YAML or JSON file into plain data, with errors that name the file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text (byte {error.start})") from None
    kind = "JSON" if path.suffix.lower() == ".json" else "YAML"
    try:
        return load_structured_text(text, kind)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
