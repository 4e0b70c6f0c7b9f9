"""The counter's figures against the meta-device profile (the oracle), layer by layer."""

import random
from pathlib import Path

import optuna
import pytest

from threshsearch.api import profile
from threshsearch.config import STEM_STYLES, ArchitectureConfig, ConfigError
from threshsearch.counting import count_profile
from threshsearch.presets import get_preset, list_presets
from threshsearch.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted([*ROOT.glob("search_spaces/*.yaml"), *ROOT.glob("benchmarks/*.yaml")])


def assert_counted_as_profiled(config: ArchitectureConfig, input_size: int) -> None:
    counted = count_profile(config, input_size).to_dict(per_layer=True)
    profiled = profile(config, input_size).to_dict(per_layer=True)
    assert counted["layers"] == profiled["layers"]
    assert counted == profiled  # every total, the floats bit for bit


@pytest.mark.parametrize("space_path", SPACES, ids=lambda path: path.stem)
def test_draws_of_the_shipped_spaces(space_path):
    space = load_space(space_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    for _ in range(12):
        config, _ = space.sample(study.ask())
        try:
            config.check_input_size(32)
        except ConfigError:
            continue
        assert_counted_as_profiled(config, 32)


@pytest.mark.parametrize("name", list_presets())
@pytest.mark.parametrize("input_size", [32, 224])
def test_presets(name, input_size):
    assert_counted_as_profiled(get_preset(name, 10), input_size)


def random_config(rng: random.Random) -> ArchitectureConfig:
    """Any corner of the config the builder knows: both modes, every transition, both pools,
    no downsampling, dropout, DenseNet's head, relu6, explicit widths, every stem."""
    stages = [{
        "depth": rng.randint(1, 9), "growth": rng.choice([4, 8, 12, 20]),
        "mode": rng.choice(["auto", "dense", "harmonic"]),
        "bottleneck": rng.choice([None, 16, 40]),
        "multiplier": rng.choice([1.4, 1.6, 1.7, 2.0]),
        "transition_width": rng.choice([None, None, 24]),
        "transition": rng.choice(["post", "pre", "none"]),
        "downsample": rng.random() < 0.7, "pool": rng.choice(["max", "avg"]),
        "dropout": rng.choice([0.0, 0.2]),
    } for _ in range(rng.randint(1, 4))]
    return ArchitectureConfig.from_dict({
        "stages": stages, "stem": rng.choice([*STEM_STYLES, {"widths": [8], "kernel": 5,
                                                             "stride": 3, "pool": False}]),
        "threshold": rng.choice([0, 48, 96, "inf"]),
        "dense_reduction": rng.choice([0.5, 0.7]),
        "harmonic_reduction": rng.choice([0.85, 1.0, 1.3]),
        "activation": rng.choice(["relu", "relu6"]), "dropout": rng.choice([0.0, 0.1]),
        "head_norm": rng.random() < 0.5, "num_classes": rng.choice([1, 10, 100]),
    })


def test_random_configs_of_every_kind():
    rng = random.Random(3)
    checked = 0
    while checked < 40:
        config = random_config(rng)
        input_size = rng.choice([7, 32, 45, 64])
        try:
            config.check_input_size(input_size)
        except ConfigError:
            continue
        assert_counted_as_profiled(config, input_size)
        checked += 1


def test_too_small_an_input_is_a_config_error():
    with pytest.raises(ConfigError, match="input_size"):
        count_profile(get_preset("threshnet79", 10), 4)
