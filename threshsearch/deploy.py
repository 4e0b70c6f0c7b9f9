"""A network as a deployment format: an ONNX file, checked against PyTorch's own output, and
an ONNX Runtime session to run it on the CPU.

The exporter is PyTorch's TorchScript-based one (``dynamo=False``): deprecated in favour of
the dynamo exporter, but it works with the pinned torch 2.13, gave the same outputs for the
presets (max difference below 1e-6) and exports a network about 3x faster, which matters
when profiling a device for ONNX Runtime exports hundreds of operations. The input shape is
fixed (batch, 3, size, size): deployment runtimes optimise a fixed shape best, and a file
says which shape it was made for.

onnx, onnxscript and onnxruntime are an optional extra (``threshsearch[onnx]``); without them
every function here raises one ``UserError`` saying how to install them.
"""

from __future__ import annotations

import importlib
import io
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from threshsearch.errors import UserError

OPSET = 17
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
INSTALL_HINT = "pip install 'threshsearch[onnx]'"
RELATIVE_TOLERANCE = 1e-4  # of the output's largest magnitude: float32 reassociation is ~1e-6
CHECK_SEED = 0


class ExportMismatch(RuntimeError):
    """The ONNX file's output differs from PyTorch's beyond the tolerance."""


def require_onnx(flag: str) -> None:
    """UserError (naming ``flag``) unless onnx, onnxscript and onnxruntime import."""
    missing = []
    for package in ONNX_PACKAGES:
        try:
            importlib.import_module(package)
        except ImportError:
            missing.append(package)
    if missing:
        raise UserError(f"{flag} needs {', '.join(missing)} (not installed): "
                        f"{INSTALL_HINT}")


def check_input(batch_size: int, input_size: int, seed: int = CHECK_SEED) -> torch.Tensor:
    """The fixed random input exports and checks use."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 3, input_size, input_size, generator=generator)


def onnx_bytes(module: nn.Module, inputs: tuple[torch.Tensor, ...], input_names: list[str],
               output_names: list[str] | None = None) -> bytes:
    """``module`` (in eval mode, on the CPU) as an ONNX model of fixed input shapes, opset
    ``OPSET``: the one exporter behind exported files and device models of ONNX Runtime, so
    that a device model is profiled on the graphs the deployed files hold."""
    require_onnx("ONNX export")
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module, inputs, buffer, input_names=input_names,
                          output_names=output_names, opset_version=OPSET, dynamo=False)
    return buffer.getvalue()


def to_onnx(model: nn.Module, input_size: int, batch_size: int = 1,
            path: str | Path | None = None) -> bytes:
    """``model`` in eval mode as an ONNX model (input ``input`` of shape (batch_size, 3,
    input_size, input_size), output ``logits``), written to ``path`` too when given. The
    model is moved to the CPU and left in the mode it was found in."""
    was_training = model.training
    model.eval()
    try:
        data = onnx_bytes(model.cpu(), (check_input(batch_size, input_size),), ["input"],
                          ["logits"])
    finally:
        model.train(was_training)
    if path is not None:
        Path(path).write_bytes(data)
    return data


def onnx_session(model: bytes | str | Path, threads: int = 1) -> Any:
    """An ONNX Runtime CPU session: ``threads`` threads inside an operator, one between
    operators (a CNN's graph is a chain: parallel operators would only contend)."""
    require_onnx("ONNX Runtime")
    import onnxruntime

    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, onnx_session_options(threads),
                                        providers=["CPUExecutionProvider"])


def onnx_optimised_ops(model: bytes, options: Any) -> set[str]:
    """The operators of the graph ONNX Runtime optimises ``model`` into under session
    ``options``, as ``domain:type`` (an empty domain is ONNX's own). ``options`` come back
    as given (the optimised graph's path is set only for this session)."""
    require_onnx("ONNX Runtime")
    import onnx
    import onnxruntime

    given = options.optimized_model_filepath
    with tempfile.TemporaryDirectory() as folder:
        options.optimized_model_filepath = str(Path(folder) / "optimised.onnx")
        try:
            onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
            graph = onnx.load(options.optimized_model_filepath).graph
        finally:  # a session made later with these options would write into a deleted folder
            options.optimized_model_filepath = given
    return {f"{node.domain}:{node.op_type}" for node in graph.node}


def onnx_session_options(threads: int = 1) -> Any:
    """The options of ``onnx_session``'s sessions."""
    require_onnx("ONNX Runtime")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only: its notes on graph optimisation are noise
    return options


def onnx_input_shape(session: Any) -> tuple[int, ...]:
    """The input shape a session was exported for."""
    return tuple(session.get_inputs()[0].shape)


@dataclass(frozen=True)
class OnnxCheck:
    """How far the ONNX model's output is from PyTorch's on the same input."""

    max_abs_diff: float
    scale: float  # the PyTorch output's largest magnitude (at least 1)
    tolerance: float  # RELATIVE_TOLERANCE x scale

    def describe(self) -> str:
        return (f"ONNX Runtime matches PyTorch: max |diff| {self.max_abs_diff:.2e} "
                f"<= {self.tolerance:.1e}")


def check_onnx(model: nn.Module, onnx_model: bytes | str | Path, input_size: int,
               batch_size: int = 1, name: str = "the network") -> OnnxCheck:
    """Run the ONNX model in ONNX Runtime and ``model`` in PyTorch (eval mode) on one fixed
    random input and compare; ExportMismatch, naming ``name``, beyond the tolerance. The
    model is moved to the CPU."""
    x = check_input(batch_size, input_size)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            reference = model.cpu()(x).numpy()
    finally:
        model.train(was_training)
    session = onnx_session(onnx_model)
    output = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    scale = max(1.0, float(np.abs(reference).max()))
    check = OnnxCheck(float(np.abs(output - reference).max()), scale,
                      RELATIVE_TOLERANCE * scale)
    if output.shape != reference.shape or not check.max_abs_diff <= check.tolerance:
        raise ExportMismatch(
            f"{name}: the ONNX model's output differs from PyTorch's (shape {output.shape} vs "
            f"{reference.shape}, max |diff| {check.max_abs_diff:.3g} > {check.tolerance:.1e})")
    return check
