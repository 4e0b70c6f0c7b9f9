"""The confirmation's statistics: intervals on known samples, and the verdict's outcomes on
synthetic summaries whose truth is known."""

import math

import numpy as np
import pytest
from scipy import stats

from threshsearch.confirm.verdict import (
    Confirmation,
    Figure,
    Summary,
    compare,
    difference_interval,
    mean_interval,
    verdict,
)


def summary(name, accuracies, latency=1.0, memrw=1.0, baseline=False):
    return Summary(name, None if baseline else 1, name if baseline else None,
                   list(range(len(accuracies))), list(accuracies), list(accuracies),
                   {"latency_ms": Figure(latency, latency * 0.9, latency * 1.1, True),
                    "memrw_mib": Figure(memrw, memrw, memrw, False)})


COSTS = ["latency_ms", "memrw_mib"]


def test_mean_interval_on_a_known_sample():
    # mean 2, sd 1, n 3: 2 +- t(0.975, 2) / sqrt(3), t(0.975, 2) = 4.302653 (tables)
    interval = mean_interval([1.0, 2.0, 3.0])
    half = 4.302653 / math.sqrt(3)
    assert interval.low == pytest.approx(2 - half, abs=1e-5)
    assert interval.high == pytest.approx(2 + half, abs=1e-5)


def test_welch_interval_on_a_known_sample():
    mine, theirs = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    va, vb = np.var(mine, ddof=1) / 3, np.var(theirs, ddof=1) / 4
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3)  # Welch-Satterthwaite: 4.96
    assert df == pytest.approx(4.959, abs=1e-3)
    half = stats.t.ppf(0.975, df) * math.sqrt(va + vb)
    interval = difference_interval(mine, theirs)
    assert interval.low == pytest.approx(-3.5 - half)
    assert interval.high == pytest.approx(-3.5 + half)


def test_no_interval_from_one_seed_or_no_spread():
    assert mean_interval([0.9]) is None
    assert mean_interval([0.9, 0.9, 0.9]) is None
    assert difference_interval([0.99], [0.10, 0.11]) is None
    assert difference_interval([0.9, 0.9], [0.8, 0.8]) is None
    # one side without spread: Welch's interval still exists
    assert difference_interval([0.9, 0.9], [0.8, 0.85]) is not None


def test_beats_only_beyond_the_interval_and_at_no_extra_cost():
    baseline = summary("base", [0.80, 0.81, 0.82], latency=10, memrw=50, baseline=True)
    clear = compare(summary("net", [0.95, 0.96, 0.97], latency=2, memrw=5), baseline, COSTS)
    assert (clear.outcome, clear.accuracy, clear.cost) == ("beats", "higher", "cheaper")
    assert clear.interval.low > 0
    assert clear.ratios == {"latency_ms": pytest.approx(0.2), "memrw_mib": pytest.approx(0.1)}
    # a higher mean whose interval contains zero is not a win, however cheap
    noisy = compare(summary("net", [0.95, 0.75, 0.88], latency=2, memrw=5), baseline, COSTS)
    assert noisy.difference > 0
    assert noisy.interval.low < 0 < noisy.interval.high
    assert noisy.outcome == "indistinguishable"


def test_loses_and_trade_off():
    baseline = summary("base", [0.90, 0.91, 0.92], latency=10, memrw=50, baseline=True)
    worse = compare(summary("net", [0.70, 0.71, 0.72], latency=12, memrw=50), baseline, COSTS)
    assert worse.outcome == "loses"
    # as accurate as far as the seeds can tell, but costlier: the baseline is the better buy
    costlier = compare(summary("net", [0.91, 0.90, 0.92], latency=12, memrw=60), baseline,
                       COSTS)
    assert (costlier.accuracy, costlier.outcome) == ("unresolved", "loses")
    cheaper_worse = compare(summary("net", [0.70, 0.71, 0.72], latency=1, memrw=5), baseline,
                            COSTS)
    assert cheaper_worse.outcome == "trade-off"
    better_costlier = compare(summary("net", [0.97, 0.98, 0.99], latency=20, memrw=5),
                              baseline, COSTS)
    assert (better_costlier.cost, better_costlier.outcome) == ("mixed", "trade-off")


def test_one_seed_never_beats_and_says_why():
    baseline = summary("base", [0.10], latency=10, memrw=50, baseline=True)
    network = summary("trial 1", [0.99], latency=1, memrw=1)
    comparisons = verdict({"trial 1": network, "base": baseline}, COSTS)
    assert [c.outcome for c in comparisons] == ["indistinguishable"]
    lines = Confirmation({"description": "test"}, {"trial 1": network, "base": baseline},
                         comparisons).lines()
    assert any("no interval" in line for line in lines)
    assert any("one seed there is no interval" in line for line in lines)


def test_equal_networks_are_rarely_called_a_win():
    """Two networks of the same true accuracy, 3 seeds each: "beats" must come out about as
    often as a one-sided 2.5 % error, and never with the difference inside its interval."""
    rng = np.random.default_rng(0)
    baseline_costs = {"latency_ms": 10, "memrw_mib": 50}
    wins = 0
    for _ in range(2000):
        mine = summary("net", rng.normal(0.9, 0.01, 3), latency=1, memrw=5)
        theirs = summary("base", rng.normal(0.9, 0.01, 3), baseline=True, **{
            "latency": baseline_costs["latency_ms"], "memrw": baseline_costs["memrw_mib"]})
        comparison = compare(mine, theirs, COSTS)
        if comparison.outcome == "beats":
            wins += 1
            assert comparison.interval.low > 0
            assert comparison.difference > comparison.interval.high - comparison.difference
    assert wins / 2000 < 0.04


def test_a_latency_gap_inside_the_seeds_noise_decides_nothing():
    baseline = summary("base", [0.90, 0.91, 0.92], latency=1.00, baseline=True)
    noisy = summary("noisy", [0.90, 0.91, 0.92], latency=1.02)  # ranges overlap
    assert compare(noisy, baseline, ["latency_ms", "memrw_mib"]).cost == "equal"
    assert compare(noisy, baseline, ["latency_ms", "memrw_mib"]).outcome == "indistinguishable"
    slower = summary("slower", [0.90, 0.91, 0.92], latency=1.5)  # ranges apart
    assert compare(slower, baseline, ["latency_ms", "memrw_mib"]).cost == "costlier"
