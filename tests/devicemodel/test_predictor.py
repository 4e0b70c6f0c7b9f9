"""A device model's file: its round trip, its one-line refusals (missing, not JSON, not a
device model, another format version, made for other settings), and its coverage check."""

import json
import os

import pytest

from tests.devicemodel.fakes import FakeClock, FakeRuntime, small_networks
from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel import DeviceModel, load_device_model, profile_device
from threshsearch.errors import UserError
from threshsearch.presets import get_preset
from threshsearch.profiler import Profile


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> DeviceModel:
    clock = FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("THRESHSEARCH_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        return profile_device(small_networks(), runtime=FakeRuntime(clock), clock=clock,
                              progress=False, calibration_networks=10)


def test_the_file_round_trips(model, tmp_path):
    path = model.save(tmp_path / "device.json")
    loaded = load_device_model(path)
    assert loaded.data == model.data
    assert loaded.model_id == model.model_id
    for config in small_networks():
        assert loaded.predict_ms(config) == model.predict_ms(config) > 0
    assert loaded.summary() == model.summary()
    assert "\n" not in model.summary() and "1 thread(s), batch 1, 32x32" in model.summary()


def test_a_save_that_must_not_replace_keeps_the_file_there_and_leaves_no_temporary(
        model, tmp_path):
    path = tmp_path / "device.json"
    path.write_text("another driver's model")
    with pytest.raises(FileExistsError):
        model.save(path, replace=False)
    assert path.read_text() == "another driver's model"
    model.save(path)
    assert load_device_model(path).model_id == model.model_id
    assert [p.name for p in tmp_path.iterdir()] == ["device.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "as open() makes a file"


def test_a_gpu_models_summary_names_its_torch_version(model, tmp_path):
    data = json.loads(model.save(tmp_path / "a.json").read_text())
    data["device"] |= {"kind": "cuda", "name": "NVIDIA H200"}
    data["runtime"] = {"name": "torch-cuda", "versions": {"torch": "2.11.0", "cuda": "13.0"}}
    (tmp_path / "b.json").write_text(json.dumps(data))
    assert "NVIDIA H200 (cuda, " in load_device_model(tmp_path / "b.json").summary()
    assert "), torch-cuda 2.11.0, 1 thread(s)" in load_device_model(tmp_path / "b.json").summary()


def test_another_content_has_another_id(model, tmp_path):
    data = json.loads(model.save(tmp_path / "a.json").read_text())
    data["settings"]["threads"] = 2
    (tmp_path / "b.json").write_text(json.dumps(data))
    assert load_device_model(tmp_path / "b.json").model_id != model.model_id


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read the device model"),
    ("{not json", "not JSON"),
    (b"\x80\x81 not text", "not JSON"),
    ('{"stages": []}', "not a device model"),
    ('{"format": "threshsearch-device-model", "format_version": 99}', "format_version 99"),
])
def test_files_that_are_no_device_model_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "device.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=message) as error:
        load_device_model(path)
    assert "\n" not in str(error.value) and str(path) in str(error.value)


def test_an_invalid_field_is_named(model, tmp_path):
    data = json.loads(model.save(tmp_path / "a.json").read_text())
    data["settings"]["batch_size"] = 0
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"bad.json: invalid device model: settings.batch_size"):
        load_device_model(tmp_path / "bad.json")


def test_other_settings_are_refused_naming_what_the_model_was_made_for(model):
    model.require(runtime="torch", batch_size=1, input_size=32, dtype="float32", threads=1)
    with pytest.raises(UserError, match=r"runtime 'onnxruntime' asked for, but the model was "
                       r"made for runtime 'torch' \(torch, batch 1, input 32"):
        model.require(runtime="onnxruntime")
    with pytest.raises(UserError, match="batch_size 64 asked for"):
        model.require(batch_size=64)
    with pytest.raises(UserError, match="input_size 224 asked for"):
        model.require(input_size=224)


def test_a_network_with_operations_the_model_never_timed_is_refused(model):
    wide_stem = ArchitectureConfig.from_dict(small_networks(1)[0].to_dict() | {
        "stem": {"widths": [8], "kernel": 7, "stride": 2, "pool": False}})
    with pytest.raises(UserError, match=r"has not timed \(.*stem_conv-k7s2@32"):
        model.predict_ms(wide_stem)
    with pytest.raises(UserError, match="profile the device for this space"):
        model.predict_ms(get_preset("densenet121", 10))


def test_a_profile_for_another_input_size_is_a_caller_error(model):
    profile = Profile(params=0, madd=0, flops=0, memrw_mib=0, mem_read_mib=0,
                      mem_write_mib=0, cio=0, activation_mib=0, input_size=224, layers=[])
    with pytest.raises(ValueError, match="input size 224"):
        model.predict_ms(small_networks(1)[0], profile)
