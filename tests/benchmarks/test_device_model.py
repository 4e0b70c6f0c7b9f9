"""The device-model benchmark: command lines that would measure nothing refused, the
first round of a profile as a one-round profile, each model's drift against its own profile."""

import sys

import pytest

from benchmarks import device_model


def _never(*args, **kwargs):
    raise AssertionError("the benchmark profiled instead of refusing its command line")


@pytest.mark.parametrize("argv, message", [
    (["--spaces", "--preset-sizes", "32"], "--preset-sizes 224"),
    (["--probes", "-1"], "--probes -1: expected 0 or more"),
    (["--first-round", "--rounds", "1"], "--first-round compares with a profile of --rounds 2"),
])
def test_a_command_line_that_would_measure_nothing_is_refused(monkeypatch, capsys, argv,
                                                               message):
    monkeypatch.setattr(sys, "argv", ["device_model.py", *argv])
    monkeypatch.setattr(device_model, "time_device", _never)
    with pytest.raises(SystemExit) as exit_info:
        device_model.main()
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_first_round_alone_is_what_a_profile_of_one_round_would_have_timed():
    from tests.devicemodel.fakes import SlowSpellRuntime, fake_timings

    steady = fake_timings(rounds=1)
    per_round = steady.by_round.shape[1]

    def spelled(clock):  # the first round runs 3x slower than the second
        return SlowSpellRuntime(clock, per_round)
    unlucky = fake_timings(spelled, rounds=1)
    both = fake_timings(spelled, rounds=2)
    first = device_model.first_round(both)
    assert first.by_round.shape == (1, per_round)
    assert first.seconds == pytest.approx(both.seconds / 2, abs=1e-3)  # an even share
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
    args = Namespace(reference_s=1.0, repeats=3)
    rows = device_model.evaluate(models, None, networks, 32, args, probes)
    assert rows[""]["drift_median"] == pytest.approx(1.0)
    assert rows[" (first round)"]["drift_median"] == pytest.approx(0.5)
    assert rows[""]["within_10pct"] == 1.0
