"""A Ray Tune callback that lets an ended trial go of the running statistics Tune keeps for it.

Tune keeps every trial of a run in the driver to the run's end, and with each its running
statistics of every numeric value its reports carried (max, min, mean, last, the means of the
last 5 and 10, and the windows behind those): about 70 KiB a trial for a report of about 35
numbers, 9 in 10 of what Tune holds for an ended trial. Only Tune's ExperimentAnalysis reads
them (its best trial by a metric's scope); this project reads a trial's outcome from its report
as it ends and keeps it in the study. Dropped when the trial ends, after the scheduler and the
searcher have had its last result: the driver's memory then grows by what the study and Tune's
bare trial objects hold, not by the statistics, and the garbage collector has fewer containers
to walk on every full pass.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial


class DropEndedTrialStatistics(Callback):
    """Clears an ended trial's metric statistics (a running trial keeps its own)."""

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        _drop_statistics(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        _drop_statistics(trial)


def _drop_statistics(trial: Trial) -> None:
    trial.run_metadata.metric_analysis = {}
    trial.run_metadata.metric_n_steps = {}
