"""The device-model benchmark refuses a command line that would measure nothing."""

import sys

import pytest

from benchmarks import device_model


def _never(*args, **kwargs):
    raise AssertionError("the benchmark profiled instead of refusing its command line")


def test_no_space_and_no_224_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["device_model.py", "--spaces", "--preset-sizes", "32"])
    monkeypatch.setattr(device_model, "time_device", _never)
    with pytest.raises(SystemExit) as exit_info:
        device_model.main()
    assert exit_info.value.code == 2
    assert "--preset-sizes 224" in capsys.readouterr().err


def test_a_negative_probe_count_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["device_model.py", "--probes", "-1"])
    monkeypatch.setattr(device_model, "time_device", _never)
    with pytest.raises(SystemExit) as exit_info:
        device_model.main()
    assert exit_info.value.code == 2
    assert "--probes -1: expected 0 or more" in capsys.readouterr().err
