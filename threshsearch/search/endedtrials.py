"""How the driver lets Ray Tune's ended trials go: callbacks that cut an ended trial to its
identity, ``forget`` that has Tune's controller drop it, and Tune's trial printer silenced.

Tune keeps every trial of a run in the driver to the run's end, and with each: its running
statistics of every numeric value its reports carried (max, min, mean, last, the means of the
last 5 and 10, and the windows behind those: about 70 KiB a trial for a report of about 35
numbers), its last report (this project's carries the latency, throughput and worker-time
records and a copy of the trial's config), its config (the whole trial spec) with a flattened
copy, and a cached JSON text of each for its experiment state (tracemalloc on a 700-trial run
through Ray, after the statistics were dropped: about 14 KiB a trial of state JSON, 8 of
report JSON, 7 of deserialised reports, 4 of flattened configs). Only Tune's
ExperimentAnalysis and its experiment state read them; this project reads a trial's outcome
from its report as it ends and keeps it in the study, the run's whole state. So when a trial
ends, after the scheduler and the searcher have had its last result, its statistics are
dropped and its report and config cut to the bookkeeping Tune reads of an ended trial, and
its cached JSON invalidated: the next experiment-state write caches the short form. (A
trial Tune stops at the run's time budget ends through neither hook and keeps all it has:
at most as many as run at once, and the run is over.)

Even cut, an ended trial's object stays in Tune's controller to the run's end: in its list of
the run's trials, its set of terminated ones and its cache of their state for the experiment
state (12 KiB a trial in all: ``benchmarks/driver_memory.py``, docs/benchmarks.md). So once
a trial has TERMINATED and left its actor, the controller forgets it (``forget``): a long
run's driver holds the trials it runs and the failed ones, not all it ran. The cost: Tune's
experiment state and the ``ResultGrid`` that ``Tuner.fit`` returns list only the trials not
forgotten (at a run's end usually none but the failed ones, those cut at the time budget
and one kept as the list's last); nothing here reads either, the study holds every trial.
The controller's fields are Tune's own (the same names in the sources of Ray 2.40 and
2.60); a controller laid out otherwise forgets nothing, and a test on a real run shows
whether the installed Ray's does.

Tune's trial printer (added unless a run passes one) prints nothing at ``verbose=0`` but for
one line: "Trial X completed. Last result: ..." whenever a trial ends with the report it last
printed, which for a trial cut as it ended is every trial, and it keeps every trial it saw.
This project prints its own lines, so a run passes a printer that prints and keeps nothing.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.progress_reporter import TrialProgressCallback

from threshsearch.search.reports import BASELINE

# What an ended trial's last report keeps: Tune's own bookkeeping of it.
KEPT_RESULT = ("trial_id", "training_iteration", "done", "time_total_s", "timestamp", "date")
KEPT_CONFIG = ("number", BASELINE)  # its study trial, and the preset a baseline trains
UNRESOLVED_CONFIG = "_Trial__unresolved_config"  # Tune 2.x keeps the config twice


class ShedEndedTrials(Callback):
    """Cuts an ended trial to its identity (a running trial keeps all it has)."""

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        shed(trial)

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        shed(trial)


class SilentTrialProgress(TrialProgressCallback):
    """Tune's trial printer in its place, printing and keeping nothing."""

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial,
                        result: dict, **info: Any) -> None:
        pass

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial,
                       **info: Any) -> None:
        pass

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial,
                          **info: Any) -> None:
        pass


def shed(trial: Trial) -> None:
    """Drop ``trial``'s statistics, keep of its last report and config only ``KEPT_RESULT``
    and ``KEPT_CONFIG``, and tag it with its study trial's number alone."""
    metadata = trial.run_metadata
    metadata.metric_analysis = {}
    metadata.metric_n_steps = {}
    metadata.last_result = {key: value for key, value in metadata.last_result.items()
                            if key in KEPT_RESULT}
    identity = {key: value for key, value in trial.config.items() if key in KEPT_CONFIG}
    trial.config = identity
    trial.evaluated_params = dict(identity)
    if hasattr(trial, UNRESOLVED_CONFIG):  # Tune's private copy of the config as suggested
        setattr(trial, UNRESOLVED_CONFIG, dict(identity))
    # The tag is the whole spec as text; the trial's folder was named from it at its start.
    # Setting it invalidates Tune's cached JSON of the trial (the metadata's is invalidated
    # by its own attribute writes above).
    trial.set_experiment_tag(str(identity.get("number", "")))


def forget(tune_controller: Any, trial: Trial) -> bool:
    """Tune's controller (or the view of it a scheduler is given) lets go of ``trial`` if it
    has TERMINATED and left its actor, unless it is the last trial in the controller's list:
    Tune's check for a run that cannot place its trials reads the list's first trial once no
    trial has run for a minute (as when other drivers hold the study's last trials). A failed
    trial is kept: Tune copies its error files at a state write. Returns whether it let go."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    try:
        trials, terminated = controller._trials, controller._stopped_trials
        to_cache, cached = controller._trials_to_cache, controller._trial_metadata
        on_actor = controller._trial_to_actor
    except AttributeError:
        return False
    if (trial.status != Trial.TERMINATED or trial not in terminated or trial in on_actor
            or len(trials) < 2):
        return False
    trials.remove(trial)  # the list holds the run's live trials and few more: short
    terminated.discard(trial)
    to_cache.discard(trial)
    cached.pop(trial.trial_id, None)
    return True
