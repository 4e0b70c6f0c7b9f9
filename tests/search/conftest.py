"""Fixtures of the search tests: a throwaway PostgreSQL server, a storage URL of each
kind, and what the tests of a search share."""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest

from threshsearch.train import Recipe


def _postgres_bin() -> str | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob(
        "/usr/lib/postgresql/*/bin/initdb"))), None)
    return os.path.dirname(os.path.realpath(found)) if found else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on 127.0.0.1 (Debian's binaries), one database."""
    folder = _postgres_bin()
    if folder is None:
        if os.environ.get("THRESHSEARCH_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL's initdb was not found, and CI requires it")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    # Not under pytest's tmp_path: that folder is closed to other users than its owner.
    root = Path(tempfile.mkdtemp(prefix="threshsearch-postgres-"))
    # PostgreSQL refuses to run as root: run it as the postgres user where we are root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, user="postgres")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = root / "data"
    subprocess.run([*as_user, f"{folder}/initdb", "-D", str(data), "-A", "trust",
                    "-U", "postgres"], check=True, capture_output=True)
    subprocess.run([*as_user, f"{folder}/pg_ctl", "-D", str(data), "-w", "-l",
                    str(root / "log"), "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("CREATE DATABASE threshsearch"))
        engine.dispose()
        yield f"postgresql://postgres@127.0.0.1:{port}/threshsearch"
    finally:
        subprocess.run([*as_user, f"{folder}/pg_ctl", "-D", str(data), "-w", "-m", "fast",
                        "stop"], check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def spec(tiny_config):
    """One trial's spec as the searcher writes it: a tiny network, two epochs."""
    return {
        "number": 0, "architecture": tiny_config.to_dict(),
        "recipe": Recipe(batch_size=100, epochs=2, lr=1e-2).to_dict(),
        "dataset": "synthetic", "data_root": "data", "device": "cpu", "test_fraction": 0.0,
        "max_image_pixels": 10**8,
        "latency_batch_size": 1, "constraints": [], "seed": 0, "cpus": 1,
        "measurement": {"min_passes": 5, "max_time_s": 0.5, "tolerance": 0.02,
                        "exclusive": True},
    }


@pytest.fixture
def searcher(tmp_path):
    """A searcher of a tiny space, driven without Ray."""
    from tests.search.helpers import make_searcher, make_space

    made = make_searcher(make_space(tmp_path, growth=4))
    yield made
    made.close()


def delete_all_studies(url: str) -> None:
    """Empties the session's PostgreSQL database of studies: the tests that share it (one
    pytest worker's, in any order) must each find it as a fresh storage would be."""
    for summary in optuna.get_all_study_summaries(storage=url, include_best_trial=False):
        optuna.delete_study(study_name=summary.study_name, storage=url)


@pytest.fixture
def empty_postgres_url(postgres_url):
    """The session's PostgreSQL database holding no study, emptied again after the test."""
    delete_all_studies(postgres_url)
    yield postgres_url
    delete_all_studies(postgres_url)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A fresh storage: a file, or the session's PostgreSQL database, which other tests
    share (so every study written in it is deleted after the test)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'study.db'}"
        return
    yield request.getfixturevalue("empty_postgres_url")
