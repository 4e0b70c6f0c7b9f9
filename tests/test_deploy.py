"""ONNX export: the file's outputs match PyTorch's, a mismatch is caught and named, and a
missing optional dependency is one clear error."""

import numpy as np
import pytest
import torch

import threshsearch
from threshsearch import deploy
from threshsearch.deploy import (
    ExportMismatch,
    check_input,
    check_onnx,
    onnx_input_shape,
    onnx_optimised_ops,
    onnx_session,
    onnx_session_options,
    to_onnx,
)
from threshsearch.errors import UserError
from threshsearch.nn import build_model


def ort_output(data: bytes, x: torch.Tensor) -> np.ndarray:
    session = onnx_session(data)
    return session.run(None, {"input": x.numpy()})[0]


def test_a_small_network_exports_with_pytorchs_outputs(tiny_config, tmp_path):
    model = build_model(tiny_config)
    model.train()
    path = tmp_path / "tiny.onnx"
    data = to_onnx(model, input_size=16, batch_size=2, path=path)
    assert path.read_bytes() == data
    assert model.training, "the model is left in the mode it was in"
    assert onnx_input_shape(onnx_session(path)) == (2, 3, 16, 16)
    x = check_input(2, 16, seed=7)  # not the export's own input
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    assert np.abs(ort_output(data, x) - expected).max() <= 1e-4 * max(1, np.abs(expected).max())
    check = check_onnx(model, data, 16, 2, name="tiny")
    assert check.max_abs_diff <= check.tolerance


@pytest.mark.slow
def test_a_preset_exports_with_pytorchs_outputs():
    model = threshsearch.build_model("threshnet79", num_classes=10)
    data = to_onnx(model, input_size=32)
    check = check_onnx(model, data, 32, name="threshnet79")
    assert check.max_abs_diff <= check.tolerance


def test_the_optimised_graphs_operators_are_read_and_the_options_come_back_as_given():
    model = to_onnx(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8),
                                        torch.nn.ReLU()).eval(), input_size=8)
    options = onnx_session_options(1)
    ops = onnx_optimised_ops(model, options)
    # Blocked (NCHWc), or fused with its activation where the CPU has no blocked kernels.
    assert ops & {"com.microsoft.nchwc:Conv", "com.microsoft:FusedConv"}
    assert not {":BatchNormalization", ":Relu"} & ops, "folded or fused into the convolution"
    assert options.optimized_model_filepath == ""
    import onnxruntime  # a later session with the options is not sent to a deleted folder

    onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def test_an_export_that_differs_from_pytorch_is_an_error_naming_the_network(tiny_config):
    torch.manual_seed(0)
    data = to_onnx(build_model(tiny_config), 16)
    torch.manual_seed(1)
    other = build_model(tiny_config)  # same shape, other weights
    with pytest.raises(ExportMismatch, match="tiny-net: the ONNX model's output differs"):
        check_onnx(other, data, 16, name="tiny-net")


def test_without_the_onnx_extra_export_says_how_to_install_it(tiny_config, monkeypatch):
    real = deploy.importlib.import_module

    def missing(name: str, *args):
        if name == "onnxruntime":
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(deploy.importlib, "import_module", missing)
    with pytest.raises(UserError) as error:
        to_onnx(build_model(tiny_config), 16)
    message = str(error.value)
    assert "\n" not in message and "onnxruntime" in message
    assert "pip install 'threshsearch[onnx]'" in message
