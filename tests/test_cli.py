import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY
from threshsearch.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_profile_json_has_the_documented_keys(capsys):
    code, out, _ = run_cli(capsys, "profile", "--preset", "threshnet79", "--input-size", "224",
                           "--num-classes", "1000", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["params"] == 15_323_248 and isinstance(data["params"], int)
    assert round(data["madd"] / 1e9, 2) == 6.90
    assert round(data["flops"] / 1e9, 2) == 3.46
    assert round(data["memrw_mib"], 2) == 299.96
    assert data["cio"] > 0
    assert len(data["config_hash"]) == 16


def test_profile_torchvision_model_equals_the_preset(capsys):
    _, out, _ = run_cli(capsys, "profile", "--model", "torchvision:densenet121", "--json")
    _, preset_out, _ = run_cli(capsys, "profile", "--preset", "densenet121", "--json")
    theirs, ours = json.loads(out), json.loads(preset_out)
    for key in ("params", "madd", "flops", "memrw_mib", "cio"):
        assert theirs[key] == pytest.approx(ours[key]), key
    assert "config_hash" not in theirs


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "torchvision:densenet121", "--input-size", "8"],
     "--input-size: torchvision:densenet121 cannot run on 8x8 images (Given input size"),
    (["--model", "torchvision:resnet18", "--num-classes", "0"],
     "--num-classes: 0 is invalid; expected an integer >= 1"),
    (["--preset", "threshnet79", "--input-size", "-3"],
     "--input-size: -3 is invalid; expected an integer >= 1"),
])
def test_profile_refuses_sizes_a_model_cannot_have_in_one_line(capsys, argv, message):
    code, out, err = run_cli(capsys, "profile", *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"threshsearch profile: error: {message}")


@pytest.mark.parametrize(("argv", "message"), [
    (["bench", "--repeats", "0"], "--repeats: 0 is invalid; expected an integer >= 1"),
    (["bench", "--train-batch", "0"], "--train-batch: 0 is invalid; expected an integer >= 1"),
    (["trials", "--space", "search_spaces/quickstart.yaml", "--study", "x"],
     "--study: goes with --storage"),
])
def test_flags_out_of_range_or_of_no_use_are_refused_before_any_work(capsys, argv, message):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_profile_human_table_and_per_layer(capsys):
    code, out, _ = run_cli(capsys, "profile", "--preset", "hardnet68", "--input-size", "32",
                           "--per-layer")
    assert code == 0
    assert "parameters" in out and "MemR+W" in out and "Conv2d" in out


def test_profile_config_file(capsys, tmp_path):
    from threshsearch.presets import get_preset

    path = get_preset("threshnet95").save(tmp_path / "net.json")
    _, out, _ = run_cli(capsys, "profile", "--config", str(path), "--json")
    assert json.loads(out)["params"] == 17_140_592


def test_presets_lists_modes(capsys):
    code, out, _ = run_cli(capsys, "presets")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("threshnet79"))
    assert "dense dense dense harmonic harmonic" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("stages:\n  - {depth: 0, growth: 8}\n", "stages[0].depth"),
        ("stages:\n  - {depth: 2, growth: 8}\nthreshhold: 3\n", "did you mean 'threshold'"),
        ("stages: [{depth: 2, growth: 8}]\nstem: {widths: [16], stride: 9}\n", "stem.stride"),
        ("stages: [\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_invalid_config_is_one_line_and_exit_2(capsys, tmp_path, content, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code, _, err = run_cli(capsys, "profile", "--config", str(path))
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_input_too_small_and_unknown_preset(capsys):
    code, _, err = run_cli(capsys, "profile", "--preset", "threshnet79", "--input-size", "8")
    assert code == 2 and "input_size: 8" in err
    code, _, err = run_cli(capsys, "profile", "--preset", "threshnet97")
    assert code == 2 and "threshnet79" in err


def test_console_script_exit_code_without_traceback(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"\xff\xfe not utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "threshsearch.cli", "profile", "--config", str(path)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr and "Traceback" not in result.stderr


def write_tiny(tmp_path):
    from threshsearch.config import ArchitectureConfig

    return ArchitectureConfig.from_dict(TINY).save(tmp_path / "tiny.yaml")


def test_train_writes_metrics_csv_and_checkpoint(capsys, tmp_path):
    config = write_tiny(tmp_path)
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--config", str(config), "--dataset", "synthetic",
                              "--epochs", "2", "--lr", "0.01", "--out", str(out), "--quiet")
    assert code == 0, stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "completed" and len(metrics["epochs"]) == 2
    assert 0 <= metrics["test_accuracy"] <= 1
    assert metrics["recipe"]["lr"] == 0.01 and metrics["dataset"] == "synthetic"
    assert metrics["extra"]["latency"]["batch_size"] == 1
    assert (out / "epochs.csv").read_text().count("\n") == 3
    assert (out / "checkpoint.pt").exists() and (out / "config.yaml").exists()
    assert "test top-1" in stdout
    code, _, err = run_cli(capsys, "train", "--config", str(config), "--dataset", "synthetic",
                           "--epochs", "2", "--out", str(out), "--quiet")
    assert code == 2 and "--resume" in err


def test_train_without_dataset_files_is_a_clear_error(capsys, tmp_path):
    # In this process: the console script's exit code is main's (see the test above).
    code, _, err = run_cli(capsys, "train", "--preset", "threshnet79", "--dataset", "cifar10",
                           "--data-root", str(tmp_path / "empty"), "--epochs", "1")
    assert code == 2
    assert "cifar10: not found under" in err and "cifar-10-batches-py" in err
    assert "Traceback" not in err


def test_killed_training_resumes_from_the_last_saved_epoch(capsys, tmp_path):
    import os
    import signal
    import time

    config = write_tiny(tmp_path)
    out = tmp_path / "run"
    command = [sys.executable, "-m", "threshsearch.cli", "train", "--config", str(config),
               "--dataset", "synthetic", "--epochs", "4", "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csv_path = out / "epochs.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if csv_path.exists() and csv_path.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    before = csv_path.read_text().splitlines()[1:]
    assert 1 <= len(before) < 4, "the run must be killed mid-training"
    # The killed run needs a process of its own; the resume reads only what it left on disk.
    code, _, err = run_cli(capsys, *command[3:], "--resume")
    assert code == 0, err
    after = csv_path.read_text().splitlines()[1:]
    assert len(after) == 4
    assert after[:len(before)] == before


def test_train_of_an_exported_result_uses_its_studys_folder_and_test_split(capsys,
                                                                           tmp_path):
    import yaml

    from tests.test_folders import make_classes

    make_classes(tmp_path / "images", per_class=10)
    document = yaml.safe_load(Path("tests/fixtures/exported/trial-0000.yaml").read_text())
    document["data"] |= {"dataset": "folder", "root": str(tmp_path / "images"),
                         "test_fraction": 0.2, "num_classes": 2}
    result = tmp_path / "result.yaml"
    result.write_text(yaml.safe_dump(document))
    code, _, err = run_cli(capsys, "train", "--config", str(result), "--epochs", "1",
                           "--out", str(tmp_path / "run"), "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dataset"] == "folder"
    assert metrics["test_split"].startswith("held out: 0.2 of each class")


def test_train_refuses_a_test_fraction_it_cannot_use(capsys):
    from threshsearch.cli import main

    code = main(["train", "--preset", "threshnet79", "--dataset", "synthetic",
                 "--test-fraction", "0.2", "--epochs", "1"])
    assert code == 2
    assert capsys.readouterr().err.strip().endswith(
        "--test-fraction: 0.2 is invalid; expected 0 <= F < 0.5 with --dataset folder, else 0")


def test_train_on_a_folder_records_where_its_test_split_came_from(capsys, tmp_path):
    from tests.test_folders import make_classes

    make_classes(tmp_path / "images", per_class=10)
    config = write_tiny(tmp_path)
    for fraction, out in (("0", tmp_path / "a"), ("0.2", tmp_path / "b")):
        code, stdout, _ = run_cli(capsys, "train", "--config", str(config), "--dataset",
                                  "folder", "--data-root", str(tmp_path / "images"),
                                  "--test-fraction", fraction, "--epochs", "1",
                                  "--out", str(out), "--quiet")
        assert code == 0, stdout
    first = json.loads((tmp_path / "a" / "metrics.json").read_text())
    second = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert first["test_is_validation"] and first["test_split"].startswith("the validation split")
    assert not second["test_is_validation"] and second["test_split"].startswith("held out: 0.2")
    assert "(test split: held out: 0.2 of each class" in stdout
