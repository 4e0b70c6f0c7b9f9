"""The driver's samples in the scale benchmark, streamed to a file as they are taken and
summarised from it as from the run (a run cut short included, a file from before the probe
read without it): the pace probe's CPU left out of the driver's and given beside it, the
model's asks counted."""

from types import SimpleNamespace

import pytest

from benchmarks import driver_samples
from benchmarks.driver_samples import DriverMeter, driver_lines, summarise_samples
from threshsearch.search.samplers.fitonce import FittedOnceTPE
from threshsearch.search.schedulers.pareto import ParetoSuccessiveHalving
from threshsearch.search.searcher import StudySearcher


def searcher_with(finished: int) -> SimpleNamespace:
    return SimpleNamespace(index=SimpleNamespace(counts=lambda: SimpleNamespace(
        finished=finished)))


def metered_run(tmp_path, monkeypatch, trials: int, window: int,
                during=lambda finished: None, probe_s=lambda probe: 0.0,
                asks=lambda finished: 0) -> DriverMeter:
    """A meter installed around stand-ins for the searcher's, scheduler's and model's
    methods, through ``trials`` trial ends with two rung decisions each, each trial 10 ms of
    driver CPU more than the one before, and ``asks(finished)`` asks of the model; the pace
    probe's ``probe``-th run takes ``probe_s(probe)`` CPU seconds (counted in the process's
    CPU too); ``during`` is called after each trial end, inside the run."""
    spent = {"probes": 0, "probe_s": 0.0}

    def probe() -> float:
        spent["probes"] += 1
        took = probe_s(spent["probes"])
        spent["probe_s"] += took
        return took

    now = {"finished": 0}
    monkeypatch.setattr(driver_samples.time, "process_time", lambda: 0.005 * now["finished"] * (
        now["finished"] + 1) + spent["probe_s"])
    monkeypatch.setattr(driver_samples, "pace_probe", probe)
    monkeypatch.setattr(StudySearcher, "on_trial_complete", lambda self, *args: None)
    monkeypatch.setattr(ParetoSuccessiveHalving, "decide", lambda self, *args: "CONTINUE")
    monkeypatch.setattr(FittedOnceTPE, "sample_relative", lambda self, *args: {})
    meter = DriverMeter(tmp_path / "driver.csv", trials, window)
    with meter.installed():
        for finished in range(1, trials + 1):
            for _ in range(asks(finished)):
                FittedOnceTPE.sample_relative(None)
            ParetoSuccessiveHalving.decide(None, "t", 1, ())
            ParetoSuccessiveHalving.decide(None, "t", 2, ())
            now["finished"] = finished
            StudySearcher.on_trial_complete(searcher_with(finished), "t")
            during(finished)
    return meter


def test_the_streamed_samples_give_the_runs_own_figures(tmp_path, monkeypatch):
    meter = metered_run(tmp_path, monkeypatch, 30, 10)
    assert len(meter.samples) == 30 and len(meter.decisions) == 60
    lines = summarise_samples(tmp_path / "driver.csv")
    assert lines[0].startswith("30 of 30 trials ended")
    assert lines[3:] == driver_lines(meter.samples, 10, 30, meter.decision_line(), None)
    # Trial k took 10 k ms: trials 11-20 155 ms on average, 21-30 255 ms.
    assert lines[3:6] == ["| driver CPU per trial, trials 11-20 | 155.0 ms |",
                          "| driver CPU per trial, trials 21-30 | 255.0 ms |",
                          "| ratio, last window / early window | 1.65x |"]
    assert "| 60, mean" in lines[6] and "0 over 50 ms" in lines[6]


def test_each_sample_is_in_the_file_as_soon_as_it_is_taken(tmp_path, monkeypatch):
    seen = []
    metered_run(tmp_path, monkeypatch, 6, 2, lambda finished: seen.append(
        len((tmp_path / "driver.csv").read_text().splitlines()) - 2))
    assert seen == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("cut", [",", ",1", ""])
def test_a_run_cut_short_leaves_the_samples_it_took(tmp_path, monkeypatch, cut):
    metered_run(tmp_path, monkeypatch, 12, 4)
    log = tmp_path / "driver.csv"
    # Killed while writing its next line: cut after a comma, inside a field, or after the
    # first field; every whole line before it is read.
    log.write_text(log.read_text() + "13,0.91,500.0,26,0.1" + cut)
    lines = summarise_samples(log)
    assert lines[0].startswith("12 of 12 trials ended")
    assert lines[3] == "| driver CPU per trial, trials 5-8 | 65.0 ms |"
    assert "| 24, mean" in lines[6]


def test_another_file_is_refused_with_the_expected_form(tmp_path):
    other = tmp_path / "other.csv"
    for text in ("a,b\n1,2\n", "# trials=3 window=1\na,b\n", ""):
        other.write_text(text)
        with pytest.raises(SystemExit, match="trials_ended,cpu_s"):
            summarise_samples(other)


def test_the_probe_is_left_out_of_the_driver_and_gives_the_machine_s_pace(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(driver_samples, "PROBE_EVERY", 2)
    # A machine slowing down: the k-th probe takes k + 2 ms; the model asked 2 times a trial
    # up to the 20th, 3 after.
    meter = metered_run(tmp_path, monkeypatch, 30, 10,
                        probe_s=lambda probe: (probe + 2) / 1000,
                        asks=lambda finished: 2 if finished <= 20 else 3)
    lines = summarise_samples(tmp_path / "driver.csv")
    assert lines[3:] == driver_lines(meter.samples, 10, 30, meter.decision_line(), None)
    assert lines[3:5] == ["| driver CPU per trial, trials 11-20 | 155.0 ms |",
                          "| driver CPU per trial, trials 21-30 | 255.0 ms |"]
    # Probes 6-10 in the first window (10 ms on average), 11-15 in the last (15 ms).
    assert lines[6] == ("| the pace probe's CPU, early / last window | 10.00 / 15.00 ms "
                        "(1.50x: the machine's pace) |")
    assert lines[7].endswith(f"| {255 / 155 / 1.5:.2f}x |")
    assert lines[8] == "| the sampler's model asked a trial, early / last window | 2.00 / 3.00 |"


def test_a_file_from_before_the_probe_is_read_without_it(tmp_path, monkeypatch):
    metered_run(tmp_path, monkeypatch, 30, 10)
    log = tmp_path / "driver.csv"
    rows = log.read_text().splitlines()
    earlier = [rows[0], ",".join(driver_samples.EARLIER_COLUMNS),
               *(",".join(row.split(",")[:7]) for row in rows[2:])]
    log.write_text("\n".join(earlier) + "\n")
    lines = summarise_samples(log)
    assert lines[3:6] == ["| driver CPU per trial, trials 11-20 | 155.0 ms |",
                          "| driver CPU per trial, trials 21-30 | 255.0 ms |",
                          "| ratio, last window / early window | 1.65x |"]
    assert "pace probe" not in "\n".join(lines)


def test_the_meter_leaves_the_methods_as_it_found_them(tmp_path):
    # The model's method is inherited (from Optuna's TPESampler): inherited again after.
    classes = (StudySearcher, ParetoSuccessiveHalving, FittedOnceTPE)
    before = [dict(vars(cls)) for cls in classes]
    with DriverMeter(tmp_path / "driver.csv", 1, 1).installed():
        assert "sample_relative" in vars(FittedOnceTPE)
        assert vars(StudySearcher)["on_trial_complete"] is not before[0]["on_trial_complete"]
    assert [dict(vars(cls)) for cls in classes] == before
