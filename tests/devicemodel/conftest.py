import pytest


@pytest.fixture(autouse=True)
def private_lock_folder(tmp_path, monkeypatch):
    """Profiling takes the device lock exclusive: a private folder keeps these tests from
    pausing (or waiting on) other processes' trials."""
    monkeypatch.setenv("THRESHSEARCH_LOCK_DIR", str(tmp_path / "locks"))
