"""The latency estimator, on a fake clock: what it reports under stalls, at its cap, and
after a fresh process's slow first passes."""

import random

import pytest
import torch
from torch import nn

from threshsearch.latency import LatencySettings, estimate_latency, time_passes


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Stalling(nn.Module):
    """A forward pass that costs ``cost`` seconds on the fake clock, and a random ``stall``
    more with probability ``chance`` (a neighbour taking the core)."""

    def __init__(self, clock: FakeClock, cost: float, chance: float = 0.0, stall: float = 0.0,
                 seed: int = 0):
        super().__init__()
        self.clock, self.cost, self.chance, self.stall = clock, cost, chance, stall
        self.random = random.Random(seed)
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.clock.now += self.cost * (1 + 0.01 * self.random.random())
        if self.random.random() < self.chance:
            self.clock.now += self.stall * self.random.random()
        return x


def test_stalls_do_not_move_the_estimate():
    clock = FakeClock()
    for seed in range(5):
        model = Stalling(clock, cost=0.002, chance=0.3, stall=0.02, seed=seed)
        estimate = estimate_latency(model, 8, "cpu", LatencySettings(), clock=clock)
        assert abs(estimate.latency_ms - 2.0) / 2.0 < 0.05, estimate
        assert estimate.stable and estimate.statistic == "p10"
        assert estimate.p10_ms <= estimate.median_ms <= estimate.p90_ms
        # The median is what stalls move: the reason the estimate is not the median.
        assert estimate.p90_ms > 2.5


def test_a_fast_network_is_timed_for_the_minimum_time_at_least():
    clock = FakeClock()
    estimate = estimate_latency(Stalling(clock, cost=0.0005), 8, "cpu",
                                LatencySettings(min_passes=20, min_time_s=0.25), clock=clock)
    assert estimate.stable and estimate.passes >= 500


def test_a_model_too_slow_for_the_cap_gets_the_passes_that_fit():
    clock = FakeClock()
    model = Stalling(clock, cost=1.5)
    estimate = estimate_latency(model, 8, "cpu", LatencySettings(max_time_s=2.0), clock=clock)
    assert not estimate.stable and 1 <= estimate.passes <= 2
    assert estimate.latency_ms > 1400


def test_the_record_says_how_it_was_measured(tiny_config):
    from threshsearch.nn import build_model

    model = build_model(tiny_config)
    model.train()
    estimate = estimate_latency(model, 16, "cpu",
                                LatencySettings(batch_size=2, min_passes=3, max_time_s=0.5,
                                                min_time_s=0.05))
    record = estimate.to_dict()
    for key in ("latency_ms", "statistic", "p10_ms", "median_ms", "p90_ms", "passes",
                "threads", "batch_size", "dtype", "device", "stable"):
        assert key in record, key
    assert record["batch_size"] == 2 and record["threads"] == torch.get_num_threads()
    assert model.training, "the model is left as it was found"


def test_any_callable_can_be_timed():
    clock = FakeClock()

    def run() -> None:
        clock.now += 0.001

    passes = time_passes(run, LatencySettings(min_passes=10, min_time_s=0.05), clock)
    assert passes.stable and len(passes.times) >= 50
    assert passes.p10_s == pytest.approx(0.001)


def test_the_slow_first_passes_of_a_fresh_process_are_warm_up_not_timed():
    """A CPU pass too: first calls pay for set-up and a clock ramping up; the warm-up goes on
    until the pass times settle, so none of those lands among the timed passes."""
    clock, calls = FakeClock(), []
    cost = 0.001

    def run() -> None:
        calls.append(None)
        clock.now += cost * (1 + 9 * 0.7 ** len(calls))  # 10x at first, fading

    passes = time_passes(run, LatencySettings(warmup_s=0.005), clock)
    assert max(passes.times) < 1.2 * cost
    assert len(calls) > len(passes.times)  # the warm-up's passes are not among them


def test_cuda_graph_on_the_cpu_times_eager_passes_and_the_record_says_so():
    clock = FakeClock()
    model = Stalling(clock, cost=0.001)
    estimate = estimate_latency(model, 8, "cpu",
                                LatencySettings(min_passes=5, max_time_s=0.2, min_time_s=0.05,
                                                cuda_graph=True), clock=clock)
    assert estimate.cuda_graph is False and estimate.to_dict()["cuda_graph"] is False
    assert estimate.latency_ms == pytest.approx(1.0, rel=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_on_a_gpu_replays_the_captured_network(tiny_config):
    from threshsearch.latency import GraphReplay
    from threshsearch.nn import build_model

    model = build_model(tiny_config).cuda().eval()
    estimate = estimate_latency(model, 16, "cuda",
                                LatencySettings(min_passes=5, max_time_s=0.5, min_time_s=0.05,
                                                cuda_graph=True))
    assert estimate.cuda_graph is True and estimate.latency_ms > 0
    x = torch.randn(2, 3, 16, 16, device="cuda")
    replay = GraphReplay(model, [x])
    with torch.no_grad():
        expected = model(replay.fresh[0])
    torch.testing.assert_close(replay(), expected)
