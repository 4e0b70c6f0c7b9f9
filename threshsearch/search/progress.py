"""The driver's progress output: one line per finished trial and a running tally, instead
of Ray's log flood."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial

from threshsearch.search.index import TrialIndex
from threshsearch.search.pareto import minimised, pareto_fronts
from threshsearch.search.reports import BASELINE
from threshsearch.search.space import SearchSpace
from threshsearch.search.storage import DUPLICATE


class Progress:
    """One line per finished trial and a running tally, instead of Ray's log flood."""

    def __init__(self, space: SearchSpace, quiet: bool = False):
        self.space = space
        self.quiet = quiet
        # The front of the completed trials seen so far, kept as they come (the index's
        # completed values from ``counted`` on): no read of the study after every trial.
        self.front = pareto_fronts(len(space.metric_names))
        self.counted = 0

    def trial(self, trial: FrozenTrial | optuna.Trial, status: str, summary: str,
              index: TrialIndex, running: int, warnings: list[str] = ()) -> None:
        if self.quiet:
            return
        baseline = trial.user_attrs.get(BASELINE)
        label = f"baseline {baseline}" if baseline else f"trial {trial.number:>3}"
        print(f"{label} {status:<10} {summary}", flush=bool(baseline))
        for warning in warnings:
            print(f"      warning: {warning}", flush=bool(baseline))
        if baseline:
            return  # a baseline is no trial of the study's: no tally
        tally = index.tally
        for _, values in index.completed[self.counted:]:
            self.front.add(minimised(values, self.space.directions))
        self.counted = len(index.completed)
        front = int((self.front.fronts == 0).sum())
        counts = " · ".join(f"{key} {tally.get(key, 0)}" for key in
                            ("complete", "pruned", "failed", "infeasible", DUPLICATE))
        done = index.counts().finished
        print(f"      [{done}/{self.space.study.n_trials}] {counts} (outside the budget) · "
              f"running {running} · front {front}", flush=True)


def metric_summary(values: dict[str, Any], names: list[str]) -> str:
    return "  ".join(f"{name} {values[name]:.4g}" for name in names if name in values)

