import math

import optuna
import pytest
import yaml

from threshsearch.search.space import SearchSpace, SpaceError, load_space

MINIMAL = {
    "study": {"name": "t", "n_trials": 4},
    "objectives": [{"metric": "val_accuracy"}, {"metric": "latency_ms"}],
    "data": {"dataset": "synthetic", "device": "cpu"},
    "base": "threshnet79",
}


def space_with(**changes) -> dict:
    data = {key: (dict(value) if isinstance(value, dict) else value)
            for key, value in MINIMAL.items()}
    data.update(changes)
    return data


def sample(space: SearchSpace, seed: int = 0):
    study = optuna.create_study(directions=space.directions,
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    trial = study.ask()
    return trial, space.sample(trial)


def test_shipped_spaces_are_valid():
    for name in ("quickstart", "default"):
        space = load_space(f"search_spaces/{name}.yaml")
        assert space.study.name == name
    quick = load_space("search_spaces/quickstart.yaml")
    assert quick.data.dataset == "digits" and quick.study.n_trials >= 12
    assert quick.metric_names == ["val_accuracy", "predicted_latency_ms", "memrw_mib"]
    assert quick.measurement.device_model == "auto" and not quick.measures_latency


def test_defaults_directions_and_storage():
    space = SearchSpace.from_dict(MINIMAL)
    assert space.directions == ["maximize", "minimize"]
    assert space.storage_url == "sqlite:///studies/t/study.db"
    assert space.train.epochs == 15  # the synthetic dataset's default recipe
    _, (config, recipe) = sample(space)
    assert config.num_classes == 10 and config.modes == (
        "dense", "dense", "dense", "harmonic", "harmonic")
    assert recipe == space.train


def test_shared_and_per_stage_parameters():
    space = SearchSpace.from_dict(space_with(space={
        "depth": [{"type": "int", "low": 1, "high": 2}, 3, 4, 5, 6],
        "growth": {"type": "categorical", "choices": [8, 12]},
        "threshold": {"type": "categorical", "choices": [0, "inf"]},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    }))
    trial, (config, recipe) = sample(space)
    assert set(trial.params) == {"depth_1", "growth", "threshold", "lr"}
    assert [stage.depth for stage in config.stages][1:] == [3, 4, 5, 6]
    assert len({stage.growth for stage in config.stages}) == 1
    assert config.threshold in (0, math.inf)
    assert recipe.lr == trial.params["lr"]


def test_searching_rates_or_stage_counts_derives_transition_widths():
    space = SearchSpace.from_dict(space_with(space={
        "num_stages": 3, "dense_reduction": {"type": "float", "low": 0.5, "high": 0.5},
    }))
    _, (config, _) = sample(space)
    assert len(config.stages) == 3
    assert all(stage.transition_width is None for stage in config.stages)
    assert config.resolve()[0].out_channels == (64 + 6 * 32) // 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"study": {"name": "t", "sampler": "cmaes"}}, "study.sampler: 'cmaes' is invalid"),
        ({"study": {"name": "../x"}}, "study.name"),
        ({"study": {"name": "t", "n_trials": 0}}, "study.n_trials: 0"),
        ({"study": {"name": "t", "trials": 3}}, "study.trials: unknown key; did you mean"),
        ({"objectives": []}, "objectives:"),
        ({"objectives": [{"metric": "accuracy"}]}, "objectives[0].metric: 'accuracy'"),
        ({"objectives": [{"metric": "params", "direction": "up"}]},
         "objectives[0].direction: 'up'"),
        ({"constraints": [{"metric": "val_accuracy", "min": 0.5}]},
         "constraints[0].metric: 'val_accuracy' is invalid"),
        ({"constraints": [{"metric": "params"}]}, "constraints[0]: no bound"),
        ({"data": {"dataset": "imagenet"}}, "data.dataset: 'imagenet'"),
        ({"train": {"epochs": -1}}, "train.epochs: -1 is invalid"),
        ({"train": {"recipe": "fast"}}, "train.recipe: 'fast'"),
        ({"early_stopping": {"kind": "hyperband"}},
         "early_stopping.kind: 'hyperband' is invalid; expected one of pareto, asha, none"),
        ({"early_stopping": {"reduction_factor": 1}}, "early_stopping.reduction_factor: 1"),
        ({"train": {"epochs": 3}, "early_stopping": {"grace_epochs": 3}},
         "early_stopping.grace_epochs: 3 is invalid; expected fewer than train.epochs (3)"),
        ({"study": {"name": "t", "sampler": {"kind": "tpe", "population_size": 4}}},
         "study.sampler.population_size: not a setting of the tpe sampler"),
        ({"resources": {"cpus": 0}}, "resources.cpus: 0"),
        ({"data": {"latency_batch_size": 0}}, "data.latency_batch_size: 0 is invalid"),
        ({"measurement": {"min_passes": 0}}, "measurement.min_passes: 0 is invalid"),
        ({"measurement": {"max_time_s": -1}}, "measurement.max_time_s: -1 is invalid"),
        ({"measurement": {"tolerance": 0}}, "measurement.tolerance: 0 is invalid"),
        ({"measurement": {"min_time_s": 5}}, "measurement.min_time_s: 5 is invalid; expected a "
                                             "number in [0, 2.0]"),
        ({"measurement": {"exclusive": "yes"}}, "measurement.exclusive: 'yes' is invalid"),
        ({"measurement": {"repeats": 5}}, "measurement.repeats: unknown key"),
        ({"base": "resnet50"}, "base: 'resnet50'"),
        ({"space": {"depht": 3}}, "space.depht: unknown key; did you mean 'depth'"),
        ({"space": {"depth": {"type": "int", "low": 5, "high": 2}}}, "space.depth: low 5"),
        ({"space": {"depth": {"type": "int", "low": 1.5, "high": 2}}}, "space.depth.low"),
        ({"space": {"growth": [8, 8]}}, "space.growth: 2 per-stage entries"),
        ({"space": {"num_stages": 4.5}}, "space.num_stages: 4.5 is invalid; expected a whole"),
        ({"space": {"num_stages": 0}}, "space.num_stages: 0 is invalid"),
        ({"space": {"num_stages": {"type": "float", "low": 3, "high": 5}}},
         "space.num_stages: a float range is invalid"),
        ({"space": {"num_stages": {"type": "categorical", "choices": [3, "four"]}}},
         "space.num_stages: 'four' is invalid"),
        ({"space": {"lr": {"type": "float", "low": 0, "high": 1, "log": True}}},
         "space.lr.log"),
        ({"space": {"stem": {"type": "categorical", "choices": ["tiny"]}}}, "space.stem"),
        ({"space": {"depth": {"type": "normal"}}}, "space.depth.type: 'normal'"),
        ({"extra": 1}, "extra: unknown key"),
        ({"constraints": [{"metric": "params", "min": 2000000, "max": 1500000}]},
         "constraints[0]: min 2000000 > max 1500000: no network can meet both"),
        ({"constraints": [{"metric": "memrw_mib", "max": -1}]},
         "constraints[0].max: -1 is invalid: memrw_mib is always positive"),
        ({"constraints": [{"metric": "latency_ms", "max": 0}]},
         "constraints[0].max: 0 is invalid: latency_ms is always positive"),
        ({"constraints": [{"metric": "flops", "min": -5}]},
         "constraints[0].min: -5 is invalid: flops is always positive, so it never binds"),
        ({"constraints": [{"metric": "madd", "max": float("inf")}]},
         "constraints[0].max: inf is invalid; expected a finite number"),
        ({"constraints": [{"metric": "epoch_time_s", "max": 5}]},
         "constraints[0].metric: 'epoch_time_s' is invalid; expected one of latency_ms"),
        ({"data": {"test_fraction": 0.5}},
         "data.test_fraction: 0.5 is invalid; expected a number in [0, 0.5)"),
        ({"study": {"name": "t", "heartbeat_s": 5, "grace_s": 5}},
         "study.grace_s: 5 is invalid; expected more than study.heartbeat_s (5)"),
        ([1, 2], "search space: expected a mapping with keys study, objectives"),
    ],
)
def test_malformed_spaces_name_the_key_path(changes, expected):
    data = space_with(**changes) if isinstance(changes, dict) else changes
    with pytest.raises(SpaceError) as caught:
        SearchSpace.from_dict(data)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_early_stopping_defaults_to_pareto_for_several_objectives_and_asha_for_one():
    several = SearchSpace.from_dict(space_with(
        objectives=[{"metric": "val_accuracy"}, {"metric": "memrw_mib"}]))
    assert several.early_stopping.kind == "pareto"
    one = SearchSpace.from_dict(space_with(objectives=[{"metric": "val_accuracy"}]))
    assert one.early_stopping.kind == "asha"
    # No early stopping needs no grace below the epochs.
    SearchSpace.from_dict(space_with(train={"epochs": 1}, early_stopping={"kind": "none"}))


def test_load_space_names_the_file(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space_with(base="nope")))
    with pytest.raises(SpaceError, match=rf"{path}: base: 'nope'"):
        load_space(path)
    path.write_text("study: [unclosed\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(path)


def test_a_constraint_that_some_network_can_meet_is_kept():
    space = SearchSpace.from_dict(space_with(
        constraints=[{"metric": "params", "min": 1000, "max": 1500000}]))
    assert (space.constraints[0].min, space.constraints[0].max) == (1000, 1500000)


def test_test_fraction_is_carried_in_the_data_settings(tmp_path):
    assert SearchSpace.from_dict(MINIMAL).data.test_fraction == 0
    (tmp_path / "cat").mkdir()
    data = {"dataset": "folder", "root": str(tmp_path), "device": "cpu", "test_fraction": 0.2}
    assert SearchSpace.from_dict(space_with(data=data)).data.test_fraction == 0.2


@pytest.mark.parametrize(("data", "expected"), [
    ({"dataset": "folder", "test_fraction": 0.5}, r"data\.test_fraction: 0\.5 is invalid"),
    ({"dataset": "folder", "test_fraction": -0.1}, r"data\.test_fraction: -0\.1 is invalid"),
    ({"dataset": "synthetic", "test_fraction": 0.1},
     r"data\.test_fraction: 0\.1 is invalid for dataset 'synthetic'"),
    ({"dataset": "synthetic", "max_image_pixels": 0}, r"data\.max_image_pixels: 0 is invalid"),
])
def test_test_fraction_and_the_image_size_limit_are_checked(tmp_path, data, expected):
    if data["dataset"] == "folder":
        (tmp_path / "cat").mkdir()
        data = {**data, "root": str(tmp_path)}
    with pytest.raises(SpaceError, match=expected):
        SearchSpace.from_dict(space_with(data={"device": "cpu", **data}))


def test_latency_is_measured_only_when_an_objective_or_constraint_asks_for_it():
    assert SearchSpace.from_dict(MINIMAL).measures_latency
    no_latency = space_with(objectives=[{"metric": "val_accuracy"}, {"metric": "memrw_mib"}])
    assert not SearchSpace.from_dict(no_latency).measures_latency
    bounded = {**no_latency, "constraints": [{"metric": "latency_ms", "max": 5}]}
    assert SearchSpace.from_dict(bounded).measures_latency


def test_replace_validates_and_keeps_the_source(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(MINIMAL))
    space = load_space(path)
    changed = space.replace(study=space.study.replace(n_trials=9))
    assert changed.study.n_trials == 9 and changed.source == path
    with pytest.raises(SpaceError, match=r"^n_trials: 0 is invalid"):
        space.study.replace(n_trials=0)


def test_a_section_with_every_key_commented_out_takes_its_defaults():
    for section in ("study", "data", "measurement", "constraints", "space", "train",
                    "early_stopping", "resources"):
        data = {**MINIMAL, section: None}
        space = SearchSpace.from_dict(data)
        assert space.objectives, section


PREDICTED = space_with(objectives=[{"metric": "val_accuracy"},
                                   {"metric": "predicted_latency_ms"}])


def test_predicted_latency_needs_a_device_model_of_the_spaces_settings(tmp_path,
                                                                       device_model_file):
    with pytest.raises(SpaceError, match=r"measurement\.device_model: predicted_latency_ms "
                                         r"needs a device model"):
        SearchSpace.from_dict(PREDICTED)
    missing = {**PREDICTED, "measurement": {"device_model": str(tmp_path / "none.json")}}
    with pytest.raises(SpaceError, match=r"measurement\.device_model: .*none\.json: cannot "
                                         r"read the device model"):
        SearchSpace.from_dict(missing)
    batch = {**PREDICTED, "measurement": {"device_model": str(device_model_file)},
             "data": {"dataset": "synthetic", "device": "cpu", "latency_batch_size": 8}}
    with pytest.raises(SpaceError, match=r"measurement\.device_model: device model \w+: "
                                         r"batch_size 8 asked for, but the model was made for "
                                         r"batch_size 1"):
        SearchSpace.from_dict(batch)
    space = SearchSpace.from_dict({**PREDICTED,
                                   "measurement": {"device_model": str(device_model_file)}})
    assert space.device_model is not None and not space.measures_latency
    # Trials are handed the measurement settings alone: the model stays on the driver.
    assert "device_model" not in space.measurement.for_trials()
    assert space.replace(study=space.study.replace(n_trials=2)).device_model.model_id == \
        space.device_model.model_id


def test_the_network_of_parameters_is_the_trials_with_the_missing_ones_filled_in():
    space = SearchSpace.from_dict(space_with(space={
        "num_stages": {"type": "int", "low": 3, "high": 4},
        "depth": [1, 2, 3, {"type": "int", "low": 1, "high": 4}],
        "growth": {"type": "categorical", "choices": [8, 12]},
        "threshold": {"type": "categorical", "choices": [0, "inf"]},
        "harmonic_reduction": {"type": "float", "low": 0.5, "high": 1.0, "step": 0.5},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    }))
    trial, (config, _) = sample(space, seed=1)
    never = lambda name, distribution: pytest.fail(f"{name} was given")  # noqa: E731
    assert space.network_of(trial.params, never) == (config.hash, {})
    asked = []

    def fill(name, distribution):
        asked.append((name, distribution))
        return 3

    four = {"num_stages": 4, "growth": 8, "threshold": "inf", "harmonic_reduction": 0.5,
            "lr": 1e-3}
    network, filled = space.network_of(four, fill)
    assert filled == {"depth_4": 3}
    assert asked == [("depth_4", optuna.distributions.IntDistribution(1, 4))]
    assert network == space.network_of({**four, "depth_4": 3}, never)[0]
    # Parameters the network does not use (an all-dense network's harmonic reduction, the
    # learning rate) do not change it; one it uses does.
    three = {**four, "num_stages": 3}
    assert space.network_of(three, never)[0] == space.network_of(
        {**three, "harmonic_reduction": 1.0, "lr": 1e-2}, never)[0]
    assert space.network_of(three, never)[0] != space.network_of(
        {**three, "growth": 12}, never)[0]
