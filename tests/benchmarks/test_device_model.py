"""The device-model benchmark: command lines that would measure nothing refused, the
first round of a profile as a one-round profile, a smaller profile from the same timings,
each model's drift against its own profile."""

import sys

import numpy as np
import pytest

from benchmarks import device_model


def _never(*args, **kwargs):
    raise AssertionError("the benchmark profiled instead of refusing its command line")


@pytest.mark.parametrize("argv, message", [
    (["--spaces", "--preset-sizes", "32"], "--preset-sizes 224"),
    (["--probes", "-1"], "--probes -1: expected 0 or more"),
    (["--first-round", "--rounds", "1"], "--first-round compares with a profile of --rounds 2"),
    (["--smaller", "8", "4"], "--smaller 8 4: expected from 10"),
    (["--smaller", "41", "4"], "to 40 (--calibration) networks"),
    (["--smaller", "20", "0"], "--smaller 20 0: expected 1 or more operations"),
])
def test_a_command_line_that_would_measure_nothing_is_refused(monkeypatch, capsys, argv,
                                                               message):
    monkeypatch.setattr(sys, "argv", ["device_model.py", *argv])
    monkeypatch.setattr(device_model, "time_device", _never)
    with pytest.raises(SystemExit) as exit_info:
        device_model.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


class _SlowProbe:
    """A fake runtime whose layout probe takes 10 ms a convolution: profiling seconds that
    no timing takes."""

    def blocked_layout(self, in_channels: int, kernel: int) -> bool | None:
        self.clock.now += 0.01
        return None


def test_the_first_round_alone_is_what_a_profile_of_one_round_would_have_timed():
    from tests.devicemodel.fakes import SlowSpellRuntime, fake_timings

    steady = fake_timings(rounds=1)
    per_round = steady.by_round.shape[1]

    class Spelled(_SlowProbe, SlowSpellRuntime):
        pass

    def spelled(clock):  # the first round runs 3x slower than the second
        return Spelled(clock, per_round)
    unlucky = fake_timings(spelled, rounds=1)
    both = fake_timings(spelled, rounds=2)
    first = device_model.first_round(both)
    assert first.by_round.shape == (1, per_round)
    assert first.seconds == pytest.approx(unlucky.seconds, abs=1e-3)
    assert first.seconds != pytest.approx(both.seconds / 2, abs=1e-3)
    assert first.call_overhead_ms == pytest.approx(unlucky.call_overhead_ms, rel=1e-6)
    assert [ms for _, ms in first.operations] == pytest.approx(
        [ms for _, ms in unlucky.operations], rel=1e-6)
    assert first.measured_ms == pytest.approx(unlucky.measured_ms, rel=1e-6)
    assert first.measured_ms != pytest.approx(steady.measured_ms, rel=0.5)


def test_each_model_s_drift_is_against_its_own_profile(monkeypatch):
    from argparse import Namespace

    import numpy as np

    from tests.devicemodel.fakes import small_networks

    networks, probes = small_networks()[:4], small_networks()[4:6]
    # Reference rounds: the networks at 1 ms, the two probes at 2 and 4 ms.
    monkeypatch.setattr(device_model, "reference_rounds",
                        lambda *args, **kwargs: np.tile([1.0] * 4 + [2.0, 4.0], (3, 1)))

    class Flat:
        def predict_ms(self, config):
            return 1.0
    models = {"": device_model.Profiled(Flat(), 10.0, np.array([2.0, 4.0])),
              " (first round)": device_model.Profiled(Flat(), 5.0, np.array([4.0, 8.0]))}
    args = Namespace(reference_s=1.0, repeats=3, batch_size=1)
    rows = device_model.evaluate(models, None, networks, 32, args, probes)
    assert rows[""]["drift_median"] == pytest.approx(1.0)
    assert rows[" (first round)"]["drift_median"] == pytest.approx(0.5)
    assert rows[""]["within_10pct"] == 1.0


def test_a_smaller_profile_keeps_the_first_networks_and_a_spread_of_each_group():
    from tests.devicemodel.fakes import FakeRuntime, fake_timings
    from threshsearch.devicemodel.layout import table_group
    from threshsearch.devicemodel.profiling import fit_device_model

    class Probing(_SlowProbe, FakeRuntime):
        pass

    timings = fake_timings(Probing, samples_per_group=4)
    fewer = device_model.smaller(timings, 6, 2)
    groups = {table_group(op, timings.layout) for op, _ in timings.operations}
    kept = {}
    for op, _ in fewer.operations:
        kept.setdefault(table_group(op, fewer.layout), []).append(op)
    assert set(kept) == groups and all(1 <= len(ops) <= 2 for ops in kept.values())
    assert len(fewer.operations) < len(timings.operations)
    assert set(fewer.operations) <= set(timings.operations)  # with the profile's figures
    assert fewer.calibration == timings.calibration[:6]
    assert list(fewer.measured_ms) == list(timings.measured_ms[:6])
    # Each round's columns are the kept timings': the call overhead, operations, networks
    # (NaN where a later round did not take a timing again).
    fastest = np.nanmin(fewer.by_round, axis=0)
    count = len(fewer.operations)
    assert fastest[0] == fewer.call_overhead_ms
    assert fastest[1:1 + count] - fastest[0] == pytest.approx([ms for _, ms in fewer.operations])
    assert fastest[1 + count:] == pytest.approx(fewer.measured_ms)
    # Its seconds: the profile's, less the seconds of the timings it dropped.
    kept_columns = [0, *(1 + timings.operations.index(pair) for pair in fewer.operations),
                    *range(1 + len(timings.operations), 1 + len(timings.operations) + 6)]
    dropped = [column for column in range(timings.by_round.shape[1])
               if column not in kept_columns]
    assert fewer.seconds == pytest.approx(
        timings.seconds - timings.seconds_by_round[:, dropped].sum(), abs=1e-3)
    assert fit_device_model(fewer, fewer.layout).data.calibration.networks == 6
    with pytest.raises(ValueError, match="11 networks asked, the profile timed 10"):
        device_model.smaller(timings, 11, 2)
