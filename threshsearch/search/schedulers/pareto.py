"""Asynchronous successive halving that ranks trials on every objective of the study, as a
Ray Tune scheduler.

Rungs sit at grace x eta^k epochs (below the last epoch). When a trial reports a rung's epoch
it is ranked among every trial recorded at that rung by non-dominated sorting over the
objectives (accuracy at that epoch, and the cost metrics priced before training), then by
crowding distance inside its front, and goes on only if fewer than ceil(n / eta) rank
strictly before it. The rung keeps its points in their fronts as they come, so a decision
costs O(n m), not a sort of the whole rung. A cheap network that nothing beats on both
accuracy and cost is never cut for learning slowly, which accuracy-only ASHA does. With one
objective this is ASHA itself.

A baseline (a paper's model trained beside the search) is never stopped nor recorded.

Decisions are asynchronous (no trial waits for a rung to fill), so any number of trials may
run at once, on one machine or a cluster: Ray Tune calls the scheduler in the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from threshsearch.search.evidence import RungRecord, objective_vector
from threshsearch.search.pareto import pareto_fronts
from threshsearch.search.reports import BASELINE
from threshsearch.search.schedulers.fifo import LiveFIFOScheduler


def rung_milestones(grace_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs where decisions are made: grace x eta^k, below the last epoch."""
    milestones, epoch = [], grace_epochs
    while epoch < max_epochs:
        milestones.append(epoch)
        epoch *= reduction_factor
    return milestones


class ParetoSuccessiveHalving(LiveFIFOScheduler):
    """See the module docstring. ``evidence`` seeds the rungs (a resumed study's records);
    ``stop_reasons`` maps each stopped Ray trial id to why, in words."""

    def __init__(self, metrics: Sequence[str], directions: Sequence[str], max_epochs: int,
                 grace_epochs: int, reduction_factor: int,
                 evidence: Iterable[RungRecord] = (), label: str = "pareto") -> None:
        super().__init__()
        self.metrics, self.directions = list(metrics), list(directions)
        self.reduction_factor = reduction_factor
        self.label = label
        milestones = rung_milestones(grace_epochs, reduction_factor, max_epochs)
        # Per rung: who is recorded there (one decision each), and their points by front.
        self.rungs: dict[int, set[str]] = {epoch: set() for epoch in milestones}
        self.fronts = {epoch: pareto_fronts(len(self.metrics)) for epoch in milestones}
        for record in evidence:
            if record.epoch in self.rungs and record.key not in self.rungs[record.epoch]:
                self.rungs[record.epoch].add(record.key)
                self.fronts[record.epoch].add(record.values)
        self.stop_reasons: dict[str, str] = {}

    def decide(self, key: str, epoch: int, values: tuple[float, ...] | None) -> str:
        """CONTINUE or STOP for the trial ``key`` reporting ``values`` at ``epoch``."""
        recorded = self.rungs.get(epoch)
        if values is None or recorded is None or key in recorded:
            return TrialScheduler.CONTINUE
        rank = self.fronts[epoch].rank(values, self.reduction_factor)
        self.fronts[epoch].add(values)
        recorded.add(key)
        if rank.continues:
            return TrialScheduler.CONTINUE
        self.stop_reasons[key] = (
            f"stopped by {self.label} at the epoch-{epoch} rung: front {rank.front + 1}, "
            f"{rank.ahead} of {rank.recorded} trials ranked ahead, {rank.kept} go on")
        return TrialScheduler.STOP

    def _decide_result(self, trial: Trial, result: dict) -> str:
        epoch = result.get("epoch")
        if not isinstance(epoch, int) or result.get(BASELINE):
            return TrialScheduler.CONTINUE
        return self.decide(trial.trial_id, epoch,
                           objective_vector(result, self.metrics, self.directions))

    def on_trial_result(self, tune_controller, trial: Trial, result: dict) -> str:
        return self._decide_result(trial, result)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        # A result Tune buffered past the last decision still counts as evidence.
        if result:
            self._decide_result(trial, result)

    def debug_string(self) -> str:
        return f"{self.label}: " + ", ".join(
            f"epoch {epoch}: {len(recorded)} recorded" for epoch, recorded in self.rungs.items())
