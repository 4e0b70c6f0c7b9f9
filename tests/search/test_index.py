"""The driver's trial index against a full scan of the study (the scan the searcher and the
progress line did per trial before the index, kept here as the oracle), after random
sequences of this driver's and another driver's trials starting, ending and being retried."""

from collections import Counter

import optuna
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from threshsearch.search.index import TrialIndex
from threshsearch.search.storage import STATUS, queue_retry, retried_numbers, trial_status

HASHES = ("a", "b", "c", "d")
ENDS = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED,
        "infeasible": TrialState.PRUNED, "failed": TrialState.FAIL,
        "timed_out": TrialState.FAIL, "duplicate": TrialState.COMPLETE}


def scanned_counts(trials):
    retried = retried_numbers(trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    repeats = sum(trial_status(t) == "duplicate" for t in trials)
    finished = sum(t.state.is_finished() and t.number not in retried for t in trials) - repeats
    return finished, running, waiting, repeats


def scanned_tally(trials):
    retried = retried_numbers(trials)
    return Counter("retried" if t.number in retried else trial_status(t) for t in trials)


def scanned_twin(trials, number, config_hash):
    return next((t.number for t in trials
                 if t.user_attrs.get("config_hash") == config_hash and t.number != number
                 and (trial_status(t) in ("complete", "pruned", "infeasible")
                      or (trial_status(t) == "running" and t.number < number))), None)


def assert_matches_a_scan(index, study):
    trials = study.get_trials()
    counts = index.counts()
    assert (counts.finished, counts.running, counts.waiting, counts.repeats) == scanned_counts(
        trials)
    assert +index.tally == scanned_tally(trials)
    for config_hash in HASHES:
        for number in [*index.status, 10**6]:
            assert index.twin(number, config_hash) == scanned_twin(trials, number,
                                                                   config_hash)
    assert index.undrawn == {t.number for t in trials if trial_status(t) == "running"
                             and "config_hash" not in t.user_attrs}
    assert sorted(index.complete) == [t.number for t in trials
                                      if t.state == TrialState.COMPLETE
                                      and trial_status(t) != "duplicate"]


def end(study, trial, status):
    values = [0.5, 1.0] if ENDS[status] == TrialState.COMPLETE else None
    trial.set_user_attr(STATUS, status)
    study.tell(trial, values, state=ENDS[status])
    return values


OPS = st.lists(st.tuples(st.sampled_from(["start", "end", "foreign start", "foreign draws",
                                          "foreign end", "foreign dies", "refresh"]),
                         st.integers(0, 100), st.sampled_from(list(ENDS))), max_size=40)


@settings(max_examples=80, deadline=None)
@given(OPS)
def test_the_index_equals_a_full_scan_after_any_sequence_of_trial_ends(ops):
    study = optuna.create_study(directions=["maximize", "minimize"])
    other = optuna.load_study(study_name=study.study_name, storage=study._storage)
    index = TrialIndex(study, study.get_trials())
    mine, theirs, undrawn = [], [], []
    for op, pick, status in ops:
        if op == "start":
            trial = study.ask()
            index.claim(trial)
            trial.set_user_attr("config_hash", HASHES[pick % len(HASHES)])
            index.drew(trial, HASHES[pick % len(HASHES)])
            mine.append(trial)
        elif op == "end" and mine:
            trial = mine.pop(pick % len(mine))
            values = end(study, trial, status)
            index.ended(trial, status, ENDS[status], values)
            if status == "timed_out":
                queue_retry(study, study._storage.get_trial(trial._trial_id))
        elif op == "foreign start":
            undrawn.append(other.ask())  # its network is written by a later op, or never
        elif op == "foreign draws" and undrawn:
            trial = undrawn.pop(0)
            trial.set_user_attr("config_hash", HASHES[pick % len(HASHES)])
            theirs.append(trial)
        elif op == "foreign end" and theirs:
            end(other, theirs.pop(pick % len(theirs)), status)
        elif op == "foreign dies" and theirs:
            # What Optuna's heartbeat retry makes of a stale trial: failed, and queued again.
            dead = theirs.pop(pick % len(theirs))
            other.tell(dead, state=TrialState.FAIL)
            other.add_trial(optuna.trial.create_trial(
                state=TrialState.WAITING,
                system_attrs={"failed_trial": dead.number, "retry_history": [dead.number]}))
        elif op == "refresh":
            index.refresh()
    index.refresh()
    assert_matches_a_scan(index, study)
    # A resumed driver builds its index from one full read: the same index.
    assert_matches_a_scan(TrialIndex(study, study.get_trials()), study)


def test_a_heartbeat_retry_is_known_as_one_without_reading_it_again():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, system_attrs={"failed_trial": 0, "retry_history": [0]}))
    index = TrialIndex(study, [])
    trial = study.ask()
    index.claim(trial)
    assert trial.number == 1 and trial.number in index.heartbeat_retries
    assert index.counts().finished == 0, "the failed attempt is counted by its retry"


def test_a_duplicate_of_a_running_trial_that_then_failed_does_not_block_its_network():
    study = optuna.create_study(directions=["maximize", "minimize"])
    index = TrialIndex(study, [])
    first, second = study.ask(), study.ask()
    for trial in (first, second):
        index.claim(trial)
        trial.set_user_attr("config_hash", "a")
        index.drew(trial, "a")
    # The second drew the first's network while it ran: a duplicate, failed as its twin
    # stood then; then the first fails.
    for trial, status in ((second, "duplicate"), (first, "failed")):
        trial.set_user_attr(STATUS, status)
        study.tell(trial, state=TrialState.FAIL)
        index.ended(trial, status, TrialState.FAIL, None)
    assert index.twin(2, "a") is None, "the network failed: a new draw of it runs"
    assert_matches_a_scan(index, study)


class DrawingElsewhere:
    """A fake clock and sleep: another driver's earlier trial writes its network once this
    driver has waited ``writes_after`` polls (never, when None)."""

    def __init__(self, trial, config_hash, writes_after):
        self.trial, self.config_hash, self.writes_after = trial, config_hash, writes_after
        self.now, self.polls = 0.0, 0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        self.polls += 1
        if self.polls == self.writes_after:
            self.trial.set_user_attr("config_hash", self.config_hash)


def drawn_at_once(writes_after):
    """Two drivers' indexes: the earlier trial is asked first, but the later one writes the
    same network first and reads before the earlier one's write."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    earlier, later = study.ask(), study.ask()
    index = TrialIndex(study, [])  # the later trial's driver
    index.claim(later)
    later.set_user_attr("config_hash", "a")
    index.drew(later, "a")
    index.refresh()
    elsewhere = DrawingElsewhere(earlier, "a", writes_after)
    index.await_draws_before(later.number, 1.0, elsewhere.clock, elsewhere.sleep)
    return index, elsewhere


def test_a_draw_waits_for_an_earlier_trials_network_and_stands_down_as_its_twin():
    index, elsewhere = drawn_at_once(writes_after=3)
    assert elsewhere.polls == 3
    assert index.twin(1, "a") == 0, "the later of two draws of one network stands down"
    assert not index.awaited_since, "nothing is kept of a wait that ended"


def test_a_draw_stops_waiting_for_a_stalled_driver_and_not_again():
    index, elsewhere = drawn_at_once(writes_after=None)
    assert 1.0 <= elsewhere.now < 1.1
    assert index.twin(1, "a") is None
    polls = elsewhere.polls
    index.await_draws_before(2, 1.0, elsewhere.clock, elsewhere.sleep)
    assert elsewhere.polls == polls, "a trial given up on is not waited for again"


def test_a_draw_waits_for_no_later_trial():
    study = optuna.create_study(directions=["maximize", "minimize"])
    mine, later = study.ask(), study.ask()
    index = TrialIndex(study, [])
    index.claim(mine)  # reads the later trial, another driver's, drawing still
    mine.set_user_attr("config_hash", "a")
    index.drew(mine, "a")
    elsewhere = DrawingElsewhere(later, "a", writes_after=None)
    index.await_draws_before(mine.number, 1.0, elsewhere.clock, elsewhere.sleep)
    assert index.undrawn == {later.number} and elsewhere.polls == 0
