"""The scale benchmark's pace by windows (wall time per budget trial from the trials' end
times, repeats and unfinished trials left out) and its epochs, repeats left out."""

from datetime import datetime, timedelta
from types import SimpleNamespace

from benchmarks.scale import epochs_trained, wall_ms_by_window
from threshsearch.search.storage import DUPLICATE, STATUS


def study_ending_at(seconds: list[float], repeats: frozenset[int] = frozenset(),
                    running: int = 0) -> SimpleNamespace:
    """What the function reads of a study: its trials' end times and statuses."""
    start = datetime(2026, 1, 1)
    ended = [SimpleNamespace(datetime_complete=start + timedelta(seconds=offset),
                             user_attrs={STATUS: DUPLICATE} if index in repeats else {})
             for index, offset in enumerate(seconds)]
    unfinished = [SimpleNamespace(datetime_complete=None, user_attrs={})] * running
    return SimpleNamespace(trials=unfinished + ended[::-1])  # in no order of their ends


def test_each_window_is_its_budget_trials_wall_time_over_their_number():
    # Budget trials end 0.1 s apart, then 0.3 s apart; a repeat ends among them.
    ends = [0.1 * i for i in range(5)] + [0.4 + 0.3 * i for i in range(1, 6)]
    study = study_ending_at([*ends[:5], 0.45, *ends[5:]], repeats=frozenset({5}), running=2)
    paces = wall_ms_by_window(study.trials, 2)
    assert [round(ms) for ms in paces] == [100, 200, 300, 300]


def test_fewer_budget_trials_than_two_windows_give_no_window():
    assert wall_ms_by_window(study_ending_at([0.0, 1.0, 2.0]).trials, 2) == []



def test_epochs_trained_counts_the_budget_trials_epochs_not_the_repeats():
    study = SimpleNamespace(trials=[SimpleNamespace(user_attrs={"epochs": 6}),
                                    SimpleNamespace(user_attrs={"epochs": 2}),
                                    SimpleNamespace(user_attrs={STATUS: DUPLICATE, "epochs": 6}),
                                    SimpleNamespace(user_attrs={})])
    assert epochs_trained(study.trials) == 8
