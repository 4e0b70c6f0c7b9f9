"""A fake clock and a fake runtime: each call of a prepared module advances the clock by a
cost fixed by the module's parameters (0.2 ms + 0.1 µs per parameter), so that profiling is
deterministic and its result checkable; and the small networks timed on them."""

from collections.abc import Callable, Sequence

import torch

from tests.helpers import TINY
from threshsearch.config import ArchitectureConfig

LAUNCH_S = 2e-4
PER_PARAMETER_S = 1e-7
PLAIN_FACTOR = 4.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_cost_s(module) -> float:
    return LAUNCH_S + PER_PARAMETER_S * sum(p.numel() for p in module.parameters())


class FakeRuntime:
    name = "torch"
    device = torch.device("cpu")

    def __init__(self, clock: FakeClock):
        self.clock = clock

    def versions(self) -> dict[str, str]:
        return {"torch": "fake", "python": "fake"}

    def prepare(self, module, shapes: Sequence[tuple[int, ...]], copies: int):
        cost = fake_cost_s(module)

        def run() -> None:
            self.clock.now += cost
        return run

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        return None


class BlockedLayoutRuntime(FakeRuntime):
    """A fake runtime with a blocked layout for convolutions reading at most ``narrow``
    channels or a multiple of ``multiple`` (None: no multiple), its plain convolutions
    PLAIN_FACTOR times dearer."""

    name = "onnxruntime"

    def __init__(self, clock: FakeClock, narrow: int = 4, multiple: int | None = 4):
        super().__init__(clock)
        self.narrow, self.multiple = narrow, multiple

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        return self.blocks(in_channels)

    def blocks(self, in_channels: int) -> bool:
        return in_channels <= self.narrow or (
            self.multiple is not None and in_channels % self.multiple == 0)

    def prepare(self, module, shapes: Sequence[tuple[int, ...]], copies: int):
        """Convolutions in the plain layout cost PLAIN_FACTOR times their parameters'."""
        plain = sum(conv.weight.numel() for conv in module.modules()
                    if isinstance(conv, torch.nn.Conv2d) and not self.blocks(conv.in_channels))
        cost = fake_cost_s(module) + (PLAIN_FACTOR - 1) * PER_PARAMETER_S * plain

        def run() -> None:
            self.clock.now += cost
        return run


def small_networks(count: int = 16) -> list[ArchitectureConfig]:
    """Small networks, dense, harmonic and mixed (16 of them: 12 distinct)."""
    networks = []
    for index in range(count):
        depth, growth = 1 + (index // 3) % 3, (4, 8)[index // 9]
        stages = [{"depth": depth + stage, "growth": growth + 2 * stage} for stage in range(2)]
        networks.append(ArchitectureConfig.from_dict(
            TINY | {"stages": stages, "threshold": (0, 12, "inf")[index % 3]}))
    return networks


class SlowSpellRuntime(FakeRuntime):
    """A fake runtime on a machine that runs ``factor`` times slower for its first ``spell``
    prepared modules: a slow spell of a shared machine, over one profiling round."""

    def __init__(self, clock: FakeClock, spell: int, factor: float = 3.0):
        super().__init__(clock)
        self.spell, self.factor, self.prepared = spell, factor, 0

    def prepare(self, module, shapes: Sequence[tuple[int, ...]], copies: int):
        cost = fake_cost_s(module) * (self.factor if self.prepared < self.spell else 1.0)
        self.prepared += 1

        def run() -> None:
            self.clock.now += cost
        return run


def fake_timings(runtime: type[FakeRuntime] | Callable[[FakeClock], FakeRuntime] = FakeRuntime,
                 **settings):
    """``time_device`` of the small networks on a fresh fake clock and ``runtime`` (a class or
    a factory taking the clock), 10 of them timed whole, with ``settings``."""
    from threshsearch.devicemodel.profiling import time_device

    clock = FakeClock()
    return time_device(small_networks(), runtime=runtime(clock), clock=clock, progress=False,
                       calibration_networks=10, **settings)
