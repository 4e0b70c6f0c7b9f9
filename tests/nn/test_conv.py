import pytest
import torch
import torch.nn.functional as F

from threshsearch.bench import with_stock_convolutions
from threshsearch.nn import build_model
from threshsearch.nn.conv import Conv3x3
from threshsearch.presets import get_preset

LAYOUTS = [torch.contiguous_format, torch.channels_last]


@pytest.mark.parametrize("size, batch", [(1, 1), (1, 3), (2, 1), (2, 3), (3, 2), (4, 2)])
@pytest.mark.parametrize("input_layout", LAYOUTS)
@pytest.mark.parametrize("weight_layout", LAYOUTS)
def test_outputs_and_gradients_are_the_padded_convolutions(size, batch, input_layout,
                                                           weight_layout):
    torch.manual_seed(0)
    conv = Conv3x3(6, 5).double()
    conv.weight.data = conv.weight.data.contiguous(memory_format=weight_layout)
    x = torch.randn(batch, 6, size, size, dtype=torch.float64).contiguous(
        memory_format=input_layout).requires_grad_()
    expected = F.conv2d(x, conv.weight, padding=1)
    out = conv(x)
    upstream = torch.randn_like(expected)
    expected_grads = torch.autograd.grad(expected, (x, conv.weight), upstream)
    grads = torch.autograd.grad(out, (x, conv.weight), upstream)
    torch.testing.assert_close(out, expected)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad)


def test_small_maps_take_the_matrix_products():
    conv = Conv3x3(4, 4)
    assert "TwoByTwoConv" in conv(torch.randn(2, 4, 2, 2)).grad_fn.name()
    assert "Convolution" in conv(torch.randn(1, 4, 2, 2)).grad_fn.name()
    assert "CentreTapConv" in conv(torch.randn(1, 4, 1, 1)).grad_fn.name()
    assert "Convolution" in conv(torch.randn(2, 4, 4, 4)).grad_fn.name()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert "Convolution" in conv(torch.randn(2, 4, 2, 2)).grad_fn.name()


def test_a_training_step_matches_the_stock_convolutions():
    torch.manual_seed(0)
    model = build_model(get_preset("threshnet79", 10)).double()
    stock = with_stock_convolutions(build_model(get_preset("threshnet79", 10)).double())
    stock.load_state_dict(model.state_dict())
    assert not any(isinstance(module, Conv3x3) for module in stock.modules())
    x = torch.randn(4, 3, 32, 32, dtype=torch.float64).contiguous(
        memory_format=torch.channels_last)
    y = torch.randint(0, 10, (4,))
    losses = []
    for network in (model, stock):
        loss = F.cross_entropy(network(x), y)
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1])
    for (name, fast), slow in zip(model.named_parameters(), stock.parameters(), strict=True):
        torch.testing.assert_close(fast.grad, slow.grad, msg=name)


@pytest.mark.filterwarnings("ignore:`torch.jit.trace")  # deprecated, still what ONNX uses
@pytest.mark.parametrize("size, batch", [(1, 1), (2, 2)])
def test_traced_and_exported_graphs_hold_the_plain_convolution(size, batch):
    conv = Conv3x3(4, 4).eval()
    x = torch.randn(batch, 4, size, size)
    traced = torch.jit.trace(conv, x)
    assert "aten::_convolution" in str(traced.graph)
    exported = torch.export.export(conv, (x,))
    targets = {str(node.target) for node in exported.graph.nodes if node.op == "call_function"}
    assert targets == {"aten.conv2d.default"}
    torch.testing.assert_close(exported.module()(x), conv(x))
