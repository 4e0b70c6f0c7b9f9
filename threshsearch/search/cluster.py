"""Reaching Ray and checking the cluster before a study is touched: a local Ray or an
existing cluster, an address that answers at once, a node able to run a trial, a shipped
dataset that fits the object store."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from threshsearch.data import ImageDataset
from threshsearch.errors import UserError
from threshsearch.search.space import SearchSpace

EXPERIMENT_STATE_PERIOD_S = 300  # Tune's default: 10 s, or longer as its writes grow


def quiet_ray() -> None:
    """Ray and Tune settings for a driver: no log flood, relative paths kept, Tune's
    experiment state written seldom."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # relative paths keep working
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "1000")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    # Infeasible and failed trials report no val_accuracy, on purpose: early stopping
    # skips them.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    # The study in its storage is the run's whole state (rerunning resumes from it) and Tune's
    # experiment state is never read back, yet Tune rewrites every trial into it every 10 s or
    # more: a cost of the driver's that grows with the study (441 MB a write at 10,000 trials).
    # Every 5 minutes, not only at the end: a write is also when Tune copies failed trials'
    # error files into studies/<name>/ray/.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", str(EXPERIMENT_STATE_PERIOD_S))


OBJECT_STORE_SHARE = 0.5  # of the smallest trial node's object store a shipped dataset may use


def connect_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Start a local Ray (of ``num_cpus`` logical CPUs, default the machine's), or join the
    cluster at ``address``; UserError when it cannot."""
    import ray

    if address:
        _check_reachable(address)
    # "local" starts a fresh instance; a bare ray.init() would attach to any Ray already
    # running on this machine (another driver's, say) and share its fate. No job-wide
    # runtime_env: with one, Tune's actors cannot take the workers Ray starts in advance.
    try:
        ray.init(address=address or "local", num_cpus=None if address else num_cpus,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as error:
        summary = " ".join(str(error).split())[:300]
        if not address:
            raise UserError(f"cannot start a local Ray ({type(error).__name__}: "
                            f"{summary})") from None
        raise UserError(f"--address: cannot join a Ray cluster at {address!r} "
                        f"({type(error).__name__}: {summary}); start one with `ray start "
                        f"--head` and give its HOST:6379, or leave --address out for a "
                        f"local Ray") from None


@contextmanager
def ray_session(address: str | None, num_cpus: int | None = None) -> Iterator[None]:
    """Ray for one piece of work: the Ray this process already holds (a notebook's, a test
    run's) used as it is and left running; otherwise a local Ray (of ``num_cpus``) or the
    cluster at ``address`` (``connect_ray``), shut down when the work ends. An ``address``
    while this process holds a Ray is refused (UserError): which cluster was meant is not
    clear."""
    import ray

    if ray.is_initialized():
        if address:
            _check_reachable(address)
            raise UserError(f"--address {address}: this process already holds a Ray "
                            f"(ray.init ran before); leave --address out to use that one, "
                            f"or call ray.shutdown() first")
        yield
        return
    connect_ray(address, num_cpus)
    try:
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address must answer at once: ray.init retries an
    unreachable one for minutes before it gives up."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as error:
        raise UserError(f"--address: no Ray cluster answers at {address!r} ({error}); start "
                        f"one with `ray start --head` and give its HOST:6379, or leave "
                        f"--address out for a local Ray") from None


def check_cluster(space: SearchSpace, dataset: ImageDataset, where: str) -> None:
    """Before any trial: some node can run a trial, and a shipped dataset fits the object
    store of the nodes that can. UserError naming the setting otherwise."""
    check_nodes(space.resources.cpus, space.resources.gpus,
                dataset if space.data.ship else None, where)


def check_nodes(cpus: float, gpus: float, shipped: ImageDataset | None, where: str) -> None:
    """Some node offers ``cpus`` and ``gpus``, and ``shipped`` (a dataset the driver ships)
    fits the object store of the nodes that do."""
    import ray

    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    able = [node for node in nodes
            if node.get("CPU", 0) >= cpus and node.get("GPU", 0) >= gpus]
    if not able:
        raise UserError(
            f"resources: a trial asks for {cpus:g} CPUs and {gpus:g} GPUs, but no node of "
            f"{where} has that much (the largest offers "
            f"{max((n.get('CPU', 0) for n in nodes), default=0):g} CPUs and "
            f"{max((n.get('GPU', 0) for n in nodes), default=0):g} GPUs); lower "
            f"resources.cpus / resources.gpus, or add a node that has them")
    if shipped is not None:
        store = min(node.get("object_store_memory", 0) for node in able)
        if shipped.nbytes > OBJECT_STORE_SHARE * store:
            raise UserError(
                f"data.ship: dataset {shipped.name} ({shipped.nbytes / 2**20:.0f} MiB) does "
                f"not fit Ray's object store ({store / 2**20:.0f} MiB on the smallest node "
                f"that can run a trial; a shipped dataset may use "
                f"{OBJECT_STORE_SHARE:.0%}); give Ray more (`ray start "
                f"--object-store-memory BYTES`), or set data.ship: false and data.root to a "
                f"folder every node can read")
