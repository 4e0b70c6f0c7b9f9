import json
import math
from dataclasses import replace

import pytest
import yaml

from threshsearch.config import (
    STEM_STYLES,
    ArchitectureConfig,
    ConfigError,
    StageConfig,
)
from threshsearch.presets import get_preset


def small(**overrides) -> dict:
    data = {
        "stem": "cifar",
        "stages": [
            {"depth": 2, "growth": 8},
            {"depth": 4, "growth": 10, "multiplier": 1.6, "downsample": False},
        ],
        "threshold": 40,
        "num_classes": 10,
    }
    data.update(overrides)
    return data


def test_threshold_decides_each_stage_from_the_channels_entering_it():
    config = get_preset("threshnet79")
    assert [stage.in_channels for stage in config.resolve()] == [64, 128, 192, 288, 480]
    assert config.modes == ("dense", "dense", "dense", "harmonic", "harmonic")
    assert [s.in_channels for s in get_preset("threshnet95").resolve()] == [64, 128, 256, 384, 480]


def test_threshold_zero_is_all_harmonic_and_infinity_all_dense():
    base = get_preset("threshnet79")
    assert set(replace(base, threshold=0).modes) == {"harmonic"}
    assert set(replace(base, threshold=math.inf).modes) == {"dense"}
    assert set(replace(base, threshold=10**9).modes) == {"dense"}


def test_explicit_mode_overrides_the_threshold():
    data = small()
    data["stages"][0]["mode"] = "harmonic"
    assert ArchitectureConfig.from_dict(data).modes[0] == "harmonic"


def test_transition_width_from_reduction_rates():
    data = small(dense_reduction=0.5, harmonic_reduction=0.75)
    data["stages"][0]["mode"] = "dense"
    data["stages"][1]["mode"] = "harmonic"
    config = ArchitectureConfig.from_dict(data)
    dense, harmonic = config.resolve()
    assert dense.mode == "dense" and dense.block_channels == 64 + 16
    assert dense.out_channels == 40
    assert harmonic.mode == "harmonic"
    assert harmonic.out_channels == math.floor(harmonic.block_channels * 0.75 + 0.5)


@pytest.mark.parametrize("name", ["threshnet79", "hardnet85", "densenet121"])
def test_yaml_and_json_round_trip(name):
    config = get_preset(name)
    assert ArchitectureConfig.from_yaml(config.to_yaml()) == config
    assert ArchitectureConfig.from_json(config.to_json()) == config


def test_save_and_load_by_suffix(tmp_path):
    config = get_preset("threshnet95")
    for suffix in (".yaml", ".json"):
        path = config.save(tmp_path / f"net{suffix}")
        text = path.read_text()
        parsed = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
        assert ArchitectureConfig.from_dict(parsed) == config


def test_hash_ignores_key_order_and_spelled_out_derived_fields():
    preset = get_preset("threshnet79")
    explicit = replace(
        preset,
        threshold=math.inf,
        stages=tuple(
            replace(stage, mode=mode, bottleneck=128 if mode == "dense" else None)
            for stage, mode in zip(preset.stages, preset.modes, strict=True)
        ),
    )
    assert explicit.hash == preset.hash
    reordered = dict(reversed(list(preset.to_dict().items())))
    assert ArchitectureConfig.from_dict(reordered).hash == preset.hash


def test_hash_changes_with_the_network():
    preset = get_preset("threshnet79")
    assert preset.with_num_classes(10).hash != preset.hash
    assert replace(preset, threshold=0).hash != preset.hash
    deeper = replace(preset, stages=(replace(preset.stages[0], depth=7), *preset.stages[1:]))
    assert deeper.hash != preset.hash


def test_hash_is_stable_across_releases():
    # A changed hash orphans every stored study result: change this only on purpose.
    assert get_preset("threshnet79").hash == "41fdd0dfb0c82a04"


@pytest.mark.parametrize(
    ("change", "field", "hint"),
    [
        ({"stages": [{"depth": 0, "growth": 8}]}, "stages[0].depth", "integer from 1"),
        ({"stages": [{"depth": 2, "growth": -3}]}, "stages[0].growth", "integer from 1"),
        ({"stages": [{"depth": 2, "growth": 8, "multiplier": 0}]}, "stages[0].multiplier",
         "number in (0"),
        ({"stages": [{"depth": 2, "growth": 8, "mode": "sparse"}]}, "stages[0].mode",
         "dense, harmonic"),
        ({"stages": [{"depth": "two", "growth": 8}]}, "stages[0].depth", "'two'"),
        ({"stages": [{"depth": 2}]}, "stages[0].growth", "missing"),
        ({"stages": []}, "stages", "1 to 16 stages"),
        ({"threshold": -1}, "threshold", "number >= 0"),
        ({"threshold": float("nan")}, "threshold", "number >= 0"),
        ({"activation": "gelu"}, "activation", "relu, relu6"),
        ({"num_classes": 0}, "num_classes", "integer from 1"),
        ({"stem": {"widths": [32, 64], "kernel": 4}}, "stem.kernel", "odd integer"),
        ({"stem": {"widths": 64}}, "stem.widths", "list of 1 to 4"),
        ({"stem": "tiny"}, "stem", "threshnet, hardnet85, densenet, cifar"),
        ({"treshold": 10}, "treshold", "did you mean 'threshold'"),
        ({"stages": [{"depth": 2, "growht": 8}]}, "stages[0].growht", "did you mean 'growth'"),
    ],
)
def test_each_problem_names_the_field_and_what_is_valid(change, field, hint):
    with pytest.raises(ConfigError) as caught:
        ArchitectureConfig.from_dict(small(**change))
    message = str(caught.value)
    assert field in message and hint in message, message
    assert "\n" not in message


def test_several_problems_are_all_reported():
    with pytest.raises(ConfigError) as caught:
        ArchitectureConfig.from_dict(small(activation="gelu", num_classes=-1))
    assert len(caught.value.problems) == 2


def test_not_a_mapping():
    with pytest.raises(ConfigError, match="expected a mapping"):
        ArchitectureConfig.from_dict([1, 2])


def test_direct_construction_is_validated_too():
    with pytest.raises(ConfigError, match=r"stages\[0\].depth"):
        ArchitectureConfig(stages=(StageConfig(depth=0, growth=8),))


def test_input_size_too_small_names_the_smallest_valid_size():
    config = get_preset("threshnet79")
    assert config.min_input_size() == 29
    config.check_input_size(29)
    with pytest.raises(ConfigError, match=r"input_size: 16 .*expected an input_size >= 29"):
        config.check_input_size(16)
    cifar = replace(config, stem=STEM_STYLES["cifar"])
    assert cifar.spatial_sizes(32) == [32, 16, 8, 8, 4, 4]
    assert cifar.min_input_size() == 8
