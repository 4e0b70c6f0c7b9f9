import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest

from tests.helpers import TINY
from threshsearch.config import ArchitectureConfig


@pytest.fixture
def tiny_config() -> ArchitectureConfig:
    """A dense stage then a harmonic one, small enough to train in a second on a CPU."""
    return ArchitectureConfig.from_dict(TINY)
