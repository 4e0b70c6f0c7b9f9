"""Profiling on a fake clock and a fake runtime: the table and the calibration are
deterministic, and recover the fake device's costs for networks held out of the fit; its
timings kept in part are what profiling would have made of the part."""

from dataclasses import replace

import pytest

from tests.devicemodel.fakes import (
    FakeClock,
    FakeRuntime,
    SlowSpellRuntime,
    fake_cost_s,
    fake_timings,
    small_networks,
)
from threshsearch.devicemodel import profile_device
from threshsearch.devicemodel.ops import network_ops
from threshsearch.devicemodel.profiling import copies_for
from threshsearch.errors import UserError
from threshsearch.nn import build_model


def _profile(networks, runtime=FakeRuntime, **settings):
    clock = FakeClock()
    return profile_device(networks, runtime=runtime(clock), clock=clock, progress=False,
                          calibration_networks=10, **settings)


def _timings_per_round(networks) -> int:
    model = _profile(networks, rounds=1)
    return 1 + model.data.profiling.operations_timed + model.data.profiling.networks_timed


def _table_ms(model) -> list[float]:
    return [sample.ms for group in model.data.table for sample in group.samples]


def test_a_slow_spell_over_one_round_leaves_the_model_as_a_steady_machine_makes_it():
    networks = small_networks()
    steady = _profile(networks, rounds=1)
    spell = _timings_per_round(networks)  # the whole first round runs 3x slower

    def spelled(clock):
        return SlowSpellRuntime(clock, spell)
    model = _profile(networks, runtime=spelled, rounds=2)
    # Equal but for the fake clock's rounding (it sums costs from another starting time).
    assert _table_ms(model) == pytest.approx(_table_ms(steady), rel=1e-6)
    assert model.data.calibration.coefficients == pytest.approx(
        steady.data.calibration.coefficients, rel=1e-4, abs=1e-9)
    assert model.data.profiling.rounds == 2
    assert model.data.profiling.timings_by_round == [spell, spell]  # the sentinels saw it
    assert model.data.profiling.round_spread_p90_pct == pytest.approx(200.0)
    assert "differed by up to 200 % between profiling rounds" in model.steadiness_warning()
    assert "\n" not in model.summary()
    assert steady.data.profiling.round_spread_p90_pct == 0.0
    assert steady.steadiness_warning() == ""
    unlucky = _profile(networks, runtime=spelled, rounds=1)
    assert _table_ms(unlucky) != pytest.approx(_table_ms(steady), rel=0.5)


def test_rounds_must_be_a_positive_integer():
    with pytest.raises(UserError, match="rounds: 0 is invalid; expected an integer >= 1"):
        _profile(small_networks(), rounds=0)


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


def test_timings_stop_as_their_settings_say():
    from dataclasses import replace

    from threshsearch.devicemodel.profiling import NETWORK_TIMING, OPERATION_TIMING

    def halved(settings):
        return replace(settings, min_time_s=settings.min_time_s / 2,
                       max_time_s=settings.max_time_s / 2)
    full = fake_timings()
    half = fake_timings(operation_timing=halved(OPERATION_TIMING),
                        network_timing=halved(NETWORK_TIMING))
    # The fake device's passes all take the same time: every estimate settles at its floor
    # (the warm-ups, not halved, keep the ratio above one half).
    assert half.seconds < 0.7 * full.seconds
    assert [ms for _, ms in half.operations] == pytest.approx(
        [ms for _, ms in full.operations], rel=1e-6)
    assert half.measured_ms == pytest.approx(full.measured_ms, rel=1e-6)


def test_timings_kept_whole_are_the_timings_and_fewer_are_taken_from_the_kept_rounds():
    import numpy as np

    per_round = fake_timings(rounds=1).by_round.shape[1]
    # The first round runs 3x slower than the second: its figures are not the fastest.
    timings = fake_timings(lambda clock: SlowSpellRuntime(clock, per_round), rounds=2)
    count, networks = len(timings.operations), len(timings.calibration)
    whole = timings.kept(2, range(count), networks)
    assert whole.operations == timings.operations and whole.seconds == timings.seconds
    assert np.array_equal(whole.measured_ms, timings.measured_ms)
    assert np.array_equal(whole.seconds_by_round, timings.seconds_by_round)
    fewer = timings.kept(1, [0, count - 1], 3)
    first = timings.by_round[0]
    assert fewer.call_overhead_ms == first[0] != timings.call_overhead_ms
    assert [op for op, _ in fewer.operations] == [timings.operations[0][0],
                                                  timings.operations[-1][0]]
    assert [ms for _, ms in fewer.operations] == pytest.approx(
        [max(0.0, first[column] - first[0]) for column in (1, count)])
    assert fewer.calibration == timings.calibration[:3]
    assert fewer.measured_ms == pytest.approx(first[1 + count:4 + count])
    assert fewer.measured_ms != pytest.approx(timings.measured_ms[:3], rel=0.5)
    assert fewer.seconds == pytest.approx(
        timings.seconds - timings.seconds_by_round.sum()
        + timings.seconds_by_round[0, [0, 1, count, *range(1 + count, 4 + count)]].sum(),
        abs=1e-3)
    with pytest.raises(ValueError, match="11 networks asked, the profile timed 10"):
        timings.kept(2, [], 11)


def _taken(timings):
    import numpy as np

    return list(np.count_nonzero(~np.isnan(timings.by_round), axis=1))


def test_on_a_steady_machine_a_second_round_takes_the_overhead_small_groups_and_sentinels():
    import math

    import numpy as np

    from threshsearch.devicemodel.calibration import SMALL_GROUP
    from threshsearch.devicemodel.layout import table_group
    from threshsearch.devicemodel.profiling import MIN_SENTINELS, SENTINEL_SHARE

    suspects, everything = fake_timings(rounds=2), fake_timings(rounds=2, later_rounds="all")
    per_round = everything.by_round.shape[1]
    sentinels = max(MIN_SENTINELS, math.ceil(SENTINEL_SHARE * per_round))
    assert _taken(everything) == [per_round, per_round]
    assert _taken(suspects)[0] == per_round
    assert np.count_nonzero(suspects.retaken_at_random) == sentinels
    groups = [table_group(op, suspects.layout) for op, _ in suspects.operations]
    small = [groups.count(group) <= SMALL_GROUP for group in groups]
    # The fake device fits its lines: besides the sentinels, the call overhead and every
    # operation of a group too small to judge it by the others.
    expected = suspects.retaken_at_random | np.array(
        [True, *small, *[False] * len(suspects.calibration)])
    assert 0 < sum(small) < len(small)
    assert list(~np.isnan(suspects.by_round[1])) == list(expected)
    assert suspects.seconds < 0.8 * everything.seconds
    assert [op for op, _ in suspects.operations] == [op for op, _ in everything.operations]
    assert [ms for _, ms in suspects.operations] == pytest.approx(
        [ms for _, ms in everything.operations])
    assert suspects.measured_ms == pytest.approx(everything.measured_ms)


def test_a_short_spell_is_taken_again_as_suspects_without_a_whole_round():
    networks = small_networks()
    steady = _profile(networks, rounds=1)
    model = _profile(networks, runtime=lambda clock: SlowSpellRuntime(clock, 4), rounds=2)
    assert _table_ms(model) == pytest.approx(_table_ms(steady), rel=1e-6)
    assert model.data.calibration.coefficients == pytest.approx(  # the robust fit's own stop
        steady.data.calibration.coefficients, rel=1e-3, abs=1e-9)
    first, second = model.data.profiling.timings_by_round
    assert first == _timings_per_round(networks) and second < first / 2


@pytest.mark.parametrize("seed", range(4))
def test_a_spell_over_much_of_a_round_sends_the_next_round_to_every_timing(seed):
    networks = small_networks()
    per_round = _timings_per_round(networks)
    # Nine tenths of the first round slowed alike: lines through the slowed others find few
    # suspects, the sentinels do (a spell over a third of so small a round can escape them).
    model = _profile(networks, runtime=lambda clock: SlowSpellRuntime(clock, 9 * per_round // 10),
                     rounds=2, seed=seed)
    assert model.data.profiling.timings_by_round == [per_round, per_round]
    assert _table_ms(model) == pytest.approx(_table_ms(_profile(networks, rounds=1, seed=seed)),
                                             rel=1e-6)


def test_the_rounds_spread_is_read_from_the_timings_taken_again_at_random():

    from threshsearch.devicemodel.profiling import fit_device_model

    timings = fake_timings(rounds=2)
    by_round = timings.by_round.copy()
    # Every timing not a sentinel taken again, a third faster than before (suspects whose
    # first round a spell slowed); the sentinels as steady as the fake machine.
    suspects = ~timings.retaken_at_random
    by_round[1, suspects] = by_round[0, suspects] / 1.5
    spread = fit_device_model(replace(timings, by_round=by_round), timings.layout
                              ).data.profiling.round_spread_p90_pct
    assert spread == pytest.approx(0.0, abs=1e-6)  # over every timing: 50 %


def test_later_rounds_must_be_named():
    with pytest.raises(UserError, match="later_rounds: 'some' is invalid; expected one of "
                                        "suspects, all"):
        _profile(small_networks(), later_rounds="some")
