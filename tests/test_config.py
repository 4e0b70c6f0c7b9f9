import json
import math
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from threshsearch.api import load_config
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
    assert set(base.replace(threshold=0).modes) == {"harmonic"}
    assert set(base.replace(threshold=math.inf).modes) == {"dense"}
    assert set(base.replace(threshold=10**9).modes) == {"dense"}


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
    explicit = preset.replace(threshold=math.inf,
        stages=tuple(
            stage.replace(mode=mode, bottleneck=128 if mode == "dense" else None)
            for stage, mode in zip(preset.stages, preset.modes, strict=True)
        ),
    )
    assert explicit.hash == preset.hash
    reordered = dict(reversed(list(preset.to_dict().items())))
    assert ArchitectureConfig.from_dict(reordered).hash == preset.hash


def test_hash_changes_with_the_network():
    preset = get_preset("threshnet79")
    assert preset.with_num_classes(10).hash != preset.hash
    assert preset.replace(threshold=0).hash != preset.hash
    deeper = preset.replace(stages=(preset.stages[0].replace(depth=7), *preset.stages[1:]))
    assert deeper.hash != preset.hash


# Computed before the configs became pydantic models: a changed hash orphans every stored study
# result, so change these only on purpose.
PRESET_HASHES = {
    ("threshnet79", 1000): "41fdd0dfb0c82a04", ("threshnet79", 10): "4f9addf54f9d77fa",
    ("threshnet79", 100): "d346a07742b56f1b", ("threshnet95", 1000): "8ce60ea8df1af962",
    ("threshnet95", 10): "a998fc843133a130", ("threshnet95", 100): "9e85d4edc39be42d",
    ("hardnet68", 1000): "3dca78a9bdeaf205", ("hardnet68", 10): "c53167da7c8b74ae",
    ("hardnet68", 100): "fb28cf7a0a2d44d5", ("hardnet85", 1000): "f84056b644f0ce19",
    ("hardnet85", 10): "1ee9c4725f7a6eda", ("hardnet85", 100): "965d6c9a1a667f75",
    ("densenet121", 1000): "b09416f66c99b844", ("densenet121", 10): "d5b49aa0e0313e64",
    ("densenet121", 100): "1230c2aed04d3edf",
}
EXPORTED = Path(__file__).parent / "fixtures" / "exported"  # a study exported back then
EXPORTED_HASHES = {"trial-0000.yaml": "323b410605a74340", "trial-0004.yaml": "1aa58ab5d385f1d7",
                   "trial-0005.yaml": "87d614622c3c0418"}


def test_hash_is_stable_across_releases():
    for (name, classes), expected in PRESET_HASHES.items():
        assert get_preset(name, classes).hash == expected, name
    for name, expected in EXPORTED_HASHES.items():
        assert load_config(EXPORTED / name).hash == expected, name
        assert yaml.safe_load((EXPORTED / name).read_text())["config_hash"] == expected


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


def test_direct_construction_and_replace_are_validated_too():
    with pytest.raises(ValidationError, match=r"depth"):
        ArchitectureConfig(stages=(StageConfig(depth=0, growth=8),))
    with pytest.raises(ConfigError, match=r"^dropout: 2 is invalid; expected a number in \[0, 1\)"):
        get_preset("threshnet79").replace(dropout=2)


def test_input_size_too_small_names_the_smallest_valid_size():
    config = get_preset("threshnet79")
    assert config.min_input_size() == 29
    config.check_input_size(29)
    with pytest.raises(ConfigError, match=r"input_size: 16 .*expected an input_size >= 29"):
        config.check_input_size(16)
    cifar = config.replace(stem=STEM_STYLES["cifar"])
    assert cifar.spatial_sizes(32) == [32, 16, 8, 8, 4, 4]
    assert cifar.min_input_size() == 8
