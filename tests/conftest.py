import os

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


@pytest.fixture(scope="session")
def _ray_shut_down_at_the_end():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def local_ray(_ray_shut_down_at_the_end):
    """The tests' shared local Ray (``tests.helpers.ensure_local_ray``), shut down once,
    after the last test."""
    ensure_local_ray()
