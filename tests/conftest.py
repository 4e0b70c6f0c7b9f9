import os
import sys

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest

from tests.helpers import TINY, ensure_local_ray
from threshsearch.config import ArchitectureConfig


@pytest.fixture
def tiny_config() -> ArchitectureConfig:
    """A dense stage then a harmonic one, small enough to train in a second on a CPU."""
    return ArchitectureConfig.from_dict(TINY)


@pytest.fixture(scope="session")
def device_model_file(tmp_path_factory):
    """A device model of the tiny space's networks, made on a fake clock."""
    from tests.search.helpers import write_device_model

    return write_device_model(tmp_path_factory.mktemp("device-model") / "model.json")


@pytest.fixture(scope="module", autouse=True)
def _ray_shut_down_after_each_module():
    """An idle Ray costs a fifth of a core here (its daemons poll): kept up through the
    module that started it, not through the modules after it that do not use it."""
    yield
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


@pytest.fixture
def local_ray():
    """The tests' shared local Ray (``tests.helpers.ensure_local_ray``), shut down after the
    module."""
    ensure_local_ray()
