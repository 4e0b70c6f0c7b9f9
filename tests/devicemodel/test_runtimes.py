"""The runtimes: copies cycled in turn, ONNX Runtime computing what PyTorch computes, and a
missing onnxruntime, a GPU runtime without a GPU or an unknown runtime refused in one
line."""

import sys

import numpy as np
import pytest
import torch

from tests.devicemodel.fakes import small_networks
from threshsearch.devicemodel.ops import network_ops, op_module
from threshsearch.devicemodel.runtimes import OnnxRuntime, TorchRuntime, make_runtime
from threshsearch.errors import UserError


def test_the_torch_runtime_cycles_through_distinct_copies():
    module = torch.nn.Conv2d(4, 4, 1, bias=False)
    run = TorchRuntime().prepare(module, [(1, 4, 3, 3)], copies=3)
    outputs = [run() for _ in range(4)]
    assert outputs[0].shape == (1, 4, 3, 3)
    assert not torch.equal(outputs[0], outputs[1])  # other inputs: another copy ran
    assert torch.equal(outputs[0], outputs[3])  # the fourth call is the first copy again


def test_onnxruntime_runs_a_harmonic_layer_as_torch_does():
    pytest.importorskip("onnxruntime")
    op = next(op for op in network_ops(small_networks(1)[0], 32)
              if op.kind == "harmonic_layer" and len(op.shape) > 1)
    module, shapes = op_module(op)
    module.eval()
    inputs = [torch.randn(1, *shape) for shape in shapes]
    session = OnnxRuntime(threads=1).session(module, [(1, *shape) for shape in shapes])()
    (out,) = session.run(None, {f"x{i}": x.numpy() for i, x in enumerate(inputs)})
    with torch.no_grad():
        expected = module(*inputs).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


def test_a_missing_onnxruntime_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r"pip install 'threshsearch\[onnx\]'"):
        make_runtime("onnxruntime")


def test_an_unknown_runtime_is_refused():
    with pytest.raises(UserError, match="runtime: 'tflite' is invalid; expected one of torch, "
                       "onnxruntime, torch-cuda"):
        make_runtime("tflite")


@pytest.mark.parametrize("name", ["torch-cuda", "torch-cuda-graph"])
def test_a_gpu_runtime_needs_a_gpu_and_names_what_this_machine_has(monkeypatch, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match=f"runtime: {name} needs a CUDA GPU, and PyTorch "
                                        "sees none here; on this machine: torch or onnxruntime"):
        make_runtime(name)
    assert make_runtime("torch").device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_runtime_runs_on_the_gpu_and_waits_for_it():
    runtime = make_runtime("torch-cuda")
    assert runtime.name == "torch-cuda" and "cuda" in runtime.versions()
    output = runtime.prepare(torch.nn.Conv2d(256, 256, 3), [(64, 256, 64, 64)], copies=2)()
    assert output.device.type == "cuda" and output.shape == (64, 256, 62, 62)
    assert torch.cuda.current_stream().query(), "the run returns once the GPU is done"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_graph_runtime_replays_what_eager_computes_and_waits_for_it(monkeypatch):
    from threshsearch.devicemodel import runtimes

    monkeypatch.setattr(runtimes, "_inputs", lambda shapes, _layout, device: [
        torch.ones(*shape, device=device) for shape in shapes])
    runtime = make_runtime("torch-cuda-graph")
    assert runtime.name == "torch-cuda-graph" and runtime.device.type == "cuda"
    module = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU())
    run = runtime.prepare(module, [(4, 8, 16, 16)], copies=2)
    first, second = run(), run()
    assert torch.cuda.current_stream().query(), "the run returns once the GPU is done"
    assert first.data_ptr() != second.data_ptr(), "each copy replays its own graph"
    with torch.no_grad():
        expected = module.cuda().eval()(torch.ones(4, 8, 16, 16, device="cuda"))
    # The copy runs channels_last, the original NCHW: other cuDNN plans (TF32 too).
    torch.testing.assert_close(first, expected, atol=1e-3, rtol=1e-3)
    first.zero_()
    run(), run()  # the first copy's graph again overwrites its output
    torch.testing.assert_close(first, expected, atol=1e-3, rtol=1e-3)
    identity = runtime.prepare(torch.nn.Identity(), [(4, 1, 1, 1)], copies=1)
    assert identity().shape == (4, 1, 1, 1)
