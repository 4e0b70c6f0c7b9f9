"""The device model that prices a study's trials: made for ``device_model: auto`` at the
study's first run, recorded in the study when it opens (so that predictions of two models
never share its ``predicted_latency_ms``), read back by whatever needs the same predictions
later (a confirmation of its front), and whether re-timing the front here measures what it
predicted."""

from __future__ import annotations

from pathlib import Path

import optuna

from threshsearch.devicemodel import DeviceModel, load_device_model
from threshsearch.devicemodel.profiling import cpu_name
from threshsearch.errors import UserError
from threshsearch.measure import resolve_device
from threshsearch.search.objectives import DEVICE_MODEL
from threshsearch.search.sections import AUTO_DEVICE_MODEL, SpaceError
from threshsearch.search.space import SearchSpace

MODEL_FILE = "device-model.json"  # under the study folder: what device_model: auto made


def record_device_model(study: optuna.Study, space: SearchSpace) -> None:
    """Record the space's device model in ``study``; a study priced by another model is
    refused (its predictions would mix with this one's)."""
    model = space.device_model
    if model is None:
        return
    recorded = study.user_attrs.get(DEVICE_MODEL)
    if recorded and recorded["id"] != model.model_id:
        raise SpaceError(f"measurement.device_model: study {space.study.name!r} was priced by "
                         f"device model {recorded['id']} ({recorded['path']}); "
                         f"{space.measurement.device_model} is {model.model_id} "
                         f"({model.summary()}); use that file again or another study.name")
    study.set_user_attr(DEVICE_MODEL, {"id": model.model_id, "summary": model.summary(),
                                       "path": str(model_path(space).resolve()),
                                       **predicted_for(model)})


def predicted_for(model: DeviceModel) -> dict[str, object]:
    """What a model's predictions are of: the device, the runtime and its settings; a
    timing taken otherwise is not comparable with them."""
    return {"device": model.data.device.name, "device_kind": model.data.device.kind,
            "runtime": model.data.runtime.name, **model.data.settings.model_dump()}


def model_path(space: SearchSpace) -> Path:
    """The device-model file the space's predictions come from (auto: the study folder's)."""
    setting = space.measurement.device_model
    return space.study_dir / MODEL_FILE if setting == AUTO_DEVICE_MODEL else Path(setting)


def study_device_model(study: optuna.Study) -> DeviceModel | None:
    """The device model that priced ``study`` (None: none did), read from the file the
    study recorded; a file gone or changed since is an error naming it."""
    recorded = study.user_attrs.get(DEVICE_MODEL)
    if not recorded:
        return None
    try:
        model = load_device_model(recorded["path"])
    except UserError as error:
        raise UserError(f"study {study.study_name} was priced by device model "
                        f"{recorded['id']}: {error}") from None
    if model.model_id != recorded["id"]:
        raise UserError(f"{recorded['path']}: device model {model.model_id}, but study "
                        f"{study.study_name} was priced by {recorded['id']} (the file changed "
                        f"since); put the original file back at that path")
    return model


def models_this_device(model: DeviceModel, device: str) -> bool:
    """Whether ``model`` predicts PyTorch on this machine's ``device`` (a data.device name):
    then re-timing the front here measures what the model predicted."""
    made = model.data
    return (made.runtime.name == "torch" and made.device.kind == "cpu"
            and resolve_device(device).type == "cpu" and made.device.name == cpu_name())


def priced_space(space: SearchSpace, input_size: int, quiet: bool = False) -> SearchSpace:
    """The space with its device model: ``auto`` is this machine's CPU, profiled for the
    space at the study's first run (threads: the trials' cpus; batch: the latency batch
    size) and kept in the study folder, so every later run prices with the same model."""
    if space.measurement.device_model != AUTO_DEVICE_MODEL:
        return space
    path = model_path(space)
    threads = max(1, int(space.resources.cpus))
    if not path.exists():
        from threshsearch.search.deviceprofile import profile_space

        if not quiet:
            print(f"device model: profiling this machine's CPU for the space, once (kept in "
                  f"{path})", flush=True)
        model = profile_space(space, input_size=input_size,
                              batch_size=space.data.latency_batch_size,
                              threads=threads, progress=not quiet)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            model.save(path, replace=False)
        except FileExistsError:
            # Another driver of the study profiled meanwhile and wrote first: every driver
            # prices with the one model the study records.
            if not quiet:
                print(f"device model: another driver wrote {path} meanwhile; its model is "
                      f"used")
    model = load_device_model(path)
    made = model.data.settings
    if (made.batch_size, made.threads) != (space.data.latency_batch_size, threads):
        raise SpaceError(f"measurement.device_model: auto: the study's device model ({path}) "
                         f"was profiled for data.latency_batch_size {made.batch_size} and "
                         f"{made.threads} thread(s) (resources.cpus); this space asks for "
                         f"{space.data.latency_batch_size} and {threads}: set them back, or "
                         f"use another study.name")
    if not quiet:
        print(f"device model: {model.summary()}")
        if warning := model.steadiness_warning():
            print(f"device model: {warning}")
    return space.with_device_model(model)
