import pytest

from tests.search.helpers import offline_study as make_offline_study


@pytest.fixture(scope="package")
def offline_study(tmp_path_factory):
    """A study made by the real searcher and trial code, run in this process (no Ray):
    complete, infeasible and (simulated early-stopped) pruned trials."""
    return make_offline_study(tmp_path_factory.mktemp("results"))
