"""The stopping rules' replay: both rules read the same passes on a fake clock, the candidate
stops at the first pass past min_time_s where the estimate held, and the replay says when a
trace is too short."""

import numpy as np
import pytest

from benchmarks.latency_stopping import Replay, replayed
from threshsearch.latency import LatencySettings, _warm_up

SETTINGS = LatencySettings()


def _steady(ms: float, seconds: float = 3.0, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    count = int(seconds / (ms / 1000))
    return list(ms / 1000 * (1 + 0.01 * rng.random(count)))


def test_on_steady_passes_the_candidate_stops_at_min_time_with_the_same_estimate():
    passes = _steady(1.0)
    shipped, shipped_s = replayed("shipped", passes, SETTINGS)
    candidate, candidate_s = replayed("at-min-time", passes, SETTINGS)
    assert candidate == pytest.approx(shipped, rel=0.01)
    assert candidate == pytest.approx(1.0, rel=0.02)
    # The shipped rounds run to 320 passes (0.32 s); the candidate stops just past 0.25 s.
    assert SETTINGS.min_time_s <= candidate_s - _warm_up_seconds(passes) < 0.26
    assert shipped_s - _warm_up_seconds(passes) >= 0.32


def _warm_up_seconds(passes: list[float]) -> float:
    """The seconds the estimator's warm-up takes of ``passes`` (replayed)."""
    replay = Replay(passes)
    _warm_up(replay, lambda: None, SETTINGS, replay.clock)
    return replay.now


def test_a_slow_spell_at_the_start_is_settled_in_by_the_candidate_not_by_the_shipped_rule():
    passes = _steady(2.0, seconds=0.3) + _steady(1.3, seed=1)
    shipped, _ = replayed("shipped", passes, SETTINGS)
    candidate, _ = replayed("at-min-time", passes, SETTINGS)
    assert candidate > 1.9  # inside the spell: both halves were slow
    assert shipped == pytest.approx(1.3, rel=0.05)


def test_a_trace_too_short_for_the_rule_says_so():
    with pytest.raises(IndexError, match="--seconds"):
        replayed("shipped", _steady(1.0, seconds=0.1), SETTINGS)
