"""Profiling a device for a space: the networks drawn from it, and the device-profile
command end to end on a fake runtime (no timing is asserted)."""

import pytest

from tests.devicemodel.fakes import FakeClock, FakeRuntime
from threshsearch.cli import main
from threshsearch.devicemodel import load_device_model
from threshsearch.devicemodel import profiling as profiling_module
from threshsearch.latency import LatencySettings
from threshsearch.search import deviceprofile as deviceprofile_module
from threshsearch.search.deviceprofile import preset_networks, space_networks
from threshsearch.search.space import load_space

QUICKSTART = "search_spaces/quickstart.yaml"


@pytest.fixture(autouse=True)
def private_lock_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("THRESHSEARCH_LOCK_DIR", str(tmp_path / "locks"))


def test_space_networks_are_seeded_draws_that_fit_the_input():
    space = load_space(QUICKSTART)
    first = space_networks(space, 8, 32, seed=3)
    assert len(first) == 8
    assert [c.hash for c in first] == [c.hash for c in space_networks(space, 8, 32, seed=3)]
    assert [c.hash for c in first] != [c.hash for c in space_networks(space, 8, 32, seed=4)]
    for config in first:
        config.check_input_size(32)
        assert 3 <= len(config.stages) <= 4 and config.num_classes == space.num_classes


def test_presets_that_do_not_fit_the_input_are_left_out():
    fitting = preset_networks(10, 32)
    assert {c.num_classes for c in fitting} == {10} and len(fitting) >= 3
    assert preset_networks(10, 4) == []


def test_the_command_writes_a_model_and_prints_its_summary(tmp_path, monkeypatch, capsys):
    clock = FakeClock()
    monkeypatch.setattr(profiling_module, "make_runtime",
                        lambda name, threads, channels_last: FakeRuntime(clock))
    brief = LatencySettings(min_passes=3, max_time_s=0.002, min_time_s=0.001, warmup_s=0)
    monkeypatch.setattr(profiling_module, "OPERATION_TIMING", brief)
    monkeypatch.setattr(profiling_module, "NETWORK_TIMING", brief)
    out = tmp_path / "device.json"
    assert main(["device-profile", "--space", QUICKSTART, "--out", str(out), "--draws", "10",
                 "--networks", "10"]) == 0
    printed = capsys.readouterr().out.splitlines()
    model = load_device_model(out)
    assert printed[0].startswith(f"wrote {out}: ")
    assert printed[1] == model.summary()
    assert model.data.settings.input_size == 32 and model.data.calibration.networks == 10


def test_the_command_refuses_a_bad_setting_in_one_line(tmp_path, capsys):
    assert main(["device-profile", "--space", QUICKSTART, "--out", str(tmp_path / "d.json"),
                 "--threads", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "threshsearch device-profile: error: threads: 0 is invalid; expected an integer >= 1")


@pytest.mark.parametrize(("out", "message"), [
    ("missing/d.json", "its folder {tmp}/missing does not exist"),
    ("", "{tmp} is a folder; expected a file path"),
])
def test_the_command_refuses_an_out_it_cannot_write_before_profiling(tmp_path, monkeypatch,
                                                                     capsys, out, message):
    def never(*args, **kwargs):
        raise AssertionError("profiled before --out was checked")

    monkeypatch.setattr(deviceprofile_module, "profile_space", never)
    assert main(["device-profile", "--space", QUICKSTART, "--out",
                 str(tmp_path / out) if out else str(tmp_path)]) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
