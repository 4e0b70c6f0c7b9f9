"""The Python entry points: ``load_config``, ``build_model``, ``profile``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from threshsearch.config import ArchitectureConfig, ConfigError, read_structured_file
from threshsearch.nn import build_model as _build
from threshsearch.presets import PRESETS, get_preset
from threshsearch.profiler import Profile, profile_model

ConfigSpec = str | Path | ArchitectureConfig


def config_from_data(data: Any, source: str = "config") -> ArchitectureConfig:
    """An architecture config from parsed file content: either the config itself or a
    document that holds it under ``architecture`` (an exported search result)."""
    if isinstance(data, dict) and "architecture" in data:
        return ArchitectureConfig.from_dict(data["architecture"], path="architecture")
    if isinstance(data, dict) and "stages" not in data and "format" in data:
        raise ConfigError(f"{source}: no 'architecture' section in this document")
    return ArchitectureConfig.from_dict(data)


def load_config(spec: ConfigSpec, num_classes: int | None = None) -> ArchitectureConfig:
    """Resolve a preset name, a config object or a YAML/JSON file path to a config."""
    if isinstance(spec, ArchitectureConfig):
        config = spec
    elif isinstance(spec, str) and spec in PRESETS:
        config = get_preset(spec)
    elif isinstance(spec, str | Path) and Path(spec).is_file():
        try:
            config = config_from_data(read_structured_file(spec), str(spec))
        except ConfigError as error:
            message = str(error)
            prefix = "" if message.startswith(str(spec)) else f"{spec}: "
            raise ConfigError(f"{prefix}{message}") from None
    else:
        raise ConfigError(f"{spec!s:.80}: neither a preset ({', '.join(PRESETS)}) nor a "
                          "readable config file")
    return config if num_classes is None else config.with_num_classes(num_classes)


def build_model(spec: ConfigSpec, num_classes: int | None = None) -> nn.Module:
    """The ``nn.Module`` for a preset name, a config object or a config file path."""
    return _build(load_config(spec, num_classes))


def profile(spec: ConfigSpec | nn.Module, input_size: int = 224,
            num_classes: int | None = None) -> Profile:
    """Params, MAdd, Flops, MemR+W, CIO and the per-layer table of a model or config."""
    if isinstance(spec, nn.Module):
        return profile_model(spec, input_size)
    config = load_config(spec, num_classes)
    config.check_input_size(input_size)
    with torch.device("meta"):
        model = _build(config)
    return profile_model(model, input_size)
