"""threshsearch: neural architecture search for the ThreshNet family of CNNs."""

from threshsearch.api import build_model, load_config, profile, train
from threshsearch.config import ArchitectureConfig, ConfigError, StageConfig, StemConfig
from threshsearch.presets import get_preset, list_presets
from threshsearch.profiler import Profile, profile_model

__version__ = "0.1.0"

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
