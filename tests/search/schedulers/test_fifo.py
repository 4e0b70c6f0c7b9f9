"""LiveFIFOScheduler chooses as Tune's FIFOScheduler does, over any run of trials added,
started, paused, retried (moved to the end of Tune's list and added again) and ended."""

import random
from types import SimpleNamespace

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from threshsearch.search.schedulers import LiveFIFOScheduler
from threshsearch.search.schedulers.pareto import ParetoSuccessiveHalving

UNENDED = (Trial.PENDING, Trial.RUNNING, Trial.PAUSED)
ENDED = (Trial.TERMINATED, Trial.ERROR)


class FakeTrial:
    """What the choice reads of a trial: its status (hashed by identity, as Tune's)."""

    def __init__(self):
        self.status = Trial.PENDING


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("make", [LiveFIFOScheduler,
                                  lambda: ParetoSuccessiveHalving(["val_accuracy"],
                                                                  ["maximize"], 6, 2, 2)])
def test_the_choice_is_fifos_after_every_change(seed, make):
    rng = random.Random(seed)
    trials: list[FakeTrial] = []
    controller = SimpleNamespace(get_trials=lambda: trials)
    scheduler, oracle = make(), FIFOScheduler()
    for step in range(400):
        unended = [trial for trial in trials if trial.status not in ENDED]
        running = [trial for trial in unended if trial.status == Trial.RUNNING]
        if not unended or rng.random() < 0.2:
            trials.append(FakeTrial())
            scheduler.on_trial_add(controller, trials[-1])
        elif running and rng.random() < 0.1:
            # Tune retrying a failed trial: PENDING again, moved to the end of its list and
            # added again.
            retried = rng.choice(running)
            retried.status = Trial.PENDING
            trials.remove(retried)
            trials.append(retried)
            scheduler.on_trial_add(controller, retried)
        else:
            # Any move among the unended states, or an end, which is final.
            rng.choice(unended).status = rng.choice(UNENDED * 2 + ENDED)
        if rng.random() < 0.7:  # Tune does not ask at every change
            chosen = scheduler.choose_trial_to_run(controller)
            assert chosen is oracle.choose_trial_to_run(controller), step


def test_ended_trials_are_let_go():
    scheduler = LiveFIFOScheduler()
    trials = [FakeTrial() for _ in range(50)]
    controller = SimpleNamespace(get_trials=lambda: trials)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
        trial.status = Trial.TERMINATED
    trials[-1].status = Trial.RUNNING
    assert scheduler.choose_trial_to_run(controller) is None
    assert list(scheduler._live) == [trials[-1]]
