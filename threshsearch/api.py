"""The Python entry points: ``load_config``, ``build_model``, ``profile``, ``train``."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from threshsearch.config import ArchitectureConfig, ConfigError, read_structured_file
from threshsearch.data import load_dataset
from threshsearch.errors import UserError
from threshsearch.latency import estimate_latency
from threshsearch.measure import resolve_device
from threshsearch.nn import build_model as _build
from threshsearch.presets import PRESETS, get_preset
from threshsearch.profiler import Profile, profile_model
from threshsearch.train import (
    DEFAULT_RECIPE,
    EpochCallback,
    EpochMetrics,
    Recipe,
    Trainer,
    TrainResult,
    get_recipe,
    seed_everything,
)

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


CHECKPOINT = "checkpoint.pt"


def _write_metrics(out: Path, payload: dict[str, Any], result: TrainResult) -> None:
    (out / "metrics.json").write_text(json.dumps(payload | result.to_dict(), indent=2))
    with (out / "epochs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[item.name for item in fields(EpochMetrics)])
        writer.writeheader()
        writer.writerows(asdict(epoch) for epoch in result.epochs)


def train(spec: ConfigSpec, *, dataset: str = "cifar10", recipe: str | Recipe | None = None,
          epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
          device: str = "auto", seed: int = 0, out: str | Path | None = None,
          resume: bool = False, data_root: str | Path = "data", test_fraction: float = 0.0,
          callbacks: Iterable[EpochCallback] = ()) -> TrainResult:
    """Train a preset, config or config file on a dataset and evaluate it on the test split.

    With ``out``, a checkpoint is written there atomically after every epoch together with
    ``metrics.json`` and ``epochs.csv``, and ``resume=True`` continues from the checkpoint.
    ``test_fraction``: see ``threshsearch.folders.image_folder``; the result's ``test_split``
    says where the test images came from.
    """
    if isinstance(recipe, str) or recipe is None:
        recipe = get_recipe(recipe or DEFAULT_RECIPE.get(dataset, "cifar10"))
    recipe = recipe.override(epochs=epochs, batch_size=batch_size, lr=lr)
    torch_device = resolve_device(device)
    data = load_dataset(dataset, data_root, torch_device, test_fraction=test_fraction)
    config = load_config(spec, num_classes=data.num_classes)
    config.check_input_size(data.input_size)
    out_dir = Path(out) if out else None
    checkpoint = out_dir / CHECKPOINT if out_dir else None
    if checkpoint and checkpoint.exists() and not resume:
        raise UserError(f"--out: {out_dir} already holds a checkpoint; pass --resume to "
                        "continue it or choose another --out")
    if resume and not (checkpoint and checkpoint.exists()):
        raise UserError(f"--resume: no checkpoint to resume under {out_dir}")
    seed_everything(seed)
    model = _build(config)
    payload = {
        "config_hash": config.hash, "architecture": config.to_dict(),
        "recipe": recipe.to_dict(), "dataset": dataset, "seed": seed,
        "params": sum(parameter.numel() for parameter in model.parameters()),
        "test_split": data.test_split, "test_is_validation": data.test_is_validation,
    }
    trainer = Trainer(model, data, recipe, seed=seed, checkpoint=checkpoint,
                      metadata={"config_hash": config.hash, "dataset": dataset})
    callbacks = list(callbacks)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        config.save(out_dir / "config.yaml")

        def record(_: Any) -> None:
            _write_metrics(out_dir, payload, TrainResult(
                "running", None, trainer.history, "", "", recipe.batch_size, data.input_size))

        callbacks.append(record)
    result = trainer.fit(recipe.epochs, callbacks, resume=resume)
    result.extra["test_split"] = data.test_split
    if result.status == "completed":
        trainer.test(result)
    # The search's estimator, so a retrained winner's latency compares with its trial's.
    result.extra["latency"] = estimate_latency(trainer.model, data.input_size,
                                               torch_device).to_dict()
    if out_dir:
        _write_metrics(out_dir, payload, result)
    return result
