"""The confirmation's statistics: per network, test accuracy's mean, sd and 95 % t-interval;
per baseline, each confirmed network's outcome.

The outcome of a network against a baseline joins two answers:

- accuracy: the 95 % interval of the test-accuracy difference (Welch's t, unequal
  variances) lies above zero ("higher"), below zero ("lower"), or contains zero
  ("unresolved"). With one seed on either side, or no spread on both, there is no interval,
  and the accuracy is unresolved whatever the difference.
- cost, on each of the study's cost objectives: deterministic figures (params, madd,
  memrw_mib, ...) compare exactly, measured ones (latency_ms, epoch_time_s,
  train_images_per_s) by their mean over the seeds. The network is "cheaper" (no worse on
  every cost, better on one), "equal", "costlier" (no better on any, worse on one) or
  "mixed".

========== ========= ========= ========= =========
accuracy   cheaper   equal     costlier  mixed
========== ========= ========= ========= =========
higher     beats     beats     trade-off trade-off
unresolved indist.   indist.   loses     indist.
lower      trade-off loses     loses     trade-off
========== ========= ========= ========= =========

So a network "beats" a baseline only when it costs no more on any objective and its
accuracy gain is larger than its interval: a difference inside the interval is never a win.
It "loses" when the baseline is at least as accurate beyond doubt and no costlier, or costs
less at an accuracy the network does not beat. "indistinguishable" (indist.) says the seeds
cannot tell their accuracies apart; the cost ratios beside it say what the network saves.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial
from scipy import stats

from threshsearch.confirm.records import (
    NETWORK,
    TRIAL,
    completed_records,
    latest_protocol,
    load_confirm_study,
)
from threshsearch.search.objectives import METRICS
from threshsearch.search.reports import BASELINE

LEVEL = 0.95
ACCURACY = "test_accuracy"
ACCURACY_OBJECTIVES = ("val_accuracy", "val_top5")  # the search's; confirmed by test top-1
MEASURED = ("latency_ms", "epoch_time_s", "train_images_per_s")  # vary from seed to seed


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def to_list(self) -> list[float]:
        return [self.low, self.high]


def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval | None:
    """The t-interval of the mean of ``values``; None below two values or with no spread."""
    if len(values) < 2 or np.ptp(values) == 0:
        return None
    low, high = stats.ttest_1samp(values, 0.0).confidence_interval(level)
    return Interval(float(low), float(high))


def difference_interval(mine: Sequence[float], theirs: Sequence[float],
                        level: float = LEVEL) -> Interval | None:
    """Welch's t-interval of mean(mine) - mean(theirs); None when either side has one value
    or neither has any spread (then Welch's interval is undefined)."""
    if len(mine) < 2 or len(theirs) < 2 or (np.ptp(mine) == 0 and np.ptp(theirs) == 0):
        return None
    with warnings.catch_warnings():
        # One side without spread is fine for Welch (its variance term is zero), but scipy
        # warns of precision loss computing that zero.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(mine, theirs, equal_var=False)
    low, high = result.confidence_interval(level)
    return Interval(float(low), float(high))


@dataclass(frozen=True)
class Figure:
    """A cost figure over the seeds: exact when deterministic, else mean and range."""

    mean: float
    low: float
    high: float
    measured: bool

    def describe(self) -> str:
        if not self.measured or self.low == self.high:
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ({self.low:.4g}-{self.high:.4g})"


@dataclass(frozen=True)
class Summary:
    """One network's confirmed figures over its seeds."""

    network: str
    trial: int | None
    baseline: str | None
    seeds: list[int]
    accuracies: list[float]
    val_accuracies: list[float]
    costs: dict[str, Figure]

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def sd(self) -> float | None:
        return statistics.stdev(self.accuracies) if self.n > 1 else None

    @property
    def interval(self) -> Interval | None:
        return mean_interval(self.accuracies)

    def describe_accuracy(self) -> str:
        sd = f" ± {100 * self.sd:.2f}" if self.sd is not None else ""
        interval = self.interval
        span = (f", 95 % [{100 * interval.low:.2f}, {100 * interval.high:.2f}]" if interval
                else ", no interval (one seed)" if self.n == 1 else ", no spread")
        return f"{100 * self.mean:.2f}{sd} % over {self.n} seed{'s' * (self.n > 1)}{span}"

    def to_dict(self) -> dict[str, Any]:
        interval = self.interval
        return {"seeds": self.seeds, "test_accuracy": {
                    "mean": self.mean, "sd": self.sd, "n": self.n,
                    "ci95": interval.to_list() if interval else None,
                    "values": self.accuracies},
                "val_accuracy_mean": statistics.fmean(self.val_accuracies),
                "costs": {name: {"mean": f.mean, "min": f.low, "max": f.high,
                                 "measured": f.measured} for name, f in self.costs.items()}}


def summarise(records: Iterable[FrozenTrial]) -> dict[str, Summary]:
    """The records of one protocol, grouped by network (one value per seed: the latest)."""
    by_network: dict[str, dict[int, FrozenTrial]] = {}
    for record in sorted(records, key=lambda r: r.number):
        by_network.setdefault(record.user_attrs[NETWORK], {})[record.user_attrs["seed"]] = record
    summaries = {}
    for network, by_seed in by_network.items():
        chosen = [by_seed[seed] for seed in sorted(by_seed)]
        first = chosen[0].user_attrs
        costs = {}
        for metric in METRICS:
            values = [float(r.user_attrs[metric]) for r in chosen
                      if isinstance(r.user_attrs.get(metric), int | float)]
            if metric not in ACCURACY_OBJECTIVES and len(values) == len(chosen):
                costs[metric] = Figure(statistics.fmean(values), min(values), max(values),
                                       metric in MEASURED)
        summaries[network] = Summary(
            network, first.get(TRIAL), first.get(BASELINE), sorted(by_seed),
            [float(r.user_attrs[ACCURACY]) for r in chosen],
            [float(r.user_attrs.get("val_accuracy", math.nan)) for r in chosen], costs)
    return summaries


@dataclass(frozen=True)
class Comparison:
    """One confirmed network against one baseline."""

    network: str
    baseline: str
    outcome: str  # beats, loses, trade-off, indistinguishable
    accuracy: str  # higher, lower, unresolved
    cost: str  # cheaper, equal, costlier, mixed
    difference: float  # mean test accuracy, network minus baseline
    interval: Interval | None
    ratios: dict[str, float] = field(default_factory=dict)  # cost metric -> network / baseline

    def describe(self) -> str:
        span = (f" [{100 * self.interval.low:+.2f}, {100 * self.interval.high:+.2f}]"
                if self.interval else " (no interval)")
        costs = ", ".join(f"{ratio:.2f}x {metric}" for metric, ratio in self.ratios.items())
        return (f"{self.network} {self.outcome} {self.baseline}: "
                f"{100 * self.difference:+.2f} pt test accuracy{span}"
                + (f", {costs}" if costs else ""))


OUTCOMES = {
    ("higher", "cheaper"): "beats", ("higher", "equal"): "beats",
    ("higher", "costlier"): "trade-off", ("higher", "mixed"): "trade-off",
    ("unresolved", "cheaper"): "indistinguishable", ("unresolved", "equal"): "indistinguishable",
    ("unresolved", "costlier"): "loses", ("unresolved", "mixed"): "indistinguishable",
    ("lower", "cheaper"): "trade-off", ("lower", "equal"): "loses",
    ("lower", "costlier"): "loses", ("lower", "mixed"): "trade-off",
}


def _span(figure: Figure, sign: int) -> tuple[float, float]:
    ends = sign * figure.low, sign * figure.high
    return min(ends), max(ends)


def cost_relation(mine: Summary, theirs: Summary, metrics: Sequence[str]) -> str:
    """cheaper, equal, costlier or mixed on ``metrics`` (each in its natural direction). A
    measured cost (latency, epoch time) differs only where the seeds' ranges do not overlap:
    a gap smaller than its own noise decides nothing."""
    better = worse = False
    for metric in metrics:
        sign = 1 if METRICS[metric].direction == "minimize" else -1
        (a_low, a_high), (b_low, b_high) = (_span(mine.costs[metric], sign),
                                            _span(theirs.costs[metric], sign))
        if not mine.costs[metric].measured:
            a_low = a_high = sign * mine.costs[metric].mean
            b_low = b_high = sign * theirs.costs[metric].mean
        better |= a_high < b_low
        worse |= a_low > b_high
    return {(True, False): "cheaper", (False, False): "equal", (False, True): "costlier",
            (True, True): "mixed"}[(better, worse)]


def compare(mine: Summary, theirs: Summary, cost_metrics: Sequence[str]) -> Comparison:
    interval = difference_interval(mine.accuracies, theirs.accuracies)
    accuracy = ("unresolved" if interval is None or interval.low <= 0 <= interval.high
                else "higher" if interval.low > 0 else "lower")
    metrics = [m for m in cost_metrics if m in mine.costs and m in theirs.costs]
    cost = cost_relation(mine, theirs, metrics)
    ratios = {m: mine.costs[m].mean / theirs.costs[m].mean for m in metrics
              if theirs.costs[m].mean}
    return Comparison(mine.network, theirs.network, OUTCOMES[accuracy, cost], accuracy, cost,
                      mine.mean - theirs.mean, interval, ratios)


def cost_objectives(study: optuna.Study) -> list[str]:
    """The study's objectives other than accuracy: what a network must not cost more of."""
    return [name for name in study.metric_names or [] if name not in ACCURACY_OBJECTIVES]


@dataclass(frozen=True)
class Confirmation:
    """A study's latest confirmation: its protocol, each network's summary and the
    comparisons of the searched networks with the baselines."""

    protocol: dict[str, Any]
    summaries: dict[str, Summary]
    comparisons: list[Comparison]

    def of_trial(self, number: int) -> Summary | None:
        return next((s for s in self.summaries.values() if s.trial == number), None)

    def of_baseline(self, name: str) -> Summary | None:
        return next((s for s in self.summaries.values() if s.baseline == name), None)

    def document(self, summary: Summary | None) -> dict[str, Any] | None:
        """What an exported file carries of its network's confirmation: the protocol, the
        figures over the seeds and the comparisons it takes part in (None: unconfirmed)."""
        if summary is None:
            return None
        return {"protocol": self.protocol.get("description"), **summary.to_dict(),
                "comparisons": [{"network": c.network, "baseline": c.baseline,
                                 "outcome": c.outcome, "difference": c.difference,
                                 "ci95": c.interval.to_list() if c.interval else None,
                                 "cost_ratios": c.ratios}
                                for c in self.comparisons
                                if summary.network in (c.network, c.baseline)]}

    def lines(self) -> list[str]:
        """The verdict in words: each network's figures, then each baseline's outcomes."""
        lines = [f"confirmed ({self.protocol.get('description')}; test split):"]
        for summary in self.summaries.values():
            lines.append(f"  {summary.network:<14} {summary.describe_accuracy()}")
        if any(s.n < 2 for s in self.summaries.values()):
            lines.append("  with one seed there is no interval: no network can be said to "
                         "beat a baseline")
        for baseline in sorted({c.baseline for c in self.comparisons}):
            lines.append(f"against {baseline}:")
            lines += [f"  {c.describe()}" for c in self.comparisons if c.baseline == baseline]
        return lines


def verdict(summaries: dict[str, Summary], cost_metrics: Sequence[str]) -> list[Comparison]:
    """Every searched network against every baseline."""
    networks = [s for s in summaries.values() if s.baseline is None]
    baselines = [s for s in summaries.values() if s.baseline is not None]
    return [compare(mine, theirs, cost_metrics) for theirs in baselines for mine in networks]


def load_confirmation(study: optuna.Study) -> Confirmation | None:
    """The study's latest confirmation from the storage, if one has records."""
    confirm = load_confirm_study(study)
    protocol = latest_protocol(confirm) if confirm is not None else None
    if protocol is None:
        return None
    summaries = summarise(completed_records(confirm, protocol["key"]))
    if not summaries:
        return None
    ordered = dict(sorted(summaries.items(), key=lambda item: (
        item[1].baseline is not None, item[1].trial or 0, item[0])))
    return Confirmation(protocol, ordered, verdict(ordered, cost_objectives(study)))
