"""Re-timing the front's records in the study: two processes re-timing one study keep each
other's records."""

import optuna

from threshsearch.search.retime import record_retimed, retimed_records
from threshsearch.search.storage import open_storage


def test_records_of_two_processes_re_timing_one_study_are_all_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    mine = optuna.create_study(study_name="s", storage=open_storage(url))
    theirs = optuna.load_study(study_name="s", storage=open_storage(url))
    record_retimed(mine, 3, {"latency_ms": 1.0})
    record_retimed(theirs, 5, {"latency_ms": 2.0})
    record_retimed(mine, 7, {"latency_ms": 3.0})
    assert retimed_records(mine) == {3: {"latency_ms": 1.0}, 5: {"latency_ms": 2.0},
                                     7: {"latency_ms": 3.0}}
