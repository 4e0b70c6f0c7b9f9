"""Profiling a device: time the operations a set of networks is made of, fit a cost line per
group (kind and resolution, and layout where the runtime has a rule), time a few dozen of the
networks whole, calibrate the table's sum against them, and estimate the result's error on
networks held out of the fit.

Why operations, timed cold: a network's top-level parts timed alone and summed gave only
0.55-0.86 of the network's latency on this project's 2-core machine, because a part timed in a
loop keeps its weights and activations in L2, where inside the network the other layers have
evicted them. Each operation is therefore timed cycling through copies of it (own weights,
own inputs) that together exceed the caches' ``COLD_BYTES``. The calibration then absorbs what
the sum still misses (the framework's per-call overhead, the traffic between operations).

Why a layout rule: ONNX Runtime runs a convolution in its blocked layout or not by the channels
it reads, with kernels up to 4x apart; the rule is probed first (``layout.probe_layout``) and
each convolution kind's table groups split by it, so that one cost line never has to fit both.

Why rounds: on a shared or virtual machine the speed of memory-bound work drifts for tens of
seconds at a time (this project's 2-core VM: one network's p10 went from 11 to 21 ms and back
within a minute, and to 180 ms in a worse spell, with nothing else running, while an L2-resident
matmul stayed within 5 %). Disturbance only ever slows a timing, so timings are taken in
``rounds`` passes, each in its own shuffled order, and each timing's fastest round counts. The
first pass takes every timing; a later one takes again the timings the fit of the earlier
ones finds suspiciously slow (``calibration.suspect_timings``: an operation above the line of
the others of its group, every operation of a group too small for such a line, a network
above the calibration), the call overhead, and a random tenth of all timings (five at least),
the sentinels, unless told to take all: on a steady machine that is a fraction of the timings
besides the sentinels, so the second round costs seconds rather than the first round's time
again, and on an unsteady one it is what the spells slowed. A timing taken once is wrong if
its spell slowed it no more than the suspects' margin, or slowed most of its group alike. A
spell over much of a round slows many timings alike, which no fit can see; if more than a
fifth of the sentinels the fit did not suspect ran more than the suspects' margin slower in
the rounds before, the round takes all the others too. The sentinels are a sample: on a
profile of 91 timings (the tests' fake one, 10 sentinels) a spell over a third or two thirds
of the first round left a timing slowed for 2 of 12 seeds; a real profile has a few hundred.
How far the rounds differed, and how many timings each took, is written into the file, so a
noisy profile says so.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Literal, get_args

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from threshsearch.config import ArchitectureConfig
from threshsearch.devicelock import LockSettings, device_key, device_lock
from threshsearch.devicemodel import calibration as fit
from threshsearch.devicemodel.fileformat import (
    Calibration,
    ChannelRange,
    Coverage,
    DeviceInfo,
    DeviceModelFile,
    HeldOutError,
    LayoutRule,
    ProfilingInfo,
    RuntimeInfo,
    Settings,
    TableGroup,
    TableSample,
)
from threshsearch.devicemodel.layout import probe_layout, table_group
from threshsearch.devicemodel.ops import Op, network_ops, op_module
from threshsearch.devicemodel.predictor import DeviceModel
from threshsearch.devicemodel.runtimes import DTYPES, Runtime, make_runtime
from threshsearch.devicemodel.timings import DeviceTimings, fastest_figures
from threshsearch.errors import UserError
from threshsearch.latency import Clock, LatencySettings, time_passes
from threshsearch.nn import build_model

COLD_BYTES = 8 * 2**20  # copies of an operation add up to this: past a server core's L2
MAX_COPIES = 32
OPERATION_TIMING = LatencySettings(min_passes=10, max_time_s=0.3, min_time_s=0.05,
                                   warmup_s=0.02)
NETWORK_TIMING = LatencySettings(min_passes=20, max_time_s=1.0, min_time_s=0.25)
SAMPLES_PER_GROUP = 8
FOLDS = 5
MIN_CALIBRATION_NETWORKS = 10  # two per calibration feature: fewer leave the fit undetermined
ROUNDS = 2
# What a round after the first takes again: the suspects (the default), or every timing.
LaterRounds = Literal["suspects", "all"]
LATER_ROUNDS: tuple[LaterRounds, ...] = get_args(LaterRounds)
SENTINEL_SHARE, MIN_SENTINELS = 0.1, 5  # timings a "suspects" round takes at random
SPELL_SHARE = 0.2  # sentinels the fit found no suspects, slower before than now: over this
# share, the round takes all


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The CPU's model, or the GPU's name."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()


def copies_for(op: Op, batch_size: int) -> int:
    """How many copies of ``op`` to cycle through so that each call finds a cold cache."""
    _, moved, weights = op.features()
    size = fit.BYTES * (moved * batch_size + weights)
    return max(1, min(MAX_COPIES, math.ceil(COLD_BYTES / max(size, 1))))


def evenly_spread(ops: Iterable[Op], count: int) -> list[Op]:
    """Up to ``count`` of ``ops``, from the cheapest to the costliest, evenly spaced."""
    ordered = sorted(ops, key=lambda op: (op.features(), op.in_channels, op.shape))
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(count, len(ordered))).round())
    return [ordered[int(index)] for index in picks]


def _check_settings(batch_size: int, input_size: int, threads: int, dtype: str) -> None:
    for name, value in (("batch_size", batch_size), ("input_size", input_size),
                        ("threads", threads)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name}: {value!r} is invalid; expected an integer >= 1")
    if dtype not in DTYPES:
        raise UserError(f"dtype: {dtype!r} is not supported; expected one of "
                        f"{', '.join(DTYPES)}")


def profile_device(configs: Iterable[ArchitectureConfig], *, runtime: str | Runtime = "torch",
                   batch_size: int = 1, input_size: int = 32, threads: int = 1,
                   dtype: str = "float32", channels_last: bool = True,
                   calibration_networks: int = 30, samples_per_group: int = SAMPLES_PER_GROUP,
                   rounds: int = ROUNDS, later_rounds: LaterRounds = LATER_ROUNDS[0],
                   progress: bool = True, clock: Clock = time.perf_counter,
                   seed: int = 0) -> DeviceModel:
    """Profile this machine's CPU for the networks ``configs``: ``time_device``, then
    ``fit_device_model`` under the layout rule the runtime showed. The calibration's error is
    estimated by ``FOLDS``-fold cross-validation over the networks timed whole."""
    timings = time_device(configs, runtime=runtime, batch_size=batch_size,
                          input_size=input_size, threads=threads, dtype=dtype,
                          channels_last=channels_last,
                          calibration_networks=calibration_networks,
                          samples_per_group=samples_per_group, rounds=rounds,
                          later_rounds=later_rounds, progress=progress, clock=clock,
                          seed=seed)
    return fit_device_model(timings, timings.layout)


def time_device(configs: Iterable[ArchitectureConfig], *, runtime: str | Runtime = "torch",
                batch_size: int = 1, input_size: int = 32, threads: int = 1,
                dtype: str = "float32", channels_last: bool = True,
                calibration_networks: int = 30, samples_per_group: int = SAMPLES_PER_GROUP,
                rounds: int = ROUNDS, later_rounds: LaterRounds = LATER_ROUNDS[0],
                progress: bool = True, clock: Clock = time.perf_counter, seed: int = 0,
                operation_timing: LatencySettings = OPERATION_TIMING,
                network_timing: LatencySettings = NETWORK_TIMING) -> DeviceTimings:
    """Time what a device model of the networks ``configs`` needs (e.g. draws from a search
    space and the presets: the model covers the operations they contain): up to
    ``samples_per_group`` operations of each table group under the runtime's layout rule,
    and ``calibration_networks`` of the networks, chosen with ``seed``, whole. Each timing is
    taken in up to ``rounds`` rounds, the first over all of them, a later one over those the
    fit of the rounds before finds suspect (``later_rounds="suspects"``) or over all of them
    again (``"all"``), and its fastest round kept; an operation's timing and a network's stop
    as ``operation_timing`` and ``network_timing`` say.
    ``runtime`` is a name or, for tests, a Runtime; ``clock`` is for tests. Holds the device
    lock exclusive for each timing."""
    _check_settings(batch_size, input_size, threads, dtype)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise UserError(f"rounds: {rounds!r} is invalid; expected an integer >= 1")
    if later_rounds not in LATER_ROUNDS:
        raise UserError(f"later_rounds: {later_rounds!r} is invalid; expected one of "
                        f"{', '.join(LATER_ROUNDS)}")
    networks = list({config.hash: config for config in configs}.values())
    least = MIN_CALIBRATION_NETWORKS
    if min(calibration_networks, len(networks)) < least:
        raise UserError(f"device-profile: {min(calibration_networks, len(networks))} "
                        f"networks to calibrate on; the calibration fits "
                        f"{len(fit.FEATURES)} coefficients and needs at least {least} "
                        f"distinct networks (--networks, and a space that has them)")
    if isinstance(runtime, str):
        runtime = make_runtime(runtime, threads, channels_last)
    started, began = datetime.now(UTC), clock()
    layout = probe_layout(runtime)
    groups: dict[str, set[Op]] = {}
    for config in networks:
        for op in network_ops(config, input_size):
            groups.setdefault(table_group(op, layout), set()).add(op)
    op_list = [op for ops in groups.values() for op in evenly_spread(ops, samples_per_group)]
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(networks), min(calibration_networks, len(networks)), replace=False)
    calibration = [networks[int(index)] for index in sorted(chosen)]

    previous_threads = torch.get_num_threads()
    timings: list[Callable[[], float]] = [lambda: call_overhead_ms(runtime, batch_size, clock)]
    timings += [lambda op=op: _time_op(runtime, op, batch_size, operation_timing, clock)
                for op in op_list]
    timings += [lambda config=config: _time_network(runtime, config, batch_size, input_size,
                                                    network_timing, clock)
                for config in calibration]
    bar = tqdm(total=rounds * len(timings), desc="device-profile", unit="timing",
               disable=not progress)
    lock = device_lock(device_key(runtime.device), LockSettings.from_env(os.environ))
    try:
        torch.set_num_threads(threads)
        by_round = np.full((rounds, len(timings)), np.nan)
        seconds_by_round = np.zeros((rounds, len(timings)))
        retaken_at_random = np.zeros(len(timings), dtype=bool)

        def take(round_index: int, indices: Iterable[int]) -> None:
            for index in indices:
                before = clock()  # its seconds: the lock's wait included
                # Exclusive for each timing, not for the whole profile: trials on the node
                # pause for one timing at a time, never long enough for their lock wait to
                # give up.
                with lock.exclusive():
                    by_round[round_index, index] = timings[index]()
                seconds_by_round[round_index, index] = clock() - before
                bar.update()

        take(0, rng.permutation(len(timings)))
        for round_index in range(1, rounds):
            if later_rounds == "all":
                take(round_index, rng.permutation(len(timings)))
                retaken_at_random[:] = True
                continue
            earlier = by_round[:round_index]
            overhead_ms, timed, measured_ms = fastest_figures(op_list, earlier)
            sentinels = np.zeros(len(timings), dtype=bool)
            sentinels[rng.choice(len(timings), min(len(timings), max(
                MIN_SENTINELS, math.ceil(SENTINEL_SHARE * len(timings)))), replace=False)] = True
            suspects = fit.suspect_timings(timed, overhead_ms, calibration, measured_ms,
                                           layout, input_size)
            first = sentinels | suspects
            bar.total -= int(np.count_nonzero(~first))
            bar.refresh()
            take(round_index, rng.permutation(np.flatnonzero(first)))
            retaken_at_random |= sentinels
            # A spell over much of the rounds before slowed many timings alike, which no fit
            # of them can see: the sentinels, a random few taken again, can; those the fit
            # found suspect are left out, as slow before by their choice.
            unsuspected = sentinels & ~suspects
            if unsuspected.any() and np.mean(
                    np.nanmin(earlier[:, unsuspected], axis=0)
                    > (1 + fit.SUSPECT_ABOVE) * by_round[round_index, unsuspected]
                    ) > SPELL_SHARE:
                bar.total += int(np.count_nonzero(~first))
                take(round_index, rng.permutation(np.flatnonzero(~first)))
                retaken_at_random[:] = True
    finally:
        torch.set_num_threads(previous_threads)
        bar.close()
    overhead_ms, timed, measured_ms = fastest_figures(op_list, by_round)
    return DeviceTimings(
        device=DeviceInfo(kind=runtime.device.type, name=device_name(runtime.device),
                          hostname=socket.gethostname(), logical_cores=os.cpu_count() or 1),
        runtime=RuntimeInfo(name=runtime.name, versions=runtime.versions()),
        settings=Settings(batch_size=batch_size, input_size=input_size, threads=threads,
                          dtype=dtype, channels_last=channels_last),
        layout=layout,
        operations=timed, calibration=calibration, measured_ms=measured_ms,
        call_overhead_ms=overhead_ms, by_round=by_round, seconds_by_round=seconds_by_round,
        retaken_at_random=retaken_at_random,
        started=started.isoformat(timespec="seconds"), seconds=round(clock() - began, 3),
        seed=seed)


def fit_device_model(timings: DeviceTimings, layout: LayoutRule | None) -> DeviceModel:
    """The device model fitted to ``timings`` with the table's groups split by ``layout``
    (the probed rule; None pools each group's layouts, as a runtime of one layout would)."""
    if layout is not None and layout != timings.layout:
        raise ValueError("fit_device_model: the layout must be the one the timings were "
                         "taken under, or None")
    input_size, seed = timings.settings.input_size, timings.seed
    timed, lines = fit.table_lines(timings.operations, layout)
    measured = timings.measured_ms
    features = fit.calibration_features(timings.calibration, input_size, lines, layout)
    folds = min(FOLDS, len(timings.calibration))
    held_out = fit.error_summary(
        fit.held_out_predictions(features, measured, folds, seed), measured)
    ops = [op for op, _ in timings.operations]
    data = DeviceModelFile(
        device=timings.device, runtime=timings.runtime, settings=timings.settings,
        covers=Coverage(
            kinds=sorted({op.kind for op in ops}),
            resolutions=sorted({op.resolution for op in ops}),
            groups={group: ChannelRange(
                in_channels=(min(op.in_channels for op, _ in pairs),
                             max(op.in_channels for op, _ in pairs)),
                out_channels=(min(op.out_channels for op, _ in pairs),
                              max(op.out_channels for op, _ in pairs)))
                for group, pairs in sorted(timed.items())}),
        layout=layout,
        table=[TableGroup(group=group, coefficients=[float(v) for v in lines[group]],
                          samples=[TableSample(in_channels=op.in_channels,
                                               out_channels=op.out_channels,
                                               shape=list(op.shape), ms=ms)
                                   for op, ms in timed[group]])
               for group in sorted(timed)],
        calibration=Calibration(form=fit.FORM, features=list(fit.FEATURES),
                                coefficients=fit.fit_calibration(features, measured),
                                networks=len(timings.calibration),
                                call_overhead_ms=timings.call_overhead_ms),
        held_out=HeldOutError(method=f"{folds}-fold cross-validation over the calibration "
                              "networks", **held_out),
        profiling=ProfilingInfo(started=timings.started, seconds=timings.seconds,
                                operations_timed=len(timings.operations),
                                networks_timed=len(timings.calibration), seed=seed,
                                rounds=len(timings.by_round),
                                timings_by_round=[int(count) for count in np.count_nonzero(
                                    ~np.isnan(timings.by_round), axis=1)],
                                round_spread_p90_pct=round(
                                    _round_spread_p90_pct(timings.by_round[
                                        :, timings.retaken_at_random]), 2)),
    )
    return DeviceModel(data)


def call_overhead_ms(runtime: Runtime, batch_size: int, clock: Clock) -> float:
    """What calling the runtime costs with nothing to compute (an identity on a one-channel
    map), cycled like the operations. Taken off every operation's time: a network pays it once,
    its operations timed apart would pay it each (ONNX Runtime's run() is tens of µs from
    Python, a large share of a small operation)."""
    run = runtime.prepare(nn.Identity(), [(batch_size, 1, 1, 1)], MAX_COPIES)
    return time_passes(run, OPERATION_TIMING, clock).p10_s * 1000


def _round_spread_p90_pct(by_round: np.ndarray) -> float:
    """How far apart the rounds of the same timings were: the p90 of their slowest round
    against their fastest, in % (0 for no timings)."""
    if not by_round.size:
        return 0.0
    spreads = np.nanmax(by_round, axis=0) / np.maximum(np.nanmin(by_round, axis=0), 1e-12) - 1
    return float(np.quantile(spreads, 0.9) * 100)


def _time_op(runtime: Runtime, op: Op, batch_size: int, settings: LatencySettings,
             clock: Clock) -> float:
    module, shapes = op_module(op)
    run = runtime.prepare(module, [(batch_size, *shape) for shape in shapes],
                          copies_for(op, batch_size))
    return time_passes(run, settings, clock).p10_s * 1000


def _time_network(runtime: Runtime, config: ArchitectureConfig, batch_size: int,
                  input_size: int, settings: LatencySettings, clock: Clock) -> float:
    run = runtime.prepare(build_model(config), [(batch_size, 3, input_size, input_size)], 1)
    return time_passes(run, settings, clock).p10_s * 1000
