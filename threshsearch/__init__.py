"""threshsearch: neural architecture search for the ThreshNet family of CNNs.

The names below are imported on first use (PEP 562), not with the package: a process that
needs only the config and the counted profile (a Ray worker running the surrogate trial)
then starts without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threshsearch.api import build_model, load_config, profile, train
    from threshsearch.config import ArchitectureConfig, ConfigError, StageConfig, StemConfig
    from threshsearch.presets import get_preset, list_presets
    from threshsearch.profiler import Profile, profile_model

__version__ = "0.1.0"

_HOMES = {
    "build_model": "threshsearch.api",
    "load_config": "threshsearch.api",
    "profile": "threshsearch.api",
    "train": "threshsearch.api",
    "ArchitectureConfig": "threshsearch.config",
    "ConfigError": "threshsearch.config",
    "StageConfig": "threshsearch.config",
    "StemConfig": "threshsearch.config",
    "get_preset": "threshsearch.presets",
    "list_presets": "threshsearch.presets",
    "Profile": "threshsearch.profiler",
    "profile_model": "threshsearch.profiler",
}

__all__ = [
    "ArchitectureConfig",
    "ConfigError",
    "Profile",
    "StageConfig",
    "StemConfig",
    "build_model",
    "get_preset",
    "list_presets",
    "load_config",
    "profile",
    "profile_model",
    "train",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'threshsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *_HOMES]
