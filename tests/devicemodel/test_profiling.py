"""Profiling on a fake clock and a fake runtime: the table and the calibration are
deterministic, and recover the fake device's costs for networks held out of the fit."""

import pytest

from tests.devicemodel.fakes import FakeClock, FakeRuntime, fake_cost_s, small_networks
from threshsearch.devicemodel import profile_device
from threshsearch.devicemodel.ops import network_ops
from threshsearch.devicemodel.profiling import copies_for
from threshsearch.errors import UserError
from threshsearch.nn import build_model


def _profile(networks, **settings):
    clock = FakeClock()
    return profile_device(networks, runtime=FakeRuntime(clock), clock=clock, progress=False,
                          calibration_networks=10, **settings)


def test_the_table_and_calibration_are_deterministic():
    first, second = _profile(small_networks()), _profile(small_networks())
    assert first.data.table == second.data.table
    assert first.data.calibration == second.data.calibration
    assert first.data.held_out == second.data.held_out
    assert first.data.profiling.seconds == second.data.profiling.seconds


def test_the_model_predicts_networks_it_never_timed_whole():
    networks = small_networks(18)
    model = _profile(networks[:16])
    assert model.data.held_out.within_10pct == 1.0
    assert model.data.calibration.networks == 10
    seen = {config.hash for config in networks[:16]}
    unseen = [config for config in networks[16:] if config.hash not in seen]
    assert unseen
    for config in unseen:
        truth_ms = fake_cost_s(build_model(config)) * 1000
        assert model.predict_ms(config) == pytest.approx(truth_ms, rel=0.10)


def test_the_file_says_what_it_covers_and_how_it_was_made():
    model = _profile(small_networks(), batch_size=2, threads=1)
    data = model.data
    assert data.settings.batch_size == 2 and data.runtime.name == "torch"
    assert data.covers.resolutions == sorted({int(g.group.split("@")[1]) for g in data.table})
    assert set(data.covers.groups) == {group.group for group in data.table}
    assert data.profiling.networks_timed == 10
    assert data.profiling.operations_timed == sum(len(g.samples) for g in data.table)


def test_too_few_networks_or_bad_settings_are_refused():
    with pytest.raises(UserError, match=r"1 networks to calibrate on; .* needs at least 10"):
        _profile(small_networks(1) * 3)
    with pytest.raises(UserError, match=r"\d networks to calibrate on"):
        _profile(small_networks(9))
    with pytest.raises(UserError, match="dtype: 'float16' is not supported"):
        _profile(small_networks(), dtype="float16")
    with pytest.raises(UserError, match="threads: 0 is invalid"):
        _profile(small_networks(), threads=0)


def test_small_operations_are_cycled_through_copies_and_large_ones_are_not():
    ops = [op for config in small_networks(3) for op in network_ops(config, 32)]
    assert all(copies_for(op, 1) > 1 for op in ops)  # tiny: each far below the caches
    big = max(ops, key=lambda op: op.features()[1])
    assert copies_for(big, 100_000) == 1
