"""Images/s of threshsearch's on-device batched data path against a torchvision DataLoader
with per-sample transforms, on the same CIFAR-shaped data (random crop with 4-pixel padding,
horizontal flip, normalisation, batch 128), measured side by side, interleaved, in one run.

    python benchmarks/data_pipeline.py [--images 10000] [--repeats 3] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.data import DataLoader, Dataset

from threshsearch.compat import torchvision
from threshsearch.data import Normalizer, batches, synthetic, training_augmentation


class _PerSample(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.transform(self.images[index]), self.labels[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()

    v2 = torchvision.transforms.v2
    dataset = replace(synthetic(train=args.images, val=10, test=10), crop_padding=4, flip=True)
    transform = v2.Compose([
        v2.RandomCrop(32, padding=4), v2.RandomHorizontalFlip(),
        v2.ToDtype(torch.float32, scale=True), v2.Normalize(dataset.mean, dataset.std),
    ])
    per_sample = _PerSample(dataset.train.images, dataset.train.labels, transform)
    generator = torch.Generator().manual_seed(0)
    augment = training_augmentation(dataset, generator)
    normalize = Normalizer(dataset)

    def ours() -> None:
        for images, _ in batches(dataset.train, 128, generator, augment):
            normalize(images)

    def loader(workers: int):
        def run() -> None:
            for _ in DataLoader(per_sample, batch_size=128, shuffle=True, num_workers=workers):
                pass
        return run

    pipelines = {"threshsearch (batched, on device)": ours}
    pipelines |= {f"DataLoader + v2 transforms, {w} workers": loader(w) for w in args.workers}
    times: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.repeats):
        for name, run in pipelines.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["threshsearch (batched, on device)"])
    print(f"{args.images} images of 32x32, batch 128, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<40} {args.images / median:>10.0f} images/s   "
              f"threshsearch is {median / base:5.1f}x faster")


if __name__ == "__main__":
    main()
