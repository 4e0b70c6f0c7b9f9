"""Exported results: one self-contained YAML file per Pareto-optimal trial, and pareto.csv.

A result file holds everything needed to retrain and cite the network: the architecture
config, the training recipe and data settings, the seed, every measured metric, the device
and package versions, the study and trial it came from and the config hash; once the study
was confirmed, the confirmed figures (``confirmed``: test accuracy over the seeds, its
interval, the costs) next to the search's. ``threshsearch train --config FILE`` and
``threshsearch.build_model(FILE)`` take it back. With ``--onnx``, each file also gets an ONNX
twin (``<name>.onnx``) checked against PyTorch's output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import FrozenTrial

from threshsearch.api import config_from_data
from threshsearch.config import ArchitectureConfig, ConfigError, read_structured_file
from threshsearch.confirm.verdict import load_confirmation
from threshsearch.deploy import OnnxCheck, check_onnx, to_onnx
from threshsearch.nn import build_model
from threshsearch.results.trials import trials_frame
from threshsearch.search.baselines import baseline_trials, load_baselines_study
from threshsearch.search.evidence import LEARNING_CURVE
from threshsearch.search.objectives import DEVICE_MODEL, METRICS
from threshsearch.search.reports import BASELINE, LATENCY
from threshsearch.search.retime import retimed_records
from threshsearch.search.storage import pareto_trials
from threshsearch.train import Recipe, RecipeError

FORMAT = "threshsearch-result/1"

_SHORT = {"val_accuracy": "acc", "val_top5": "top5", "latency_ms": "lat",
          "predicted_latency_ms": "plat", "epoch_time_s": "ep",
          "train_images_per_s": "ips", "memrw_mib": "mem", "params": "par", "madd": "madd",
          "flops": "flops", "cio": "cio", "activation_mib": "act"}


def result_document(study: optuna.Study, trial: FrozenTrial, storage_url: str,
                    confirmed: dict[str, Any] | None = None) -> dict[str, Any]:
    names = study.metric_names or [f"objective_{i}" for i in range(len(trial.values))]
    return {
        "format": FORMAT,
        "study": {"name": study.study_name, "storage": storage_url, "trial": trial.number},
        "config_hash": trial.user_attrs["config_hash"],
        "objectives": [
            {"metric": name, "direction": direction.name.lower(), "value": value}
            for name, direction, value in zip(names, study.directions, trial.values,
                                              strict=True)],
        "metrics": {key: trial.user_attrs[key] for key in METRICS if key in trial.user_attrs},
        "epochs_trained": trial.user_attrs.get("epochs"),
        "device": trial.user_attrs.get("device"),
        "versions": trial.user_attrs.get("versions"),
        "seed": trial.user_attrs.get("seed"),
        "data": study.user_attrs.get("data"),
        "train": trial.user_attrs.get("recipe"),
        "architecture": trial.user_attrs["architecture"],
        "learning_curve": trial.user_attrs.get(LEARNING_CURVE),
        # Which device model priced metrics.predicted_latency_ms, where one did, and for what
        # device, runtime and settings.
        "device_model": device_model_record(study, trial),
        # metrics.latency_ms is the figure measured during the search; both records say
        # how they were measured, and the re-timed one is there once the front was re-timed.
        "latency": {"search": trial.user_attrs.get(LATENCY),
                    "retimed": retimed_records(study).get(trial.number)},
        # The search's figures above are validation accuracy of one seed; these, where the
        # study was confirmed, are test accuracy of networks retrained from scratch.
        "confirmed": confirmed,
    }


def device_model_record(study: optuna.Study, trial: FrozenTrial) -> dict[str, Any] | None:
    """The id of the model that priced ``trial`` and, from the study's record of it, what
    its predictions are of (device, runtime, settings)."""
    model_id = trial.user_attrs.get(DEVICE_MODEL)
    if not model_id:
        return None
    recorded = study.user_attrs.get(DEVICE_MODEL) or {}
    made_for = {key: value for key, value in recorded.items() if key not in ("id", "summary",
                                                                            "path")}
    return {"id": model_id, **(made_for if recorded.get("id") == model_id else {})}


def result_filename(document: dict[str, Any]) -> str:
    parts = [f"trial-{document['study']['trial']:04d}"]
    for objective in document["objectives"]:
        short = _SHORT.get(objective["metric"], objective["metric"])
        value = objective["value"]
        parts.append(f"{short}{value:.0f}" if abs(value) >= 1000 else f"{short}{value:.4g}")
    return "_".join(parts) + ".yaml"


def export_front(study: optuna.Study, storage_url: str, out: str | Path) -> list[Path]:
    """Write one YAML per front member and ``pareto.csv`` under ``out``; return the YAMLs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*out.glob("trial-*.yaml"), *out.glob("trial-*.onnx")]:
        stale.unlink()  # a front shrinks as the study goes on: old members are not members
    paths = []
    front = pareto_trials(study)
    confirmation = load_confirmation(study)
    for trial in front:
        confirmed = confirmation.document(confirmation.of_trial(trial.number)) \
            if confirmation else None
        document = result_document(study, trial, storage_url, confirmed)
        path = out / result_filename(document)
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        paths.append(path)
    frame = trials_frame(study)
    ours = frame[BASELINE] == ""
    frame[ours & frame["number"].isin([trial.number for trial in front])].to_csv(
        out / "pareto.csv", index=False)
    return paths


def export_baselines(study: optuna.Study, storage_url: str, out: str | Path) -> list[Path]:
    """Write one YAML per trained baseline under ``out/baselines/``, in the same format as
    the front's files (so they retrain and build the same way); return them."""
    folder = Path(out) / "baselines"
    companion = load_baselines_study(study)
    baselines = baseline_trials(companion)
    confirmation = load_confirmation(study)
    for stale in [*folder.glob("baseline-*.yaml"), *folder.glob("baseline-*.onnx")]:
        stale.unlink()
    paths = []
    for name, trial in sorted(baselines.items()):
        confirmed = confirmation.document(confirmation.of_baseline(name)) \
            if confirmation else None
        document = {**result_document(companion, trial, storage_url, confirmed),
                    BASELINE: name}
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"baseline-{name}.yaml"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
        paths.append(path)
    return paths


def export_onnx(paths: list[Path], input_size: int, batch_size: int = 1,
                progress: Callable[[Path, OnnxCheck], None] | None = None
                ) -> list[tuple[Path, OnnxCheck]]:
    """Write ``<name>.onnx`` beside each exported result file, for a batch of ``batch_size``
    images of ``input_size``, each checked against PyTorch's output (ExportMismatch naming the
    file otherwise); ``progress`` is told of each as it is done."""
    done = []
    for path in paths:
        model = build_model(read_result(path).architecture)
        onnx_path = path.with_suffix(".onnx")
        data = to_onnx(model, input_size, batch_size, onnx_path)
        check = check_onnx(model, data, input_size, batch_size, name=str(path))
        done.append((onnx_path, check))
        if progress:
            progress(onnx_path, check)
    return done


@dataclass(frozen=True)
class ResultFile:
    """An exported result read back: what ``threshsearch train`` needs from it."""

    architecture: ArchitectureConfig
    recipe: Recipe | None
    dataset: str | None
    seed: int | None
    document: dict[str, Any]


def is_result_document(data: Any) -> bool:
    return isinstance(data, dict) and data.get("format") == FORMAT


def read_result(path: str | Path) -> ResultFile:
    """Read an exported result file (ConfigError, naming the file, when it is not one)."""
    data = read_structured_file(path)
    if not is_result_document(data):
        raise ConfigError(f"{path}: not an exported result (expected format: {FORMAT})")
    try:
        architecture = config_from_data(data, str(path))
        recipe = Recipe.from_dict(data["train"], path="train") if data.get("train") else None
    except (ConfigError, RecipeError) as error:
        raise ConfigError(f"{path}: {error}") from None
    section = data.get("data")
    dataset = section.get("dataset") if isinstance(section, dict) else None
    seed = data.get("seed")
    return ResultFile(architecture, recipe, dataset if isinstance(dataset, str) else None,
                      seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                      data)
