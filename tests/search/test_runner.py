"""End-to-end searches on a real (local) Ray: small spaces on synthetic data."""

import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from tests.helpers import ensure_local_ray
from tests.search.helpers import (
    budget_used,
    cli,
    cli_env,
    trial_rows,
    wait_for,
    write_space,
)
from threshsearch.search.objectives import METRICS
from threshsearch.search.runner import with_overrides
from threshsearch.search.space import load_space
from threshsearch.search.storage import load_study, retried_numbers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    ensure_local_ray()
    from threshsearch.search.runner import run_search

    folder = tmp_path_factory.mktemp("study")
    # A study folder of its own (studies/<name>/ under the cwd), emptied first: other
    # modules' searches, in parallel, use the tiny space's name.
    shutil.rmtree(Path("studies") / "runner", ignore_errors=True)
    path = write_space(folder, name="runner")
    data = yaml.safe_load(path.read_text())
    # A bound no trial meets makes the trials measure latency (and the front re-timed).
    data["constraints"].append({"metric": "latency_ms", "max": 1e6})
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    summary = run_search(space, quiet=True)
    return space, summary


def statuses(study: optuna.Study) -> Counter:
    return Counter(trial.user_attrs.get("status") for trial in study.trials)


def test_every_trial_ends_in_the_state_it_earned(finished_study):
    study = finished_study[1].study
    assert budget_used(study.trials) == 8 == finished_study[1].trials
    assert finished_study[1].repeats == len(study.trials) - 8
    assert study.metric_names == ["val_accuracy", "memrw_mib"]
    counts = statuses(study)
    assert counts["complete"] >= 1 and counts["pruned"] >= 1 and counts["infeasible"] >= 1
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    for trial in study.trials:
        status = trial.user_attrs["status"]
        if status == "complete":
            assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs"] == 3
            for metric in METRICS:  # all but a prediction: this space has no device model
                assert (metric in trial.user_attrs) == (metric != "predicted_latency_ms"), \
                    metric
            assert trial.values == [trial.user_attrs["val_accuracy"],
                                    trial.user_attrs["memrw_mib"]]
            assert len(trial.user_attrs["config_hash"]) == 16
            assert trial.user_attrs["versions"]["torch"], "Ray flattens nested results"
            assert trial.constraints["params_max"] <= 0
            latency = trial.user_attrs["latency"]
            assert latency["statistic"] == "p10" and latency["exclusive"]
            assert latency["latency_ms"] == trial.user_attrs["latency_ms"]
            assert trial.user_attrs["throughput"]["epochs"] == [2, 3]
        elif status == "pruned":
            assert trial.state == TrialState.PRUNED and trial.values is None
            assert trial.user_attrs["epochs"] < 3
            assert trial.user_attrs["stopped_at_epoch"] == trial.user_attrs["epochs"]
            assert trial.user_attrs["reason"].startswith("stopped by asha on val_accuracy")
        elif status == "infeasible":
            # PRUNED, not FAIL: samplers read PRUNED trials' constraint values and learn
            # where the infeasible region lies.
            assert trial.state == TrialState.PRUNED
            assert trial.user_attrs["reason"].startswith("constraint: params")
            assert trial.constraints["params_max"] > 0
            assert "val_accuracy" not in trial.user_attrs, "an infeasible trial is never trained"
        if status in ("complete", "pruned"):
            curve = trial.user_attrs["learning_curve"]
            assert [entry["epoch"] for entry in curve] == list(range(1, len(curve) + 1))
            assert curve[-1]["val_accuracy"] == trial.user_attrs["val_accuracy"]


def test_the_front_is_re_timed_one_network_at_a_time(finished_study):
    from threshsearch.search.retime import retimed_records
    from threshsearch.search.storage import pareto_trials

    study = finished_study[1].study
    retimed = retimed_records(study)
    assert set(retimed) == {t.number for t in pareto_trials(study)}
    for record in retimed.values():
        assert record["measurement"] == "re-timed after the search, one network at a time"
        assert record["latency_ms"] > 0 and record["passes"] >= 1


def test_the_front_holds_only_completed_trials(finished_study):
    study = finished_study[1].study
    pruned = {t.number for t in study.trials if t.state == TrialState.PRUNED}
    front = {t.number for t in study.best_trials}
    assert front and not front & pruned
    assert all(t.state == TrialState.COMPLETE for t in study.best_trials)


def test_the_workers_time_is_accounted_per_trial_and_per_run(finished_study):
    from threshsearch.search.worktime import OUTSIDE, PHASES, WORKER_S, WORKER_TIME

    summary = finished_study[1]
    trained = [t for t in summary.study.trials
               if t.user_attrs.get("status") in ("complete", "pruned")]
    for trial in trained:
        account = trial.user_attrs[WORKER_TIME]
        assert set(account) == {*PHASES, WORKER_S}
        assert account["training"] > 0 and account["latency"] > 0
        assert account[WORKER_S] <= trial.user_attrs["wall_s"]
    assert summary.work.seconds["training"] == pytest.approx(
        sum(t.user_attrs[WORKER_TIME]["training"] for t in summary.study.trials
            if t.user_attrs.get(WORKER_TIME)))
    assert summary.work.seconds[OUTSIDE] > 0
    assert sum(summary.work.shares().values()) == pytest.approx(1.0)


def test_tunes_state_lists_no_forgotten_trial_and_the_rest_by_their_identity(finished_study):
    import json

    from threshsearch.search.endedtrials import KEPT_CONFIG, KEPT_RESULT

    space, summary = finished_study
    first = min((space.study_dir / "ray").glob("run-*"))  # the fixture's: the study's first
    states = list(first.glob("experiment_state-*.json"))
    assert len(states) == 1  # written at the run's end
    trials = json.loads(states[0].read_text())["trial_data"]
    ran = [t for t in summary.study.trials if t.user_attrs.get("status") in ("complete",
                                                                            "pruned")]
    # The controller forgot the trials as they ended; what the state may list (the last to
    # end) is cut to its identity (shed's JSON on a real trial: tests/search/test_endedtrials).
    assert len(trials) <= space.study.concurrency < len(ran)
    for state, run_metadata in map(lambda pair: map(json.loads, pair), trials):
        assert set(state["config"]) <= set(KEPT_CONFIG) and "number" in state["config"]
        assert state["evaluated_params"] == state["config"]
        assert state["experiment_tag"] == str(state["config"]["number"])
        assert set(run_metadata["last_result"]) <= set(KEPT_RESULT)
        assert run_metadata["metric_analysis"] == {} and run_metadata["metric_n_steps"] == {}


def test_rerunning_resumes_and_never_trains_a_config_twice(finished_study):
    from threshsearch.search.runner import run_search

    space, summary = finished_study
    before = {t.number: (t.state, t.values) for t in summary.study.trials}
    # Two more networks (a repeat uses no budget: each of the two is one not tried yet).
    more = run_search(with_overrides(space, n_trials=10), quiet=True)
    trials = more.study.trials
    assert budget_used(trials) == 10, "the budget counts the 8 trials already there"
    assert {t.number: (t.state, t.values) for t in trials[:len(before)]} == before
    trained = [t.user_attrs["config_hash"] for t in trials
               if t.user_attrs.get("status") in ("complete", "pruned", "infeasible")]
    assert len(trained) == len(set(trained)), "a config was trained twice"
    for trial in trials:
        if trial.user_attrs.get("status") == "duplicate":
            twin = trials[trial.user_attrs["duplicate_of"]]
            assert twin.user_attrs["config_hash"] == trial.user_attrs["config_hash"]
            assert trial.values == twin.values


def test_a_killed_driver_resumes_with_nothing_lost(tmp_path, local_ray, capsys):
    from threshsearch.cli import main

    env = cli_env()
    # Slower trials than the other tests' (8 epochs, no early stopping), so that one is
    # surely running when the driver dies.
    space = write_space(tmp_path, n_trials=3)
    data = yaml.safe_load(space.read_text())
    data["train"]["epochs"] = 8
    data["early_stopping"] = {"kind": "none"}
    space.write_text(yaml.safe_dump(data))
    db = tmp_path / "study.db"
    driver = subprocess.Popen(cli("run", "--space", str(space), "--quiet"), env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finished = {TrialState.COMPLETE.name, TrialState.PRUNED.name, TrialState.FAIL.name}
    started = wait_for(lambda: sum(state in finished for _, state in trial_rows(db)) >= 1
                       and any(state == "RUNNING" for _, state in trial_rows(db)), 240, 0.05)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert started, "the driver never got a trial done"
    before = {trial.number: (trial.state, trial.values)
              for trial in load_study(f"sqlite:///{db}").trials
              if trial.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    # Resumed by the command in this process, on the tests' shared Ray.
    assert main(["run", "--space", str(space), "--quiet"]) == 0, capsys.readouterr().err
    assert "Last result" not in capsys.readouterr().out  # Tune's printer of a cut trial
    study = load_study(f"sqlite:///{db}")
    after = {trial.number: (trial.state, trial.values) for trial in study.trials}
    assert all(after[number] == value for number, value in before.items())
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials
                   if t.state == TrialState.FAIL and "status" not in t.user_attrs]
    assert interrupted, "the killed driver left a running trial behind"
    assert {t.number for t in interrupted} <= retried_numbers(study.trials)
    assert budget_used(study.trials) - len(interrupted) == 3
    trained = [t.user_attrs["config_hash"] for t in study.trials
               if t.user_attrs.get("status") in ("complete", "pruned", "infeasible")]
    assert len(trained) == len(set(trained))


def test_the_trials_the_time_budget_cuts_end_timed_out_and_are_queued_again(local_ray,
                                                                            tmp_path):
    from threshsearch.search.runner import run_search
    from threshsearch.search.surrogate import surrogate_trainable

    path = write_space(tmp_path, n_trials=4, concurrency=2, timeout_s=6)
    data = yaml.safe_load(path.read_text())
    data["train"]["epochs"] = 200  # a second an epoch: no trial ends before the budget
    data["early_stopping"] = {"kind": "none"}
    data["constraints"] = []
    path.write_text(yaml.safe_dump(data))
    study = run_search(load_space(path), quiet=True,
                       trainable=surrogate_trainable(32, 1.0)).study
    trials = study.get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING], \
        "Tune stops the workers at the budget without telling the searcher"
    cut = [t.number for t in trials if t.user_attrs.get("status") == "timed_out"]
    assert cut and set(cut) == retried_numbers(trials)
    assert sum(t.state == TrialState.WAITING for t in trials) == len(cut)


def test_pareto_early_stopping_prunes_yet_keeps_the_cheapest_network(local_ray, tmp_path):
    from threshsearch.search.runner import run_search
    from threshsearch.search.schedulers import make_early_stopper
    from threshsearch.search.surrogate import surrogate_trainable

    path = write_space(tmp_path, n_trials=10, concurrency=2, seed=3)
    data = yaml.safe_load(path.read_text())
    data["train"]["epochs"] = 4
    data["early_stopping"] = {"kind": "pareto", "grace_epochs": 1, "reduction_factor": 2}
    data["space"]["growth"] = {"type": "categorical", "choices": [4, 6, 8, 12]}
    data["constraints"] = []
    path.write_text(yaml.safe_dump(data))
    space = load_space(path)
    # The surrogate's learning curves: the scheduler's ranking is what is tested (a baseline
    # beside an early-stopped search, below, trains for real under it).
    study = run_search(space, quiet=True, trainable=surrogate_trainable(32, 0.01)).study
    trained = [t for t in study.trials if t.user_attrs.get("status") in ("complete", "pruned")]
    pruned = [t for t in trained if t.state == TrialState.PRUNED]
    assert pruned, "two trials at a time, 10 trials, eta 2: some must be dominated at a rung"
    for trial in pruned:
        assert trial.user_attrs["reason"].startswith("stopped by pareto at the epoch-")
    # The cheapest network is an end of every rung's first front, so it is never stopped,
    # however slowly it learns.
    cheapest = min(trained, key=lambda t: t.user_attrs["memrw_mib"])
    if sum(t.user_attrs["memrw_mib"] == cheapest.user_attrs["memrw_mib"] for t in trained) == 1:
        assert cheapest.state == TrialState.COMPLETE
    # A rerun's scheduler starts from the stored learning curves.
    stopper = make_early_stopper(space, study.trials)
    assert stopper.evidence >= len(trained)
    assert sum(len(records) for records in stopper.scheduler.rungs.values()) == stopper.evidence


def test_a_baseline_trains_to_the_end_beside_an_early_stopped_search(local_ray, tmp_path):
    from threshsearch.search.baselines import baseline_trials, load_baselines_study
    from threshsearch.search.runner import run_search

    path = write_space(tmp_path, n_trials=3, concurrency=2)
    data = yaml.safe_load(path.read_text())
    data["baselines"] = ["threshnet79"]
    # Two epochs (threshnet79 is the slow part): the epoch-1 rung is the one to pass.
    data["train"]["epochs"] = 2
    data["early_stopping"] = {"kind": "pareto", "grace_epochs": 1, "reduction_factor": 2}
    path.write_text(yaml.safe_dump(data))
    summary = run_search(load_space(path), quiet=True)
    assert summary.baselines_trained == 1 and summary.baselines_s > 0
    [baseline] = baseline_trials(load_baselines_study(summary.study)).values()
    assert baseline.user_attrs["epochs"] == 2, "early stopping never stops a baseline"
    assert baseline.user_attrs["params"] > 60000, "constraints do not apply to baselines"
    assert budget_used(summary.study.trials) == 3
    again = run_search(load_space(path), quiet=True)
    assert again.baselines_trained == 0


def test_a_device_model_prices_a_ray_runs_trials_and_no_worker_times_one(
        local_ray, tmp_path, device_model_file):
    from threshsearch.config import ArchitectureConfig
    from threshsearch.devicemodel import load_device_model
    from threshsearch.search.retime import retimed_records
    from threshsearch.search.runner import run_search
    from threshsearch.search.storage import pareto_trials
    from threshsearch.search.worktime import WORKER_TIME

    path = write_space(tmp_path, n_trials=4, concurrency=2)
    data = yaml.safe_load(path.read_text())
    data["objectives"] = [{"metric": "val_accuracy"}, {"metric": "predicted_latency_ms"}]
    data["measurement"] = {"device_model": str(device_model_file)}
    path.write_text(yaml.safe_dump(data))
    model = load_device_model(device_model_file)
    study = run_search(load_space(path), quiet=True).study
    trained = [t for t in study.trials if t.user_attrs.get("status") in ("complete", "pruned")]
    assert trained
    for trial in trained:
        config = ArchitectureConfig.from_dict(trial.user_attrs["architecture"])
        assert trial.user_attrs["predicted_latency_ms"] == model.predict_ms(config)
        assert trial.user_attrs["device_model"] == model.model_id
        # Nothing timed, nothing waited for: the prediction cost the worker nothing.
        assert trial.user_attrs["latency"] is None and "latency_ms" not in trial.user_attrs
        assert trial.user_attrs[WORKER_TIME]["latency"] == 0
    # The model is of this machine's CPU in PyTorch: the front is measured for real.
    retimed = retimed_records(study)
    assert set(retimed) == {t.number for t in pareto_trials(study)}
    assert all(record["device_model"] == model.model_id for record in retimed.values())


def test_a_run_says_what_the_folder_skipped_and_that_test_is_validation(tmp_path, capsys):
    from tests.test_folders import make_classes
    from threshsearch.data import load_dataset
    from threshsearch.search.runner import SKIPPED_LIST, announce_dataset

    make_classes(tmp_path / "images")
    (tmp_path / "images" / "cat" / "junk.png").write_bytes(b"junk")
    (tmp_path / "images" / ".ipynb_checkpoints").mkdir()
    space = load_space(write_space(tmp_path))
    dataset = load_dataset("folder", tmp_path / "images")
    announce_dataset(space, dataset, quiet=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("data: 2 skipped (1 hidden or system folder, 1 undecodable)")
    assert lines[1].startswith("data: the test split is the validation split")
    listing = (space.study_dir / SKIPPED_LIST).read_text().splitlines()
    assert {line.split(": ")[0].rsplit("/", 1)[-1] for line in listing} == {
        "junk.png", ".ipynb_checkpoints"}
    held = load_dataset("folder", tmp_path / "images", test_fraction=0.2)
    announce_dataset(space, held, quiet=False)
    assert "test split" not in capsys.readouterr().out


def test_a_study_keeps_how_it_measured_latency_and_refuses_the_other_way(tmp_path):
    from threshsearch.search.runner import open_study
    from threshsearch.search.sections import SpaceError

    path = write_space(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["objectives"] = [{"metric": "val_accuracy"}, {"metric": "latency_ms"}]
    path.write_text(yaml.safe_dump(data))
    open_study(load_space(path))  # a study made before the setting existed, or with false
    data["measurement"] = {"cuda_graph": True}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpaceError, match=r"measurement\.cuda_graph: study 'tiny' measured "
                                         r"latency_ms eagerly; this space asks for true, which "
                                         r"would put both on one axis; use false or another "
                                         r"study\.name"):
        open_study(load_space(path))
    # A study whose trials measure no latency takes either setting.
    data = {**data, "study": {**data["study"], "name": "unmeasured"}, "measurement": {},
            "objectives": [{"metric": "val_accuracy"}, {"metric": "memrw_mib"}]}
    path.write_text(yaml.safe_dump(data))
    open_study(load_space(path))
    data["measurement"] = {"cuda_graph": True}
    path.write_text(yaml.safe_dump(data))
    assert open_study(load_space(path)).study_name == "unmeasured"
