import socket
import subprocess
import sys

from threshsearch.search.trial import (
    COMPUTE_S,
    DONE,
    FAILED,
    INFEASIBLE,
    LATENCY,
    MEASURE_S,
    PAUSED_S,
    THROUGHPUT,
    evaluate_candidate,
    violated_constraint,
)
from threshsearch.train import Trainer


def test_a_trial_reports_every_epoch_and_marks_the_last(spec):
    reports = []
    evaluate_candidate(spec, reports.append)
    assert [report["epoch"] for report in reports] == [1, 2]
    assert DONE not in reports[0] and reports[1][DONE] is True
    last = reports[-1]
    for key in ("val_accuracy", "latency_ms", "memrw_mib", "params", "madd", "epoch_time_s",
                "train_images_per_s", COMPUTE_S):
        assert key in last, key
    assert last["params"] == 5934
    latency = last[LATENCY]
    assert latency["latency_ms"] == last["latency_ms"] and latency["statistic"] == "p10"
    assert latency["exclusive"] and latency["measurement"] == "search, device to itself"
    for key in ("p10_ms", "median_ms", "p90_ms", "passes", "threads", "batch_size", "dtype",
                "device", "lock_wait_s", MEASURE_S):
        assert key in latency, key
    # The first epoch is warm-up: the training speed counts the others, with its spread.
    assert last[THROUGHPUT]["epochs"] == [2]
    assert last["train_images_per_s"] == last[THROUGHPUT]["images_per_s_max"]
    assert last[PAUSED_S] >= 0


def test_a_trial_without_exclusive_measurement_says_so(spec):
    spec["measurement"]["exclusive"] = False
    spec["recipe"]["epochs"] = 1
    reports = []
    evaluate_candidate(spec, reports.append)
    assert reports[-1][LATENCY]["measurement"] == "search, shared device"
    assert reports[-1][THROUGHPUT]["epochs"] == [1], "one epoch: it is all there is"


def test_a_constraint_violation_is_reported_without_training(spec):
    spec["constraints"] = [{"metric": "params", "max": 1000, "min": None}]
    reports = []
    evaluate_candidate(spec, reports.append)
    assert len(reports) == 1
    assert reports[0][INFEASIBLE] == "params 5934 > max 1000"
    assert "val_accuracy" not in reports[0] and reports[0][DONE]


def test_divergence_is_reported_as_a_failure(spec, monkeypatch):
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self: "non-finite training loss")
    reports = []
    evaluate_candidate(spec, reports.append)
    assert len(reports) == 1
    assert reports[0][FAILED] == "non-finite training loss" and reports[0][DONE]


def test_violated_constraint_bounds():
    metrics = {"params": 10, "latency_ms": 2.0}
    assert violated_constraint([{"metric": "params", "max": 10}], metrics) is None
    assert violated_constraint([{"metric": "latency_ms", "min": 3}], metrics) == (
        "latency_ms 2 < min 3")


def test_out_of_memory_fails_the_trial_and_the_next_one_runs(spec, monkeypatch):
    import torch

    from threshsearch.search.trial import run_candidate

    real_fit = Trainer.fit

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(Trainer, "fit", exhausted)
    reports = []
    run_candidate(spec, reports.append)
    assert reports[-1][FAILED].startswith("OutOfMemoryError: CUDA out of memory")
    assert reports[-1][DONE]
    monkeypatch.setattr(Trainer, "fit", real_fit)
    reports = []
    run_candidate(spec, reports.append)
    assert FAILED not in reports[-1] and reports[-1][DONE]


def test_an_unbuildable_config_fails_with_its_reason(spec):
    from threshsearch.search.trial import run_candidate

    spec["architecture"]["stages"][0]["depth"] = 0
    reports = []
    run_candidate(spec, reports.append)
    assert "stages[0].depth: 0 is invalid" in reports[-1][FAILED]


def test_a_worker_imports_none_of_the_driver_modules():
    # Every Ray worker imports this module when it starts; Optuna and SQLAlchemy belong to
    # the driver and would only lengthen each worker's start-up.
    code = ("import sys, threshsearch.search.trial; "
            "print(sorted(m for m in ('optuna', 'sqlalchemy', 'plotly') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


def test_a_trial_takes_the_lock_folder_the_driver_passes(spec, tmp_path):
    spec["recipe"]["epochs"] = 1
    spec["lock_env"] = {"THRESHSEARCH_LOCK_DIR": str(tmp_path / "locks")}
    evaluate_candidate(spec, [].append)
    key = f"cpu-{socket.gethostname()}"  # one lock per node, even on a shared file system
    assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == [f"{key}.gate",
                                                                     f"{key}.lock"]


def test_only_a_device_other_trials_may_use_needs_the_lock():
    import torch

    from threshsearch.search.trial import shares_device

    assert shares_device(torch.device("cpu"), 0)
    assert shares_device(torch.device("cuda", 0), 0.5)  # trials share the GPU
    assert not shares_device(torch.device("cuda", 0), 1)  # Ray gave this trial the GPU
    assert not shares_device(torch.device("cuda", 0), 2)

