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


def test_a_space_asking_for_cuda_graphs_times_eager_passes_on_the_cpu_and_says_so(spec):
    from threshsearch.search.sections import Measurement

    spec["measurement"] = Measurement(min_passes=5, max_time_s=0.5, min_time_s=0.05,
                                      cuda_graph=True).for_trials()
    spec["recipe"]["epochs"] = 1
    reports = []
    evaluate_candidate(spec, reports.append)
    assert reports[-1][LATENCY]["cuda_graph"] is False
    assert reports[-1][LATENCY]["latency_ms"] > 0


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



class RecordingLock:
    """A device lock that only records how it is held: the state any work runs under."""

    def __init__(self) -> None:
        self.state = "free"
        self.paused_s = self.waited_s = 0.0
        self.notices: list[str] = []

    def _holding(self, state: str):
        from contextlib import contextmanager

        @contextmanager
        def held():
            assert self.state == "free", f"{state} taken while {self.state}"
            self.state = state
            try:
                yield
            finally:
                self.state = "free"
        return held()

    def shared(self):
        return self._holding("shared")

    def exclusive(self):
        return self._holding("exclusive")


def test_a_trial_holds_the_device_for_all_its_work_and_lets_go_only_to_wait(spec,
                                                                          monkeypatch):
    """A neighbour's measurement (exclusive) then never overlaps any of this trial's device
    work: fetching data, pricing, building, making batches, steps, evaluation."""
    import importlib

    from threshsearch.search import trial

    train = importlib.import_module("threshsearch.train")  # the package's `train` is a function
    lock, events = RecordingLock(), []
    monkeypatch.setattr(trial, "device_lock", lambda key, settings: lock)

    def recorded(name, function):
        def wrapper(*args, **kwargs):
            events.append((name, lock.state))
            return function(*args, **kwargs)
        return wrapper

    def build(config):
        model = trial_build_model(config)
        model.register_forward_pre_hook(lambda *_: events.append(("forward", lock.state)))
        return model

    def batches(*args):
        for batch in train_batches(*args):
            events.append(("batch", lock.state))  # made by the generator, on the device
            yield batch

    trial_build_model, train_batches = trial.build_model, train.batches
    monkeypatch.setattr(trial, "build_model", recorded("build", build))
    monkeypatch.setattr(trial, "_dataset", recorded("data", trial._dataset))
    monkeypatch.setattr(trial, "profiled_metrics", recorded("pricing", trial.profiled_metrics))
    monkeypatch.setattr(trial, "estimate_latency", recorded("measure", trial.estimate_latency))
    monkeypatch.setattr(train, "make_optimizer", recorded("trainer", train.make_optimizer))
    monkeypatch.setattr(train, "batches", batches)
    monkeypatch.setattr(train, "evaluate", recorded("evaluate", train.evaluate))
    evaluate_candidate(spec, lambda metrics: events.append(("report", lock.state)))
    kinds = {name for name, _ in events}
    assert kinds == {"data", "pricing", "build", "measure", "trainer", "batch", "forward",
                     "evaluate", "report"}
    measuring = [state for name, state in events if name == "measure"]
    assert measuring == ["exclusive"]
    assert {state for name, state in events if name == "report"} == {"free"}
    outside = [(name, state) for name, state in events
               if name not in ("measure", "report") and state != "shared"]
    # the measurement's own passes run under its exclusive hold
    assert all(name == "forward" and state == "exclusive" for name, state in outside)
