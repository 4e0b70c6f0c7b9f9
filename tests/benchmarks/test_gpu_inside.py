"""Part 2 of the GPU check without Ray or a GPU: trials and trainings outside replaced by
fakes of known speeds, to check the ratios, the spread, a failed round and a round that no
longer fits the cap (the smoke run in test_gpu_check.py runs the real thing on the CPU)."""

import pytest

from benchmarks import gpu_inside
from benchmarks.gpu_sizes import SMOKE, Sizes


class _Work:
    def training_share(self) -> float:
        return 0.5

    def describe(self) -> str:
        return "training 50%"


def _fake_rounds(monkeypatch, fail_at: int):
    """Part 2 without Ray: trainings outside at 100, 102, 104... img/s and trials at 99 img/s,
    the trial of round ``fail_at`` (1-based) raising."""
    import datetime
    from types import SimpleNamespace

    clock = iter(range(1000))
    speeds = iter(range(100, 200, 2))

    def outside(*_args):
        start = next(clock)
        return {"train_images_per_s": float(next(speeds)), "start": start,
                "end": next(clock)}

    def inside(_sizes, _folder, _left, name, _hash):
        if name.endswith(str(fail_at - 1)):
            raise RuntimeError("the trial's worker died")
        start, end = (datetime.datetime.fromtimestamp(next(clock)) for _ in range(2))
        trial = SimpleNamespace(user_attrs={"train_images_per_s": 99.0},
                                datetime_start=start, datetime_complete=end)
        return SimpleNamespace(work=_Work()), trial

    monkeypatch.setattr(gpu_inside, "train_outside", outside)
    monkeypatch.setattr(gpu_inside, "_trial_inside", inside)


def test_a_failed_round_ends_part_2_with_the_rounds_before_it(monkeypatch, tmp_path):
    _fake_rounds(monkeypatch, fail_at=3)
    rows, raw = gpu_inside.search_against_outside(SMOKE.__class__(
        **{**SMOKE.__dict__, "trial_rounds": 3}), 600, tmp_path)
    assert raw["ratios"] == pytest.approx([99 / 101, 99 / 103])
    assert raw["ended"] == "round 3 failed: RuntimeError: the trial's worker died"
    by_measure = {row.measure: row for row in rows}
    ratio = next(row for row in rows if row.measure.startswith("inside / outside"))
    assert ratio.value == pytest.approx((99 / 101 + 99 / 103) / 2)
    assert ratio.note.endswith("; round 3 failed: RuntimeError: the trial's worker died")
    spread = by_measure["spread of the trainings outside the search (fastest / slowest)"]
    assert spread.value == pytest.approx(104 / 100) and spread.note == "3 trainings"


def test_a_training_outside_that_fails_ends_the_part_like_a_failed_trial(monkeypatch,
                                                                         tmp_path):
    _fake_rounds(monkeypatch, fail_at=99)
    trained = gpu_inside.train_outside
    calls = iter(range(10))

    def outside(*args):
        if next(calls) == 2:
            raise RuntimeError("CUDA error:\nout of memory")
        return trained(*args)

    monkeypatch.setattr(gpu_inside, "train_outside", outside)
    sizes = Sizes(**{**SMOKE.__dict__, "trial_rounds": 3})
    _, raw = gpu_inside.search_against_outside(sizes, 600, tmp_path)
    assert len(raw["ratios"]) == 1 and len(raw["outside"]) == 2
    assert raw["ended"] == "round 2 failed: RuntimeError: CUDA error: out of memory"


def test_a_failure_in_the_first_round_fails_the_part(monkeypatch, tmp_path):
    _fake_rounds(monkeypatch, fail_at=1)
    with pytest.raises(RuntimeError, match="worker died"):
        gpu_inside.search_against_outside(SMOKE, 600, tmp_path)


def test_a_round_that_no_longer_fits_the_cap_is_not_started(monkeypatch, tmp_path):
    _fake_rounds(monkeypatch, fail_at=99)
    ticks = iter([0.0, 0.0, 50.0, 60.0])  # deadline at 100 s; round 1 took 50 s
    monkeypatch.setattr(gpu_inside, "now", lambda: next(ticks))
    sizes = Sizes(**{**SMOKE.__dict__, "trial_rounds": 3})
    _, raw = gpu_inside.search_against_outside(sizes, 100, tmp_path)
    assert len(raw["ratios"]) == 1
    assert raw["ended"] == "round 2 not started: 40 s of the cap left"
