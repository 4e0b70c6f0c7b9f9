"""What shipping a dataset through Ray's object store costs: the driver's ``ray.put`` and a
worker on another node fetching it (``ray.get``), for the digits dataset and for a synthetic
dataset of CIFAR-10's size (50,000 + 10,000 images of 3x32x32, uint8), on a two-node Ray
cluster started on this machine (``ray.cluster_utils.Cluster``: each node has its own object
store, so the fetch is a real transfer between nodes, over loopback).

    python benchmarks/data_shipping.py        # about a minute on 2 cores
"""

from __future__ import annotations

import statistics
import time

import torch

from threshsearch.data import ImageDataset, Split, load_dataset


def cifar_sized() -> ImageDataset:
    generator = torch.Generator().manual_seed(0)

    def split(count: int) -> Split:
        return Split(torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8,
                                   generator=generator),
                     torch.randint(0, 10, (count,), generator=generator))

    return ImageDataset("cifar10-sized", split(45_000), split(5_000), split(10_000), 10,
                        (0.5,) * 3, (0.25,) * 3, 4, True)


def main(repeats: int = 3) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)

    @ray.remote(num_cpus=1)
    def fetch(handle: list) -> tuple[float, str, int]:
        start = time.perf_counter()
        dataset = ray.get(handle[0])
        seconds = time.perf_counter() - start
        return seconds, ray.get_runtime_context().get_node_id(), len(dataset.train.labels)

    driver_node = ray.get_runtime_context().get_node_id()
    try:
        print("| dataset | size | ray.put on the driver | fetch on the other node | total |")
        print("|---|---|---|---|---|")
        for dataset in (load_dataset("digits"), cifar_sized()):
            puts, gets = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                ref = ray.put(dataset)
                puts.append(time.perf_counter() - start)
                seconds, node, count = ray.get(fetch.remote([ref]))
                assert node != driver_node and count == len(dataset.train.labels)
                gets.append(seconds)
                del ref
            totals = [p + g for p, g in zip(puts, gets, strict=True)]
            print(f"| {dataset.name} | {dataset.nbytes / 2**20:.1f} MiB | "
                  f"{_ms(puts)} | {_ms(gets)} | {_ms(totals)} |", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()


def _ms(values: list[float]) -> str:
    return (f"{1000 * statistics.median(values):.0f} ms "
            f"({1000 * min(values):.0f}-{1000 * max(values):.0f})")


if __name__ == "__main__":
    main()
