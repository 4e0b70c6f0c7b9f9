"""Ray Tune's first-in-first-out choice of the next trial to run, read from the trials that
have not ended: the same choice as Tune's FIFOScheduler at a cost that does not grow with the
run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

from threshsearch.search.endedtrials import forget

if TYPE_CHECKING:
    from ray.tune.execution.tune_controller import TuneController

ENDED = (Trial.TERMINATED, Trial.ERROR)


class LiveFIFOScheduler(FIFOScheduler):
    """FIFOScheduler's choice (the first PENDING trial in the order of Tune's trial list,
    else the first PAUSED one) made over the trials not yet ended, kept in that order as they
    are added. FIFOScheduler reads every trial of the run, twice, at every step of Tune's
    loop: through Ray at 4,800 trials that took about 6 % of the driver's time (py-spy,
    docs/benchmarks.md, "Driver at scale"), a share that grows with the run. A trial that has
    ended stays ended within a run, so it leaves at the first look after it ends; a trial
    Tune retries is not one: Tune moves it to the end of its list and adds it again (ERROR
    and back to PENDING in one step), and so does this list. As a trial leaves it, Tune's
    controller forgets it too where it can (``endedtrials.forget``): what the driver holds of
    Tune's trials does not grow with the run either."""

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[Trial, None] = {}  # a dict for its order: the order of Tune's list

    def on_trial_add(self, tune_controller: TuneController, trial: Trial) -> None:
        super().on_trial_add(tune_controller, trial)
        self._live.pop(trial, None)  # added again (a retry): now last, as in Tune's list
        self._live[trial] = None

    def choose_trial_to_run(self, tune_controller: TuneController) -> Trial | None:
        for trial in [trial for trial in self._live if trial.status in ENDED]:
            del self._live[trial]
            forget(tune_controller, trial)
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in self._live:
                if trial.status == status:
                    return trial
        return None
