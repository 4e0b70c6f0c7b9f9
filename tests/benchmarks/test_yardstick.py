"""The yardstick's storage: its study in SQLite opens with the driver's connection settings,
so that the two compare drivers, not SQLite settings."""

import sqlalchemy

from benchmarks.yardstick import stored_study


def test_the_stored_yardstick_opens_sqlite_with_the_drivers_settings(tmp_path):
    storage = stored_study(f"sqlite:///{tmp_path / 'plain.db'}")
    with storage.engine.connect() as connection:
        assert connection.execute(sqlalchemy.text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert connection.execute(sqlalchemy.text("PRAGMA journal_mode")).scalar() == "wal"
