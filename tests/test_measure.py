import pytest
import torch

from threshsearch.errors import UserError
from threshsearch.measure import measure_latency, resolve_device
from threshsearch.nn import build_model


def test_latency_record_structure(tiny_config):
    model = build_model(tiny_config)
    result = measure_latency(model, 16, batch_size=4, warmup=1, repeats=5)
    assert result.repeats == 5 and result.batch_size == 4 and result.input_size == 16
    assert result.min_ms <= result.median_ms <= result.max_ms
    assert result.dtype == "float32" and result.device.startswith("cpu")
    assert model.training
    assert set(result.to_dict()) >= {"median_ms", "device", "batch_size", "input_size", "dtype"}


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(UserError, match="expected one of auto, cpu, cuda"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(UserError, match="no CUDA GPU"):
        resolve_device("cuda")
