"""The driver's index of its study's trials, kept as trials start and end: the budget's
counts, the progress tally, the configs drawn and the completed values, so that no
suggestion reads (or scans) every trial of the study.

Built from one full read when the searcher starts (a resumed study's trials included). Then
the driver writes its own trials' changes into it, and ``refresh`` reads from the storage
only what another driver (or a heartbeat retry) may have changed: trials numbered past the
last one seen (one query finds there are none) and the unfinished trials that are not this
driver's. So the reads per suggestion are bounded by the other drivers' concurrency, not
by the study's size. Imports no Ray.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from threshsearch.search.storage import CONFIG_HASH, DUPLICATE, TIMED_OUT_OF, trial_status

UNFINISHED = ("running", "waiting")
# A twin of these is not run again. Not a duplicate: it ended as its twin stood then (a
# duplicate of a running trial ends failed), and the twin itself decides.
SETTLED = ("complete", "pruned", "infeasible")
RETRIED = "retried"  # the tally's key for a failed trial that a later trial re-runs
HEARTBEAT_RETRY = "failed_trial"  # Optuna's system attr on a heartbeat retry
# How soon a draw waiting on another driver's draw reads that trial again: at first, then
# twice as long each time up to the most (a draw takes milliseconds to seconds).
DRAW_POLL_S, DRAW_POLL_MAX_S = 0.005, 0.1


@dataclass
class Counts:
    finished: int = 0  # complete, pruned, failed (not retried), infeasible: the budget's
    running: int = 0
    waiting: int = 0
    repeats: int = 0  # duplicates (draws of a network already tried): outside the budget


def retries_of(trial: FrozenTrial) -> list[int]:
    """The numbers of the failed trials that ``trial`` re-runs (a heartbeat retry's history,
    or the trial a time-cut retry was queued for)."""
    numbers = list(RetryHeartbeatStaleTrialCallback.retry_history(trial))
    if TIMED_OUT_OF in trial.system_attrs:
        numbers.append(trial.system_attrs[TIMED_OUT_OF])
    return numbers


class TrialIndex:
    """See the module docstring. ``trials``: the study's trials as read once at the start."""

    def __init__(self, study: optuna.Study, trials: Iterable[FrozenTrial]) -> None:
        self.storage, self.study_id = study._storage, study._study_id
        self.tally: Counter[str] = Counter()  # status (or RETRIED) -> trials
        self.status: dict[int, str] = {}  # number -> trial_status
        self.trial_ids: dict[int, int] = {}  # number -> storage trial id
        self.hash_of: dict[int, str] = {}
        self.drawn: dict[str, set[int]] = {}  # config hash -> numbers of trials that drew it
        self.undrawn: set[int] = set()  # numbers of running trials whose network is unknown
        self.awaited_since: dict[int, float] = {}  # undrawn number -> first waited on
        self.retried: set[int] = set()
        self.heartbeat_retries: set[int] = set()  # numbers of trials Optuna's retry made
        # (number, values) of the complete trials but repeats, as seen
        self.completed: list[tuple[int, tuple[float, ...]]] = []
        self.complete: set[int] = set()  # the numbers in ``completed``
        self.watched: set[int] = set()  # trial ids: unfinished, not this driver's
        self.own: set[int] = set()  # trial ids this driver runs now
        for trial in trials:
            self.note(trial)

    # ------------------------------------------------------------ updates
    def _key(self, number: int) -> str:
        return RETRIED if number in self.retried else self.status[number]

    def _put(self, number: int, trial_id: int, status: str, config_hash: str | None,
             values: Sequence[float] | None = None, retries: Iterable[int] = ()) -> None:
        known = number in self.status
        if known:
            self.tally[self._key(number)] -= 1
        self.status[number], self.trial_ids[number] = status, trial_id
        self.tally[self._key(number)] += 1
        if config_hash is not None and self.hash_of.get(number) != config_hash:
            if number in self.hash_of:
                self.drawn[self.hash_of[number]].discard(number)
            self.hash_of[number] = config_hash
            self.drawn.setdefault(config_hash, set()).add(number)
        if status == "running" and number not in self.hash_of:
            self.undrawn.add(number)
        else:
            self.undrawn.discard(number)
            self.awaited_since.pop(number, None)
        if values is not None and status != DUPLICATE and number not in self.complete:
            self.complete.add(number)
            self.completed.append((number, tuple(values)))
        for retried in retries:
            if retried in self.retried:
                continue
            if retried in self.status:
                self.tally[self.status[retried]] -= 1
                self.tally[RETRIED] += 1
            self.retried.add(retried)

    def note(self, trial: FrozenTrial) -> None:
        """Take ``trial`` as read from the storage."""
        status = trial_status(trial)
        if HEARTBEAT_RETRY in trial.system_attrs:
            self.heartbeat_retries.add(trial.number)
        self._put(trial.number, trial._trial_id, status, trial.user_attrs.get(CONFIG_HASH),
                  trial.values if trial.state == TrialState.COMPLETE else None,
                  retries_of(trial))
        if status in UNFINISHED and trial._trial_id not in self.own:
            self.watched.add(trial._trial_id)
        else:
            self.watched.discard(trial._trial_id)

    def refresh(self) -> None:
        """Read what another driver may have changed: the unfinished trials not this
        driver's, and every trial numbered past the last one seen."""
        for trial_id in list(self.watched):
            self.note(self.storage.get_trial(trial_id))
        number = max(self.status, default=-1) + 1
        while True:
            try:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(
                    self.study_id, number)
            except KeyError:
                return
            self.note(self.storage.get_trial(trial_id))
            number += 1

    def claim(self, trial: optuna.Trial) -> None:
        """``trial`` (just asked) is this driver's: its changes come from here, unread. The
        trials numbered before it are read first, so that no number is skipped."""
        self.own.add(trial._trial_id)
        self.watched.discard(trial._trial_id)
        self.refresh()
        # Running from now on (a queued retry was waiting), whatever comes next.
        self._put(trial.number, trial._trial_id, "running", None)

    def lost(self, trial: optuna.Trial) -> None:
        """``trial`` was this driver's, but another driver ended it: read it back."""
        self.own.discard(trial._trial_id)
        self.note(self.storage.get_trial(trial._trial_id))

    def drew(self, trial: optuna.Trial, config_hash: str) -> None:
        self._put(trial.number, trial._trial_id, "running", config_hash)

    def await_draws_before(self, number: int, patience_s: float,
                           clock: Callable[[], float] = time.monotonic,
                           sleep: Callable[[float], None] = time.sleep) -> None:
        """Read again, until each has written its network or ended, the running trials
        numbered before ``number`` whose network was unknown when last read.

        Of two drivers drawing one network at once, the later-numbered trial is the one to
        stand down, so it must see the earlier one's draw; reading once after its own write
        is not enough: the earlier trial may write its network later still (a slower draw).
        A trial still undrawn ``patience_s`` after this driver first waited on it (its
        driver died or stalled mid-draw) is waited on no more: at worst a network is
        trained twice, never a search held up."""
        start, interval = clock(), DRAW_POLL_S
        while True:
            now = clock()
            awaited = [other for other in self.undrawn if other < number
                       and now - self.awaited_since.setdefault(other, now) < patience_s]
            if not awaited or now - start >= patience_s:
                return
            sleep(interval)
            interval = min(2 * interval, DRAW_POLL_MAX_S)
            for other in awaited:
                self.note(self.storage.get_trial(self.trial_ids[other]))

    def ended(self, trial: optuna.Trial, status: str, state: TrialState,
              values: Sequence[float] | None) -> None:
        """This driver told ``trial`` its end."""
        self.own.discard(trial._trial_id)
        self._put(trial.number, trial._trial_id, status, None,
                  values if state == TrialState.COMPLETE else None)

    # ------------------------------------------------------------ queries
    def counts(self) -> Counts:
        """How many trials are finished (a re-run trial counts once; a repeat not at all),
        running and waiting, and how many repeated a network already tried."""
        running, waiting = self.tally["running"], self.tally["waiting"]
        repeats = self.tally[DUPLICATE]
        finished = (sum(self.tally.values()) - running - waiting - self.tally[RETRIED]
                    - repeats)
        return Counts(finished, running, waiting, repeats)

    def twin(self, number: int, config_hash: str) -> int | None:
        """The number of the first trial that drew ``config_hash`` before trial ``number``
        did, or settled it: a trial not to train again. None when there is none."""
        for other in sorted(self.drawn.get(config_hash, ())):
            status = self.status[other]
            if other != number and (status in SETTLED
                                    or (status == "running" and other < number)):
                return other
        return None

    def trial(self, number: int) -> FrozenTrial:
        """Trial ``number`` as the storage holds it now (one of this driver's running
        trials as it wrote it: ``studycache``)."""
        return self.storage.get_trial(self.trial_ids[number])
