"""A config's operations: what the device model prices must be the network as built."""

import torch

from tests.devicemodel.fakes import small_networks
from threshsearch.config import ArchitectureConfig
from threshsearch.devicemodel.ops import network_ops, op_module
from threshsearch.nn import build_model
from threshsearch.presets import get_preset


def _parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_the_operations_hold_every_parameter_of_the_network():
    for config in [*small_networks(6), get_preset("threshnet79", 10),
                   get_preset("densenet121", 10), get_preset("hardnet68", 10)]:
        ops = network_ops(config, 32)
        assert sum(_parameters(op_module(op)[0]) for op in ops) == _parameters(
            build_model(config))


def test_each_operation_runs_on_its_inputs_and_gives_its_output_channels():
    config: ArchitectureConfig = small_networks(3)[2]
    for op in network_ops(config, 32):
        module, shapes = op_module(op)
        with torch.no_grad():
            out = module.eval()(*(torch.randn(1, *shape) for shape in shapes))
        assert out.shape[1] == op.out_channels, op


def test_resolutions_follow_the_downsampling():
    config = get_preset("threshnet79", 10)
    ops = network_ops(config, 32)
    stage_sizes = config.spatial_sizes(32)
    assert {op.resolution for op in ops if op.kind in ("dense_layer", "harmonic_layer")} \
        == set(stage_sizes[:-1])
    assert ops[-1].kind == "head" and ops[-1].resolution == stage_sizes[-1]
    assert ops[0].group == "stem_conv-k3s2@32"


def _activations(module: torch.nn.Module) -> set[type]:
    return {type(m) for m in module.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ReLU6))}


def test_a_relu6_network_is_priced_with_relu6_operations():
    config = ArchitectureConfig.from_dict(
        get_preset("threshnet79", 10).to_dict() | {"activation": "relu6", "head_norm": True})
    ops = network_ops(config, 32)
    activated = [op for op in ops if _activations(op_module(op)[0])]
    assert {op.kind for op in activated} >= {"stem_conv", "harmonic_layer", "head"}
    for op in activated:
        assert _activations(op_module(op)[0]) == {torch.nn.ReLU6}, op
        assert op.group.endswith(f"-relu6@{op.resolution}"), op.group
    relu_groups = {op.group for op in network_ops(get_preset("threshnet79", 10), 32)}
    assert not relu_groups & {op.group for op in activated}
    assert all("relu" not in op.group for op in ops if op not in activated)
