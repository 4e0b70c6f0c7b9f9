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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from threshsearch.errors import UserError
from threshsearch.links import dense_output_width, harmonic_output_width
from threshsearch.validation import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    is_int,
    is_number,
    join_path,
    parse_fields,
    show,
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


class ConfigError(UserError, ValueError):
    """An invalid config. Each problem names the field, the bad value and what is valid."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class StemConfig:
    """Convolutions before the first stage: ``widths[0]`` is a ``kernel`` x ``kernel`` conv
    with ``stride``, every further width a 3x3 conv; ``pool`` adds a 3x3 stride-2 max pool."""

    widths: tuple[int, ...] = (32, 64)
    kernel: int = 3
    stride: int = 2
    pool: bool = True


STEM_STYLES: dict[str, StemConfig] = {
    "threshnet": StemConfig((32, 64), 3, 2, True),
    "hardnet85": StemConfig((48, 96), 3, 2, True),
    "densenet": StemConfig((64,), 7, 2, True),
    # Full resolution for 32x32 inputs: no stride, no pool.
    "cifar": StemConfig((32, 64), 3, 1, False),
}


@dataclass(frozen=True)
class StageConfig:
    """One stage: a dense or harmonic block, then its transition.

    ``mode`` "auto" lets the threshold decide. ``bottleneck`` (dense only) defaults to
    4 x growth; ``multiplier`` is HarDNet's m (harmonic only). ``transition_width`` None means
    "derive it from the block output and the config's reduction rate". ``transition`` is
    "post" (conv-BN-act, ThreshNet/HarDNet), "pre" (BN-act-conv, DenseNet) or "none".
    ``dropout`` applies before the transition.
    """

    depth: int
    growth: int
    mode: str = "auto"
    bottleneck: int | None = None
    multiplier: float = 1.7
    transition_width: int | None = None
    transition: str = "post"
    downsample: bool = True
    pool: str = "max"
    dropout: float = 0.0


@dataclass(frozen=True)
class ResolvedStage:
    """A stage with everything derived: what the builder and the profiler work from."""

    index: int  # 1-based
    mode: str  # "dense" or "harmonic"
    in_channels: int
    block_channels: int  # leaving the block, before the transition
    out_channels: int  # leaving the stage
    config: StageConfig


@dataclass(frozen=True)
class ArchitectureConfig:
    """A whole network. ``threshold``: a stage in "auto" mode is harmonic iff the channels
    entering it are >= threshold (0: all harmonic, HarDNet; inf: all dense, DenseNet).
    ``dense_reduction``/``harmonic_reduction`` derive transition widths not given explicitly.
    ``head_norm`` adds DenseNet's final BN and activation; ``dropout`` precedes the classifier.
    """

    stages: tuple[StageConfig, ...]
    stem: StemConfig = field(default_factory=StemConfig)
    threshold: float = math.inf
    dense_reduction: float = 0.5
    harmonic_reduction: float = 0.85
    activation: str = "relu"
    dropout: float = 0.0
    head_norm: bool = False
    num_classes: int = 1000

    def __post_init__(self) -> None:
        problems = _architecture_problems(self)
        if problems:
            raise ConfigError(problems)

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
            "stem": asdict(self.stem) | {"widths": list(self.stem.widths)},
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
        return replace(self, num_classes=num_classes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, numbers, strings) that ``from_dict`` takes back."""
        data = asdict(self)
        data["stem"]["widths"] = list(self.stem.widths)
        data["stages"] = [asdict(stage) for stage in self.stages]
        data["threshold"] = "inf" if math.isinf(self.threshold) else self.threshold
        return data

    @classmethod
    def from_dict(cls, data: Any, path: str = "") -> ArchitectureConfig:
        """Build from plain data, reporting unknown keys, wrong types and bad values with the
        key path of each (``path`` prefixes them when the config sits inside a larger file)."""
        problems: list[str] = []
        values = parse_fields(data, cls, path, problems)
        if values is None:
            raise ConfigError(problems)
        if "stem" in values:
            values["stem"] = _parse_stem(values["stem"], join_path(path, "stem"), problems)
        if "stages" in values:
            values["stages"] = _parse_stages(values["stages"], join_path(path, "stages"), problems)
        if "threshold" in values:
            values["threshold"] = _parse_threshold(values["threshold"])
        if problems:
            raise ConfigError(problems)
        try:
            return cls(**values)
        except ConfigError as error:
            raise ConfigError([join_path(path, problem) for problem in error.problems]) from None

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


# ---------------------------------------------------------------------- parsing
def _parse_stem(data: Any, path: str, problems: list[str]) -> Any:
    if isinstance(data, str):
        if data in STEM_STYLES:
            return STEM_STYLES[data]
        problems.append(f"{path}: unknown stem style {data!r}; expected one of "
                        f"{', '.join(STEM_STYLES)} or a mapping of StemConfig fields")
        return StemConfig()
    values = parse_fields(data, StemConfig, path, problems)
    if values is None:
        return StemConfig()
    if isinstance(values.get("widths"), list):
        values["widths"] = tuple(values["widths"])
    return StemConfig(**values)


def _parse_stages(data: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(data, list | tuple):
        problems.append(f"{path}: expected a list of stages, got {show(data)}")
        return ()
    stages = []
    for index, item in enumerate(data):
        values = parse_fields(item, StageConfig, join_path(path, f"[{index}]"), problems)
        if values is not None and all(name in values for name in ("depth", "growth")):
            stages.append(StageConfig(**values))
    return tuple(stages)


def _parse_threshold(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("inf", ".inf", "infinity"):
        return math.inf
    return value


# ------------------------------------------------------------------- validation
def _stem_problems(stem: Any, problems: list[str]) -> None:
    if not isinstance(stem, StemConfig):
        problems.append(f"stem: expected a StemConfig, got {show(stem)}")
        return
    if not isinstance(stem.widths, tuple) or not 1 <= len(stem.widths) <= 4:
        problems.append(f"stem.widths: {show(stem.widths)} is invalid; expected a list of 1 to "
                        "4 channel counts")
    else:
        for index, width in enumerate(stem.widths):
            check_int(problems, f"stem.widths[{index}]", width, 1, MAX_WIDTH)
    if not is_int(stem.kernel) or stem.kernel % 2 == 0 or not 1 <= stem.kernel <= MAX_KERNEL:
        problems.append(f"stem.kernel: {show(stem.kernel)} is invalid; expected an odd integer "
                        f"from 1 to {MAX_KERNEL}")
    check_int(problems, "stem.stride", stem.stride, 1, MAX_STRIDE)
    check_bool(problems, "stem.pool", stem.pool)


def _stage_problems(stage: Any, path: str, problems: list[str]) -> None:
    if not isinstance(stage, StageConfig):
        problems.append(f"{path}: expected a StageConfig, got {show(stage)}")
        return
    check_int(problems, f"{path}.depth", stage.depth, 1, MAX_DEPTH)
    check_int(problems, f"{path}.growth", stage.growth, 1, MAX_WIDTH)
    check_choice(problems, f"{path}.mode", stage.mode, MODES)
    if stage.bottleneck is not None:
        check_int(problems, f"{path}.bottleneck", stage.bottleneck, 1, MAX_WIDTH)
    check_number(problems, f"{path}.multiplier", stage.multiplier, 0, 4, low_inclusive=False)
    if stage.transition_width is not None:
        check_int(problems, f"{path}.transition_width", stage.transition_width, 1, MAX_WIDTH)
    check_choice(problems, f"{path}.transition", stage.transition, TRANSITIONS)
    check_bool(problems, f"{path}.downsample", stage.downsample)
    check_choice(problems, f"{path}.pool", stage.pool, POOLS)
    check_number(problems, f"{path}.dropout", stage.dropout, 0, 1, high_inclusive=False)


def _architecture_problems(config: ArchitectureConfig) -> list[str]:
    problems: list[str] = []
    _stem_problems(config.stem, problems)
    if not isinstance(config.stages, tuple) or not 1 <= len(config.stages) <= MAX_STAGES:
        problems.append(f"stages: {show(config.stages)} is invalid; expected a list of 1 to "
                        f"{MAX_STAGES} stages")
    else:
        for index, stage in enumerate(config.stages):
            _stage_problems(stage, f"stages[{index}]", problems)
    threshold = config.threshold
    if not is_number(threshold) or threshold < 0:
        problems.append(f"threshold: {show(threshold)} is invalid; expected a number >= 0 or "
                        "inf (0: every stage harmonic, inf: every stage dense)")
    check_number(problems, "dense_reduction", config.dense_reduction, 0, MAX_REDUCTION,
                  low_inclusive=False)
    check_number(problems, "harmonic_reduction", config.harmonic_reduction, 0, MAX_REDUCTION,
                  low_inclusive=False)
    check_choice(problems, "activation", config.activation, ACTIVATIONS)
    check_number(problems, "dropout", config.dropout, 0, 1, high_inclusive=False)
    check_bool(problems, "head_norm", config.head_norm)
    check_int(problems, "num_classes", config.num_classes, 1, MAX_CLASSES)
    if not problems:
        problems.extend(_width_problems(config))
    return problems


def _width_problems(config: ArchitectureConfig) -> list[str]:
    problems = []
    for stage in config.resolve():
        for name, value in (("block output", stage.block_channels),
                            ("transition width", stage.out_channels)):
            if value > MAX_WIDTH * 4:
                problems.append(f"stages[{stage.index - 1}]: {name} of {value} channels is too "
                                f"wide; expected at most {MAX_WIDTH * 4}")
    return problems
