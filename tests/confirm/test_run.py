"""Planning a confirmation, and running one through Ray and the CLI."""

import pytest

from tests.search.helpers import age_heartbeats, offline_study
from threshsearch.cli import main
from threshsearch.confirm.protocols import get_protocol
from threshsearch.confirm.records import (
    completed_records,
    finish_record,
    load_confirm_study,
    open_confirm_study,
    start_record,
)
from threshsearch.confirm.run import plan_confirmation
from threshsearch.errors import UserError
from threshsearch.search.storage import open_storage, pareto_trials


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("confirm")
    space, made = offline_study(folder, n_trials=5)
    return folder / "space.yaml", space, made


def test_the_plan_follows_the_protocol(study):
    _, space, made = study
    front = pareto_trials(made)
    plan = plan_confirmation(made, get_protocol("search", "synthetic"))
    # no baselines trained; the networks the search took longest to train come first
    by_time = sorted(front, key=lambda t: -t.user_attrs["compute_s"])
    assert plan.networks == [f"trial {t.number}" for t in by_time]
    assert len(plan.pairs) == 3 * len(front)
    assert plan.pairs[0].recipe == by_time[0].user_attrs["recipe"]  # the search's own
    assert (plan.cpus, plan.dataset) == (1, "synthetic")
    assert (plan.test_fraction, plan.max_image_pixels) == (0.0, 10**8)
    # A folder search's held-out test share is the one its confirmation tests on.
    made.set_user_attr("data", {**made.user_attrs["data"], "test_fraction": 0.2,
                                "max_image_pixels": 5000})
    try:
        held_out = plan_confirmation(made, get_protocol("search", "synthetic"))
        assert (held_out.test_fraction, held_out.max_image_pixels) == (0.2, 5000)
    finally:
        made.set_user_attr("data", {**made.user_attrs["data"], "test_fraction": 0.0,
                                    "max_image_pixels": 10**8})
    longer = plan_confirmation(made, get_protocol("search", "synthetic").with_options(
        seeds=1, epochs=7, baselines=("threshnet79",)), [front[0].number])
    assert longer.networks == ["threshnet79", f"trial {front[0].number}"]  # untrained first
    assert {p.recipe["epochs"] for p in longer.pairs} == {7}
    # a baseline the study never trained is confirmed under the study's recipe
    assert longer.pairs[0].recipe["lr"] == space.train.lr
    assert longer.pairs[0].architecture["num_classes"] == 10


def test_members_must_be_completed_trials(study):
    _, _, made = study
    pruned = next(t.number for t in made.trials if t.state.name != "COMPLETE")
    with pytest.raises(UserError, match=f"--members: {pruned} is not a completed trial"):
        plan_confirmation(made, get_protocol("search", "synthetic"), [pruned])
    with pytest.raises(UserError, match="--baselines: 'resnet' is not a preset"):
        plan_confirmation(made, get_protocol("search", "synthetic").with_options(
            baselines=("resnet",)))


@pytest.mark.parametrize(("flags", "message"), [
    (["--protocol", "paper-svhn"], "--protocol: paper-svhn is for svhn, but the study "
                                   "searched synthetic"),
    (["--concurrency", "0"], "--concurrency: 0 is invalid"),
    (["--members", "99"], "--members: 99 is not a completed trial"),
])
def test_the_command_checks_its_flags_before_starting_ray(study, capsys, flags, message):
    path, _, _ = study
    assert main(["confirm", "--space", str(path), *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_ray_confirmation_with_two_seeds_resumes_what_was_left(study, capsys, local_ray):
    path, space, made = study
    members = [t.number for t in made.trials if t.state.name == "COMPLETE"
               and t.user_attrs.get("duplicate_of") is None][:2]
    assert len(members) == 2
    protocol = get_protocol("search", "synthetic").with_options(seeds=2, baselines=())
    pairs = plan_confirmation(made, protocol, members).pairs
    # Left by an earlier, interrupted confirmation: one pair done, one failed, one running
    # when its driver died (its heartbeat goes stale), the rest never started.
    storage = open_storage(space.storage_url, space.study.heartbeat_s, space.study.grace_s,
                           retry_stale=False)
    confirm = open_confirm_study(made, storage)
    finish_record(start_record(confirm, pairs[0], protocol.key, "synthetic"),
                  {"test_accuracy": 0.123}, 1.0)
    finish_record(start_record(confirm, pairs[1], protocol.key, "synthetic"),
                  {"failed": "out of memory"}, 1.0)
    start_record(confirm, pairs[2], protocol.key, "synthetic")
    age_heartbeats(space.storage_url, space.study.grace_s + 1)
    code = main(["confirm", "--space", str(path), "--seeds", "2", "--baselines", "none",
                 "--members", *map(str, members)])
    out = capsys.readouterr().out
    assert code == 0, out
    import ray

    assert ray.is_initialized(), "the Ray this process held is used as it is and left up"
    trained = len(pairs) - 1
    assert f"{trained} pairs trained, 0 failed, 1 confirmed before" in out
    records = completed_records(load_confirm_study(made), protocol.key)
    assert sorted((r.user_attrs["network"], r.user_attrs["seed"]) for r in records) == \
        sorted((p.network, p.seed) for p in pairs)  # one record per pair, none twice
    kept = next(r for r in records if r.user_attrs["seed"] == pairs[0].seed
                and r.user_attrs["network"] == pairs[0].network)
    assert kept.value == 0.123  # not trained again
    fresh = [r for r in records if r.number != kept.number]
    for record in fresh:
        attrs = record.user_attrs
        assert 0 <= attrs["test_accuracy"] <= 1 and attrs["epochs"] == 3
        assert attrs["latency"]["measurement"].startswith("confirmation")
        assert attrs["versions"]["torch"] and attrs["device"] and attrs["node"]
    assert f"{pairs[3].network} seed {pairs[3].seed}: test" in out
    assert "confirmed (search: the search's recipe; test split):" in out


@pytest.mark.slow
def test_a_confirmation_interrupted_before_any_result_leaves_the_latest_one_shown(
        study, local_ray, monkeypatch):
    import ray

    from threshsearch.confirm.records import LATEST
    from threshsearch.confirm.run import run_confirmation

    _, space, made = study
    members = [t.number for t in pareto_trials(made)][:1]
    protocol = get_protocol("search", "synthetic").with_options(seeds=1, epochs=1,
                                                               baselines=())
    plan = plan_confirmation(made, protocol, members)
    storage = open_storage(space.storage_url)
    confirm = open_confirm_study(made, storage)
    before = confirm.user_attrs.get(LATEST)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # While a pair's result is fetched: the pair is still the run's to end.
    monkeypatch.setattr(ray, "get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_confirmation(made, space.storage_url, plan, quiet=True)
    confirm = load_confirm_study(made)
    assert confirm.user_attrs.get(LATEST) == before, "no result: the report shows the last one"
    records = [r for r in confirm.get_trials() if r.user_attrs["protocol"] == protocol.key]
    assert records and all(r.state.name == "FAIL" and r.user_attrs["reason"] == "interrupted"
                           for r in records)


def test_a_plan_carries_the_studys_predicted_latency_for_every_network(tmp_path,
                                                                       device_model_file):
    from threshsearch.config import ArchitectureConfig
    from threshsearch.devicemodel import load_device_model
    from threshsearch.presets import get_preset

    _, made = offline_study(tmp_path, n_trials=4,
                            objectives=[{"metric": "val_accuracy"},
                                        {"metric": "predicted_latency_ms"}],
                            measurement={"device_model": str(device_model_file)})
    model = load_device_model(device_model_file)
    plan = plan_confirmation(made, get_protocol("search", "synthetic").with_options(
        baselines=["threshnet79"]))
    for trial in pareto_trials(made):
        assert plan.predicted[trial.user_attrs["config_hash"]] == \
            trial.user_attrs["predicted_latency_ms"]
    baseline = get_preset("threshnet79", 10)
    assert plan.predicted[baseline.hash] == model.predict_ms(
        ArchitectureConfig.from_dict(baseline.to_dict()))
    # The file the study was priced by, changed since: said, not silently re-priced.
    device_model_file_copy = tmp_path / "moved.json"
    device_model_file_copy.write_text(device_model_file.read_text().replace("1", "2", 1))
    made.set_user_attr("device_model", {**made.user_attrs["device_model"],
                                        "path": str(device_model_file_copy)})
    # The search's own figures need no file; a baseline it never trained does.
    assert plan_confirmation(made, get_protocol("search", "synthetic")).predicted
    with pytest.raises(UserError, match=r"moved\.json"):
        plan_confirmation(made, get_protocol("search", "synthetic").with_options(
            baselines=["threshnet79"]))
