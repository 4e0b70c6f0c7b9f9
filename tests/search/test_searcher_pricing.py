"""The searcher's pricing by a device model: a predicted-latency constraint before
training, one model per study, and device_model: auto profiled once per study."""

import json

import pytest
import yaml

from tests.search.helpers import make_searcher, make_space, stored
from threshsearch.config import ArchitectureConfig
from threshsearch.search.runner import open_study
from threshsearch.search.space import SpaceError, load_space


def with_device_model(space, model_file, objectives=None, constraints=None):
    data = yaml.safe_load(space.source.read_text())
    data["measurement"] = {"device_model": str(model_file)}
    data["objectives"] = objectives or data["objectives"]
    data["constraints"] = constraints if constraints is not None else data["constraints"]
    space.source.write_text(yaml.safe_dump(data))
    return load_space(space.source)


def test_a_predicted_latency_constraint_prunes_before_training(tmp_path, device_model_file):
    from threshsearch.devicemodel import load_device_model

    model = load_device_model(device_model_file)
    space = with_device_model(make_space(tmp_path, growth=4), device_model_file,
                              objectives=[{"metric": "val_accuracy"},
                                          {"metric": "predicted_latency_ms"}])
    first = make_searcher(space)
    try:
        spec = first.suggest("ray-1")
    finally:
        first.close()
    # Priced on the driver: the worker is handed the prediction and measures nothing.
    predicted = spec["profiled"]["predicted_latency_ms"]
    assert predicted == model.predict_ms(ArchitectureConfig.from_dict(spec["architecture"]))
    assert spec["measure_latency"] is False
    assert stored(first, 0).user_attrs["device_model"] == model.model_id
    recorded = first.study.user_attrs["device_model"]
    assert recorded["id"] == model.model_id
    # What its predictions are of, for a timing elsewhere to be compared with them or not.
    assert (recorded["runtime"], recorded["threads"], recorded["batch_size"],
            recorded["input_size"]) == ("torch", model.data.settings.threads,
                                        model.data.settings.batch_size,
                                        model.data.settings.input_size)

    # A bound below every prediction: each draw is infeasible and never reaches a worker.
    bounded = with_device_model(space, device_model_file, constraints=[
        {"metric": "predicted_latency_ms", "max": predicted * 1e-6}])
    (tmp_path / "study.db").unlink()
    searcher = make_searcher(bounded)
    try:
        answers = [searcher.suggest(f"ray-{index}") for index in range(bounded.study.n_trials)]
    finally:
        searcher.close()
    assert not any(isinstance(answer, dict) for answer in answers)
    infeasible = [t for t in searcher.study.get_trials()
                  if t.user_attrs["status"] == "infeasible"]
    assert infeasible and all(
        t.user_attrs["reason"].startswith("constraint: predicted_latency_ms")
        and "known before training" in t.user_attrs["reason"]
        and t.constraints["predicted_latency_ms_max"] > 0 for t in infeasible)


def test_a_study_priced_by_one_device_model_refuses_another(tmp_path, device_model_file):
    from tests.search.helpers import write_device_model
    from threshsearch.search.space import SpaceError

    space = with_device_model(make_space(tmp_path, growth=4), device_model_file)
    open_study(space)
    other = write_device_model(tmp_path / "other" / "model.json", draws=6)
    moved = with_device_model(space, other)
    with pytest.raises(SpaceError, match=r"measurement\.device_model: study 'tiny' was priced "
                                         r"by device model \w+ .*use that file again or "
                                         r"another study\.name"):
        open_study(moved)
    open_study(with_device_model(space, device_model_file))  # the same model resumes


def auto_priced_space(tmp_path, monkeypatch, profiled, meanwhile=None):
    """A space with ``device_model: auto``, profiled on a fake clock (each profiling's
    settings appended to ``profiled``); ``meanwhile(path, model)`` runs as a profiling ends:
    another driver of the study writing its model first."""
    from tests.search.helpers import fake_profiling
    from threshsearch.search import deviceprofile

    real = deviceprofile.profile_space

    def on_a_fake_clock(space, **settings):
        profiled.append(settings)
        model = real(space, **{**settings, **fake_profiling(), "draws": 16,
                               "calibration_networks": 10})
        if meanwhile is not None:
            meanwhile(space.study_dir / "device-model.json", model)
        return model

    monkeypatch.setattr(deviceprofile, "profile_space", on_a_fake_clock)
    monkeypatch.chdir(tmp_path)  # the study folder, studies/<name>/, is under the cwd
    monkeypatch.setenv("THRESHSEARCH_LOCK_DIR", str(tmp_path / "locks"))
    return with_device_model(make_space(tmp_path, growth=4), "auto",
                             objectives=[{"metric": "val_accuracy"},
                                         {"metric": "predicted_latency_ms"}])


def test_an_auto_device_model_is_profiled_once_and_kept_with_the_study(tmp_path, monkeypatch,
                                                                       capsys):
    from threshsearch.search.pricing import MODEL_FILE, priced_space

    profiled = []
    space = auto_priced_space(tmp_path, monkeypatch, profiled)
    assert space.device_model is None  # not profiled until a run starts
    first = priced_space(space, 32)
    assert "profiling this machine's CPU for the space, once" in capsys.readouterr().out
    assert profiled == [{"input_size": 32, "batch_size": 1, "threads": 1, "progress": True}]
    again = priced_space(space, 32, quiet=True)
    assert len(profiled) == 1 and (space.study_dir / MODEL_FILE).exists()
    assert again.device_model.model_id == first.device_model.model_id
    searcher = make_searcher(again)
    try:
        spec = searcher.suggest("ray-1")
    finally:
        searcher.close()
    assert spec["profiled"]["predicted_latency_ms"] > 0
    recorded = searcher.study.user_attrs["device_model"]
    assert recorded["id"] == first.device_model.model_id
    # The file a confirmation reads the model back from: the one auto made.
    assert recorded["path"] == str((space.study_dir / MODEL_FILE).resolve())
    # Reused for a space whose trials would run otherwise: refused, saying what it was for.
    data = yaml.safe_load(space.source.read_text())
    data["resources"]["cpus"] = 2
    space.source.write_text(yaml.safe_dump(data))
    with pytest.raises(SpaceError, match=r"profiled for data\.latency_batch_size 1 and 1 "
                                         r"thread\(s\).* asks for 1 and 2"):
        priced_space(load_space(space.source), 32, quiet=True)


def test_an_auto_device_model_another_driver_wrote_meanwhile_is_the_one_used(tmp_path,
                                                                              monkeypatch):
    from threshsearch.devicemodel import load_device_model
    from threshsearch.search.pricing import priced_space

    def another_driver_writes(path, model):
        # Its own profile of the same machine: other timings, another model.
        data = json.loads(model.save(tmp_path / "theirs.json").read_text())
        data["device"]["name"] += " (another driver's profile)"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    space = auto_priced_space(tmp_path, monkeypatch, [], another_driver_writes)
    mine = priced_space(space, 32, quiet=True).device_model
    theirs = load_device_model(space.study_dir / "device-model.json")
    assert "another driver's" in theirs.data.device.name
    assert mine.model_id == theirs.model_id
