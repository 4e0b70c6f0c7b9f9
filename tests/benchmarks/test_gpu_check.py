"""The GPU check's structure, run with --smoke on the CPU: every part's rows, the table's
columns, finite numbers; the refusal without a GPU; a failing part's row. No timing is
asserted: the smoke sizes measure nothing about GPUs."""

import json
import math
import os

import pytest
import torch

from benchmarks import gpu_check
from benchmarks.gpu_check import Check, main
from tests.helpers import ensure_local_ray

pytestmark = pytest.mark.slow

PARTS = [1] * 5 + [2] * 5 + [3] * 2 + [4]  # the smoke times one latency setting


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run (in a folder of its own: the searches' Ray files land in studies/), on
    the tests' shared local Ray: its workers have PyTorch imported already."""
    ensure_local_ray()
    folder = tmp_path_factory.mktemp("gpu-check")
    here = os.getcwd()
    os.chdir(folder)
    try:
        check = main(["--smoke", "--out", str(folder / "check.json")])
    finally:
        os.chdir(here)
    return check, json.loads((folder / "check.json").read_text())


def test_every_part_reports_its_rows_with_finite_numbers(smoke):
    check, _ = smoke
    assert [row.part for row in check.rows] == PARTS
    for row in check.rows:
        assert row.value is not None and math.isfinite(row.value), row
        assert row.unit in ("img/s", "x", "share")
        if row.unit == "share":
            assert 0 <= row.value <= 1
    assert list(check.parts) == ["model throughput", "search against outside",
                                 "latency reproducibility"]
    assert check.smoke and check.device.startswith("cpu")


def test_the_json_holds_the_table_one_line_per_row_in_six_columns(smoke):
    check, saved = smoke
    assert [row["part"] for row in saved["rows"]] == PARTS
    lines = saved["table"].splitlines()
    assert "SMOKE" in lines[0]
    header = lines.index("| part | measure | value | unit | target / reference | note |")
    assert lines[header + 1] == "|---|---|---|---|---|---|"
    body = lines[header + 2:]
    assert len(body) == len(PARTS)
    for line, row in zip(body, check.rows, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 6
        assert int(cells[0]) == row.part and cells[1] == row.measure
        assert math.isfinite(float(cells[2]))
        assert cells[3] == {"share": "%"}.get(row.unit, row.unit)
    raw = saved["parts"]["search against outside"]["raw"]
    assert raw["busy_source"].startswith("smoke stand-in") and raw["busy_samples"]
    # The smoke's two trials alternate with three trainings outside; each trial's ratio is
    # against the two either side of it.
    assert len(raw["outside"]) == 3 and len(raw["trials"]) == len(raw["ratios"]) == 2
    outside = raw["outside"]
    for index, trial in enumerate(raw["trials"]):
        assert outside[index]["end"] <= trial["start"] <= trial["end"] <= (
            outside[index + 1]["start"]), "each trial runs between the two it is set against"
    assert raw["ended"] == ""
    speeds = [run["train_images_per_s"] for run in raw["outside"]]
    for index, (trial, ratio) in enumerate(zip(raw["trials"], raw["ratios"], strict=True)):
        around = (speeds[index] + speeds[index + 1]) / 2
        assert ratio == pytest.approx(trial["train_images_per_s"] / around)


def test_without_cuda_and_without_smoke_it_refuses_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as refused:
        main(["--out", str(tmp_path / "check.json")])
    message = str(refused.value.code)
    assert "\n" not in message and "--smoke" in message
    assert not (tmp_path / "check.json").exists()


def test_a_failing_part_leaves_a_row_saying_why_and_the_run_goes_on():
    check = Check("cpu", torch.__version__, smoke=True)

    def broken():
        raise RuntimeError("out of\nmemory")

    gpu_check._attempt(check, "search against outside", (2, 3), broken)
    assert [(row.part, row.value) for row in check.rows] == [(2, None), (3, None)]
    assert check.rows[0].note == "failed: RuntimeError: out of memory"
    assert check.parts["search against outside"]["raw"] == {
        "error": "RuntimeError: out of memory"}
    assert "| n/a |" in gpu_check.format_table(check)


def test_parts_runs_only_the_parts_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    check = main(["--smoke", "--parts", "throughput", "--out", str(tmp_path / "check.json")])
    assert list(check.parts) == ["model throughput"]
    assert {row.part for row in check.rows} == {1}
    saved = json.loads((tmp_path / "check.json").read_text())
    assert list(saved["parts"]) == ["model throughput"]
