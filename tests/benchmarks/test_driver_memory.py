"""The driver-memory diagnostic's pieces without Ray: the per-trial growth it prints from two
tracemalloc snapshots, and the count of ended trials it reads from a study's database."""

import sqlite3
import tracemalloc

from benchmarks.driver_memory import ended_trials, growth_lines

KEPT = []


def test_growth_is_reported_per_trial_by_site_largest_first():
    tracemalloc.start(3)
    try:
        first = tracemalloc.take_snapshot()
        KEPT.append([bytearray(10240) for _ in range(10)])  # 100 KiB held at one site
        second = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    lines = growth_lines(second.compare_to(first, "traceback"), trials=10)
    total = float(lines[0].split(": ")[1].split(" KiB")[0])
    assert total >= 10.0
    assert "KiB a trial" in lines[1]
    assert float(lines[1].split(" KiB")[0]) >= 10.0, "the bytearrays' site comes first"
    assert any(__file__ in line for line in lines[2:5])
    KEPT.clear()


def test_ended_trials_are_counted_from_the_database_and_none_before_it_exists(tmp_path):
    db = tmp_path / "study.db"
    assert ended_trials(db) is None and not db.exists(), "read only: the study makes it"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE trials (state TEXT)")
        connection.executemany("INSERT INTO trials VALUES (?)",
                               [("COMPLETE",), ("RUNNING",), ("PRUNED",), ("FAIL",)])
    assert ended_trials(db) == 3
