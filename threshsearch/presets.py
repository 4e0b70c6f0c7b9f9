"""The paper's models and its baselines, as named configs for the one builder."""

from __future__ import annotations

import difflib

from threshsearch.config import STEM_STYLES, ArchitectureConfig, ConfigError, StageConfig

# ThreshNet reference code: stages 1-3 dense, 4-5 harmonic. Threshold 288 is the value that
# reproduces both ThreshNet models under "harmonic iff channels entering >= threshold".
THRESHNET_THRESHOLD = 288


def _stages(depths, growths, widths, downsample, **common) -> tuple[StageConfig, ...]:
    return tuple(
        StageConfig(depth=depth, growth=growth, transition_width=width, downsample=down, **common)
        for depth, growth, width, down in zip(depths, growths, widths, downsample, strict=True)
    )


def _threshnet(depths: tuple[int, ...], widths: tuple[int, ...]) -> ArchitectureConfig:
    return ArchitectureConfig(
        stem=STEM_STYLES["threshnet"],
        stages=_stages(depths, (32, 32, 32, 40, 160), widths, (True, True, False, True, False)),
        threshold=THRESHNET_THRESHOLD,
    )


def threshnet79() -> ArchitectureConfig:
    return _threshnet((6, 8, 12, 16, 4), (128, 192, 288, 480, 960))


def threshnet95() -> ArchitectureConfig:
    return _threshnet((6, 12, 16, 16, 4), (128, 256, 384, 480, 960))


def hardnet68() -> ArchitectureConfig:
    return ArchitectureConfig(
        stem=STEM_STYLES["threshnet"],
        stages=_stages((8, 16, 16, 16, 4), (14, 16, 20, 40, 160), (128, 256, 320, 640, 1024),
                       (True, False, True, True, False), mode="harmonic"),
        threshold=0,
        activation="relu6",
        dropout=0.1,
    )


def hardnet85() -> ArchitectureConfig:
    stages = list(_stages(
        (8, 16, 16, 16, 16, 4), (24, 24, 28, 36, 48, 256), (192, 256, 320, 480, 720, 1280),
        (True, False, True, False, True, False), mode="harmonic",
    ))
    stages[-1] = stages[-1].replace(dropout=0.1)  # before the last transition
    return ArchitectureConfig(
        stem=STEM_STYLES["hardnet85"], stages=tuple(stages), threshold=0,
        activation="relu6", dropout=0.2,
    )


def densenet121() -> ArchitectureConfig:
    # torchvision's definition: 7x7 stem, pre-activation transitions halving the channels
    # with average pooling, none after the last stage, a final BN-ReLU before the head.
    depths = (6, 12, 24, 16)
    stages = tuple(
        StageConfig(depth=depth, growth=32, mode="dense", bottleneck=128,
                    transition="none" if last else "pre", downsample=not last,
                    pool="avg")
        for depth, last in zip(depths, (False, False, False, True), strict=True)
    )
    return ArchitectureConfig(stem=STEM_STYLES["densenet"], stages=stages, dense_reduction=0.5,
                              head_norm=True)


PRESETS = {
    "threshnet79": threshnet79,
    "threshnet95": threshnet95,
    "hardnet68": hardnet68,
    "hardnet85": hardnet85,
    "densenet121": densenet121,
}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, num_classes: int | None = None) -> ArchitectureConfig:
    """The named preset's config, optionally with another number of classes."""
    if name not in PRESETS:
        close = difflib.get_close_matches(name, PRESETS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"preset: unknown preset {name!r}; {hint}expected one of "
                          f"{', '.join(PRESETS)}")
    config = PRESETS[name]()
    return config if num_classes is None else config.with_num_classes(num_classes)
