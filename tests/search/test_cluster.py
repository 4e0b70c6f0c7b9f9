"""A search on a Ray cluster of two nodes on this machine: the driver ships the data, the
trials run on the node without the driver and without the data, and settings the cluster
cannot honour are refused before the study is touched."""

import shutil

import numpy as np
import optuna
import pytest
import yaml

from tests.search.helpers import TINY_SPACE, write_space
from threshsearch.errors import UserError
from threshsearch.search.space import load_space

pytestmark = pytest.mark.slow


def make_image_folder(root, classes=3, per_class=12):
    """Small images of different sizes and modes, one class a colour, and one broken file."""
    from PIL import Image

    for label in range(classes):
        folder = root / f"class{label}"
        folder.mkdir(parents=True)
        rng = np.random.default_rng(label)
        for index in range(per_class):
            shape = (20 + index % 3, 24, 3)
            pixels = np.clip(rng.normal(60 * label + 40, 20, shape), 0, 255).astype(np.uint8)
            image = Image.fromarray(pixels)
            (image.convert("L") if index % 4 == 0 else image).save(folder / f"{index}.png")
    (root / "class0" / "broken.png").write_bytes(b"not an image")


def shut_down_local_ray() -> None:
    """The tests' shared local Ray, if up in this process, shut down: a runner that finds
    Ray running in its process uses it and refuses another address."""
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_a_local_ray_has_the_cpus_asked_for_and_logs_at_error_level_only(local_ray):
    import logging

    import ray

    # tests.helpers.ensure_local_ray starts it with connect_ray(None, num_cpus=4)
    assert ray.cluster_resources()["CPU"] == 4
    assert logging.getLogger("ray").getEffectiveLevel() == logging.ERROR


def test_a_ray_session_uses_a_held_ray_else_starts_one_and_always_stops_its_own(monkeypatch):
    import ray

    from threshsearch.search import cluster

    calls = []
    monkeypatch.setattr(cluster, "connect_ray",
                        lambda address, num_cpus: calls.append(("join", address, num_cpus)))
    monkeypatch.setattr(cluster, "_check_reachable", lambda address: None)
    monkeypatch.setattr(ray, "shutdown", lambda: calls.append(("shutdown",)))
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with cluster.ray_session(None):
        calls.append(("work",))
    assert calls == [("work",)], "a held Ray is used and left up"
    refused = pytest.raises(UserError, match=r"--address head:6379: this process already holds")
    with refused, cluster.ray_session("head:6379"):
        calls.append(("work",))
    assert calls == [("work",)]

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    calls.clear()
    with pytest.raises(RuntimeError, match="the work failed"), cluster.ray_session("head:6379"):
        calls.append(("work",))
        raise RuntimeError("the work failed")
    assert calls == [("join", "head:6379", None), ("work",), ("shutdown",)]
    calls.clear()
    with cluster.ray_session(None, num_cpus=3):
        calls.append(("work",))
    assert calls == [("join", None, 3), ("work",), ("shutdown",)]


@pytest.fixture(scope="module")
def two_nodes():
    """A head node with no CPU for trials (the driver's) and a worker node with two."""
    from ray.cluster_utils import Cluster

    shut_down_local_ray()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    worker = cluster.add_node(num_cpus=2)
    yield cluster, worker
    cluster.shutdown()


def folder_space(tmp_path, root):
    path = write_space(tmp_path, n_trials=2, concurrency=2)
    data = yaml.safe_load(path.read_text())
    data["data"] = {"dataset": "folder", "root": str(root), "device": "cpu"}
    data["train"]["epochs"] = 1
    data["early_stopping"] = {"kind": "none"}
    data["constraints"] = []
    path.write_text(yaml.safe_dump(data))
    return load_space(path)


def test_trials_run_on_the_other_node_with_the_data_root_gone(two_nodes, tmp_path,
                                                              monkeypatch):
    from threshsearch.search import runner

    cluster, worker = two_nodes
    root = tmp_path / "images"
    make_image_folder(root)
    space = folder_space(tmp_path, root)
    assert space.num_classes == 3
    load = runner.load_dataset

    def load_then_lose_the_root(*args, **kwargs):
        dataset = load(*args, **kwargs)
        shutil.rmtree(root)  # no node can read the data any more, the driver included
        return dataset

    monkeypatch.setattr(runner, "load_dataset", load_then_lose_the_root)
    study = runner.run_search(space, address=cluster.address, quiet=True).study
    assert not root.exists()
    statuses = [t.user_attrs.get("status") for t in study.trials]
    assert statuses == ["complete", "complete"], [t.user_attrs.get("reason")
                                                  for t in study.trials]
    assert {t.user_attrs["node"] for t in study.trials} == {worker.node_id}
    assert study.user_attrs["data"]["num_classes"] == 3


def test_a_dataset_too_large_for_the_object_store_is_refused_first(two_nodes, tmp_path,
                                                                   monkeypatch):
    from threshsearch.search import cluster as cluster_checks
    from threshsearch.search import runner

    root = tmp_path / "images"
    make_image_folder(root)
    space = folder_space(tmp_path, root)
    monkeypatch.setattr(cluster_checks, "OBJECT_STORE_SHARE", 1e-9)
    with pytest.raises(UserError, match=r"data.ship: dataset folder \(0 MiB\) does not fit"):
        runner.run_search(space, address=two_nodes[0].address, quiet=True)
    assert optuna.get_all_study_names(space.storage_url) == [], "the study was touched"


def test_a_trial_larger_than_every_node_is_refused_first(two_nodes, tmp_path):

    from threshsearch.search import runner

    space = load_space(write_space(tmp_path))
    space = space.replace(resources=space.resources.replace(cpus=3))
    address = two_nodes[0].address
    with pytest.raises(UserError, match=f"resources: a trial asks for 3 CPUs and 0 GPUs, but "
                                        f"no node of the Ray cluster at {address} has that "
                                        f"much"):
        runner.run_search(space, address=address, quiet=True)
    assert optuna.get_all_study_names(space.storage_url) == []


def test_an_unreachable_address_is_one_line_and_leaves_no_study(tmp_path, capsys):
    import socket

    from threshsearch.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    space = write_space(tmp_path)
    shut_down_local_ray()
    # In this process: the CLI's exit code is main's (python -m threshsearch.cli exits
    # with it), and a new process would spend its time importing torch and Ray.
    assert main(["run", "--space", str(space), "--address", f"127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert f"--address: no Ray cluster answers at '127.0.0.1:{port}'" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "study.db").exists()


def test_a_bad_image_folder_is_named_before_ray_starts(tmp_path):
    from threshsearch.search.space import SearchSpace, SpaceError

    data = {**TINY_SPACE, "data": {"dataset": "folder", "root": str(tmp_path / "none")}}
    with pytest.raises(SpaceError, match=r"data\.root: dataset folder: no class folders"):
        SearchSpace.from_dict(data)


def test_tune_writes_its_experiment_state_every_five_minutes_and_when_forced(local_ray, tmp_path,
                                                                            monkeypatch):
    import os
    from types import SimpleNamespace

    from ray.train._internal.storage import StorageContext
    from ray.tune.execution import experiment_state

    from threshsearch.search.cluster import quiet_ray

    # Set, then removed: the monkeypatch puts back afterwards what was there before.
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "auto")
    monkeypatch.delenv("TUNE_GLOBAL_CHECKPOINT_S")
    quiet_ray()
    now = [0.0]  # Tune's module alone gets this clock, not the process
    monkeypatch.setattr(experiment_state, "time", SimpleNamespace(monotonic=lambda: now[0]))
    manager = experiment_state._ExperimentCheckpointManager(
        storage=StorageContext(storage_path=str(tmp_path), experiment_dir_name="run"),
        checkpoint_period=os.environ["TUNE_GLOBAL_CHECKPOINT_S"])
    writes = []
    for _ in range(10):  # a minute apart: Tune's default period (10 s) would write at each
        manager.sync_up_experiment_state(save_fn=lambda: writes.append(now[0]))
        now[0] += 60
    manager.sync_up_experiment_state(save_fn=lambda: writes.append("forced"), force=True)
    assert writes == [0.0, 300.0, "forced"]
