import math

import pytest
import torch

from threshsearch.config import ArchitectureConfig
from threshsearch.nn import DenseStage, HarmonicStage, build_model
from threshsearch.presets import get_preset


def structure(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(tensor.shape)) for name, tensor in model.state_dict().items()]


def test_forward_gives_logits_of_the_right_shape():
    model = build_model(get_preset("threshnet79", num_classes=10))
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_stage_kinds_follow_the_resolved_modes():
    model = build_model(get_preset("threshnet79"))
    blocks = [getattr(model.features, f"stage{i}").block for i in range(1, 6)]
    assert [type(block) for block in blocks] == [DenseStage] * 3 + [HarmonicStage] * 2
    assert [block.out_channels for block in blocks] == [256, 384, 576, 654, 782]


def test_explicit_modes_build_the_same_module_as_the_threshold():
    preset = get_preset("threshnet79")
    explicit = preset.replace(threshold=math.inf,
        stages=tuple(stage.replace(mode=mode)
                     for stage, mode in zip(preset.stages, preset.modes, strict=True)),
    )
    with torch.device("meta"):
        assert structure(build_model(explicit)) == structure(build_model(preset))
    assert explicit.hash == preset.hash


def test_threshold_extremes_build_hardnet_and_densenet_stages():
    preset = get_preset("threshnet79", num_classes=10)
    with torch.device("meta"):
        harmonic = build_model(preset.replace(threshold=0))
        dense = build_model(preset.replace(threshold=math.inf))
    assert not any(isinstance(m, DenseStage) for m in harmonic.modules())
    assert not any(isinstance(m, HarmonicStage) for m in dense.modules())


def test_dense_stage_output_keeps_its_input():
    stage = DenseStage(4, depth=2, growth=3, bottleneck=6).eval()
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        y = stage(x)
    assert y.shape == (1, 10, 5, 5)
    assert torch.equal(y[:, :4], x)


def test_harmonic_stage_output_excludes_its_input():
    stage = HarmonicStage(6, depth=4, growth=4, multiplier=1.7).eval()
    with torch.no_grad():
        y = stage(torch.randn(1, 6, 5, 5))
    assert y.shape[1] == stage.out_channels == 4 + 4 + 12


@pytest.mark.parametrize("stem", ["cifar", "densenet", "threshnet"])
def test_stems_build_and_run(stem):
    config = ArchitectureConfig.from_dict({
        "stem": stem, "stages": [{"depth": 1, "growth": 4}], "num_classes": 3,
    })
    model = build_model(config).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_training_step_updates_weights():
    model = build_model(ArchitectureConfig.from_dict({
        "stem": "cifar", "threshold": 20, "num_classes": 4,
        "stages": [{"depth": 2, "growth": 4}, {"depth": 2, "growth": 4}],
    }))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.classifier.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)),
                                             torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    assert not torch.equal(before, model.classifier.weight)
