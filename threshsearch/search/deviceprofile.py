"""Profiling a device for a search space: the networks the space can produce (random draws,
plus the paper's models that fit its input size) handed to ``devicemodel.profile_device``.

Here rather than in the device-model package because reading a space is the search's
business; the package itself takes plain configs.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna

from threshsearch.config import ArchitectureConfig, ConfigError
from threshsearch.devicemodel import DeviceModel, profile_device
from threshsearch.devicemodel.profiling import LATER_ROUNDS, ROUNDS, LaterRounds
from threshsearch.devicemodel.runtimes import Runtime
from threshsearch.latency import Clock
from threshsearch.presets import PRESETS, get_preset
from threshsearch.search.space import SearchSpace, load_space

SPACE_DRAWS = 400  # the operations of 400 random draws cover a space's channel ranges
CALIBRATION_NETWORKS = 40


def space_networks(space: SearchSpace, count: int, input_size: int, seed: int = 0
                   ) -> list[ArchitectureConfig]:
    """``count`` random draws from ``space`` that build and take ``input_size`` inputs (draws
    that do not are skipped; at most 4 x ``count`` tries)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                directions=space.directions)
    networks: list[ArchitectureConfig] = []
    for _ in range(4 * count):
        if len(networks) == count:
            break
        trial = study.ask()
        try:
            config, _ = space.sample(trial)
            config.check_input_size(input_size)
        except ConfigError:
            continue
        networks.append(config)
    return networks


def preset_networks(num_classes: int, input_size: int) -> list[ArchitectureConfig]:
    """The paper's models (with ``num_classes``) that take ``input_size`` inputs."""
    networks = []
    for name in PRESETS:
        config = get_preset(name, num_classes)
        try:
            config.check_input_size(input_size)
        except ConfigError:
            continue
        networks.append(config)
    return networks


def profiled_networks(space: SearchSpace, draws: int, input_size: int, seed: int
                      ) -> list[ArchitectureConfig]:
    """The networks a profile of ``space`` covers: ``draws`` random draws and the presets."""
    return space_networks(space, draws, input_size, seed) + preset_networks(
        space.num_classes, input_size)


def profile_space(space: SearchSpace | str | Path, *, runtime: str | Runtime = "torch",
                  input_size: int, batch_size: int = 1, threads: int = 1,
                  dtype: str = "float32", draws: int = SPACE_DRAWS,
                  calibration_networks: int = CALIBRATION_NETWORKS, rounds: int = ROUNDS,
                  later_rounds: LaterRounds = LATER_ROUNDS[0], seed: int = 0, progress: bool = True,
                  clock: Clock = time.perf_counter) -> DeviceModel:
    """A device model of this machine for the networks of ``space`` (or the space file at
    that path)."""
    space = space if isinstance(space, SearchSpace) else load_space(space)
    return profile_device(profiled_networks(space, draws, input_size, seed),
                          runtime=runtime, batch_size=batch_size, input_size=input_size,
                          threads=threads, dtype=dtype,
                          calibration_networks=calibration_networks, rounds=rounds,
                          later_rounds=later_rounds, progress=progress, clock=clock, seed=seed)
