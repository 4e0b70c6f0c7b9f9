"""The channel-steps benchmark's timers run the convolution they are given, in both runtimes
and both ONNX Runtime layouts (structure only: no figure is checked)."""

import pytest

from benchmarks import channel_steps


@pytest.fixture(autouse=True)
def short_timings(monkeypatch):
    monkeypatch.setattr(channel_steps, "SECONDS", 0.0)
    monkeypatch.setattr(channel_steps, "COPIES", 2)


@pytest.mark.parametrize("nchwc", [True, False])
def test_onnxruntime_times_the_convolution(nchwc):
    assert channel_steps.onnxruntime_ms(16, 16, 3, 4, nchwc=nchwc) > 0


def test_pytorch_times_the_convolution():
    assert channel_steps.torch_ms(16, 8, 1, 4) > 0


def test_the_table_has_a_row_per_case(monkeypatch, capsys):
    monkeypatch.setattr(channel_steps, "CASES", [(16, 16, 3, 2), (8, 24, 1, 2)])
    channel_steps.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and rows[1].startswith("| 3x3 | 16 | 16 | 2x2 |")
