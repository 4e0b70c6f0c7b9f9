"""The channel-steps benchmark's timers run the layer they are given, in both runtimes and both
ONNX Runtime layouts, and its table reports the layout (structure only: no figure is checked)."""

import platform

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

import onnxruntime

from benchmarks import channel_steps


@pytest.fixture(autouse=True)
def short_timings(monkeypatch):
    monkeypatch.setattr(channel_steps, "SECONDS", 0.0)
    monkeypatch.setattr(channel_steps, "MAX_COPIES", 2)


@pytest.mark.parametrize(("nchwc", "level"), [
    (True, onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL),
    (False, onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)])
def test_the_layout_flag_sets_the_optimisation_level(nchwc, level):
    options = channel_steps.session_options(nchwc)
    assert options.graph_optimization_level == level
    assert options.intra_op_num_threads == 1


def test_without_the_layout_optimisations_the_convolution_is_not_nchwc():
    milliseconds, in_nchwc = channel_steps.onnxruntime_ms(16, 16, 3, 4, nchwc=False)
    assert milliseconds > 0 and in_nchwc is False


def test_the_optimised_graph_keeps_a_convolution():
    model = channel_steps.onnx_bytes(channel_steps._layer(16, 16, 3),
                                     (torch.randn(1, 16, 4, 4),), ["x"])
    assert channel_steps.optimised_ops(model, nchwc=False) & {":Conv", "com.microsoft:FusedConv"}


def test_copies_fill_the_cold_bytes_within_the_cap(monkeypatch):
    monkeypatch.setattr(channel_steps, "MAX_COPIES", 32)
    small, big = channel_steps.copies(8, 8, 1, 2), channel_steps.copies(512, 512, 3, 16)
    assert small == 32 and big == 1


def test_pytorch_times_the_layer():
    assert channel_steps.torch_ms(16, 8, 1, 4) > 0


def test_the_table_has_a_row_per_case_and_restores_the_threads(monkeypatch, capsys):
    monkeypatch.setattr(channel_steps, "CASES", [(16, 16, 3, 2), (8, 24, 1, 2)])
    threads = torch.get_num_threads()
    channel_steps.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 3 and rows[1].startswith("| 3x3 | 16 | 16 | 2x2 |")
    assert rows[1].split(" | ")[6] in {"yes", "no"}
    assert torch.get_num_threads() == threads


@pytest.mark.skipif(platform.machine() not in {"x86_64", "AMD64"},
                    reason="ONNX Runtime's NCHWc layout is an x86 kernel")
def test_a_convolution_that_suits_the_layout_is_found_in_it():
    _, in_nchwc = channel_steps.onnxruntime_ms(16, 16, 3, 4, nchwc=True)
    assert in_nchwc is True
