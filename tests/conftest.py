import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest

from threshsearch.config import ArchitectureConfig

TINY = {
    "stem": {"widths": [8], "kernel": 3, "stride": 1, "pool": False},
    "threshold": 16,
    "stages": [
        {"depth": 2, "growth": 4, "transition_width": 12},
        {"depth": 2, "growth": 6, "downsample": False},
    ],
    "num_classes": 10,
}


@pytest.fixture
def tiny_config() -> ArchitectureConfig:
    """A dense stage then a harmonic one, small enough to train in a second on a CPU."""
    return ArchitectureConfig.from_dict(TINY)
