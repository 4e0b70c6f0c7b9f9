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


@pytest.mark.parametrize("channels_last", [True, False])
def test_latency_lays_out_the_weights_it_names_and_restores_them(tiny_config, channels_last):
    model = build_model(tiny_config).to(memory_format=torch.channels_last)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)
                and m.kernel_size == (3, 3))
    before = conv.weight.data_ptr()
    seen = []
    conv.register_forward_pre_hook(lambda module, inputs: seen.append(
        (inputs[0].is_contiguous(), module.weight.is_contiguous())))
    result = measure_latency(model, 16, batch_size=2, channels_last=channels_last,
                             warmup=0, repeats=2)
    assert result.channels_last is channels_last
    assert seen == [(not channels_last, not channels_last)] * 2
    assert conv.weight.data_ptr() == before
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
