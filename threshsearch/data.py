"""Datasets as uint8 tensors on the training device, with batched on-device augmentation.

Small image datasets fit in device memory whole, so each split is one ``uint8`` tensor
(N x 3 x H x W) and one label tensor. Random crops, flips and normalisation run on whole
batches on the device: no per-sample Python and no worker processes in the hot loop.
Every dataset carries a validation split carved from its training set with a fixed seed:
searches score on validation, and test accuracy is only reported after a full training.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from threshsearch.errors import UserError

SPLIT_SEED = 0  # fixes which training images form the validation split, for every run


class DataError(UserError):
    """A dataset that cannot be loaded: unknown name, missing files, failed download."""


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64, N

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.images.to(device), self.labels.to(device))

    def __reduce__(self) -> tuple:
        # As numpy arrays, which Ray's object store hands out without copying: the trials of
        # a node then share one read-only copy of a shipped dataset instead of one each.
        return (_split_from_arrays, (self.images.cpu().numpy(), self.labels.cpu().numpy()))


def _split_from_arrays(images: np.ndarray, labels: np.ndarray) -> Split:
    with warnings.catch_warnings():
        # Arrays from Ray's object store are read-only; nothing here writes to a split's
        # tensors (batches are gathered copies), so the tensors share their memory.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return Split(torch.from_numpy(images), torch.from_numpy(labels))


@dataclass(frozen=True)
class SkippedFile:
    """A file or folder of a dataset's folder that was not read, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        # Names are shown as they can be printed: a name's undecodable bytes escaped.
        return f"{self.path.encode('utf-8', 'backslashreplace').decode()}: {self.reason}"


@dataclass(frozen=True)
class ImageDataset:
    """Three splits plus what the batched pipeline needs to know about them."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...]  # per channel, in [0, 1]
    std: tuple[float, ...]
    crop_padding: int  # random-crop padding for training batches; 0: no crop
    flip: bool  # random horizontal flips for training batches
    skipped: tuple[SkippedFile, ...] = ()  # what a folder dataset did not read
    test_split: str = "the dataset's own test split"  # where the test images come from
    test_is_validation: bool = False  # test accuracy is measured on the validation split

    @property
    def input_size(self) -> int:
        return self.train.images.shape[-1]

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    @property
    def nbytes(self) -> int:
        return sum(split.images.nbytes + split.labels.nbytes
                   for split in (self.train, self.val, self.test))

    def to(self, device: torch.device | str) -> ImageDataset:
        val = self.val.to(device)
        return replace(self, train=self.train.to(device), val=val,
                       test=val if self.test_is_validation else self.test.to(device))


# --------------------------------------------------------------------- the hot path
def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut a random window of the original size, per image."""
    count, channels, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (count, 1), device=device, generator=generator)
    left = torch.randint(0, 2 * padding + 1, (count, 1), device=device, generator=generator)
    rows = (top + torch.arange(height, device=device))[:, None, :, None]
    cols = (left + torch.arange(width, device=device))[:, None, None, :]
    batch = torch.arange(count, device=device)[:, None, None, None]
    channel = torch.arange(channels, device=device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the images left to right."""
    flip = torch.rand(len(images), device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


class Normalizer:
    """uint8 -> float in one fused step: (x / 255 - mean) / std."""

    def __init__(self, dataset: ImageDataset, dtype: torch.dtype = torch.float32,
                 memory_format: torch.memory_format = torch.contiguous_format):
        shape = (1, -1, 1, 1)
        mean = torch.tensor(dataset.mean, device=dataset.device).view(shape)
        std = torch.tensor(dataset.std, device=dataset.device).view(shape)
        self.scale = (1 / (255 * std)).to(dtype)
        self.shift = (-mean / std).to(dtype)
        self.dtype = dtype
        self.memory_format = memory_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.dtype).mul_(self.scale).add_(self.shift)
        return x.contiguous(memory_format=self.memory_format)


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None,
            augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
            ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(uint8 images, labels) batches; shuffled when a generator is given. The last, smaller
    batch is kept so every image counts."""
    count = len(split)
    order = (torch.randperm(count, device=split.labels.device, generator=generator)
             if generator is not None else None)
    for start in range(0, count, batch_size):
        if order is None:
            images = split.images[start:start + batch_size]
            labels = split.labels[start:start + batch_size]
        else:
            index = order[start:start + batch_size]
            images, labels = split.images[index], split.labels[index]
        yield (augment(images) if augment else images), labels


def training_augmentation(dataset: ImageDataset, generator: torch.Generator
                          ) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if not dataset.crop_padding and not dataset.flip:
        return None

    def augment(images: torch.Tensor) -> torch.Tensor:
        if dataset.crop_padding:
            images = random_crop(images, dataset.crop_padding, generator)
        if dataset.flip:
            images = random_flip(images, generator)
        return images

    return augment


# ------------------------------------------------------------------------- loaders
def _split_off(images: torch.Tensor, labels: torch.Tensor, count: int) -> tuple[Split, Split]:
    """Carve ``count`` images (a fixed random choice) out of a training set."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val, train = order[:count], order[count:]
    return Split(images[train], labels[train]), Split(images[val], labels[val])


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = images.double() / 255
    return (tuple(x.mean(dim=(0, 2, 3)).tolist()),
            tuple(x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()))


def _digits() -> ImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 8x8 values 0..16 -> 32x32 uint8 on 3 channels, so the CIFAR-shaped networks take them.
    small = torch.from_numpy(digits.images).float().unsqueeze(1) / 16
    large = F.interpolate(small, size=32, mode="bilinear", align_corners=False)
    images = (large.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, 3, -1, -1).contiguous()
    labels = torch.from_numpy(digits.target).long()
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=0.2, stratify=digits.target,
                                  random_state=SPLIT_SEED)
    train, val = train_test_split(rest, test_size=0.25, stratify=digits.target[rest],
                                  random_state=SPLIT_SEED)
    splits = [Split(images[torch.from_numpy(part)], labels[torch.from_numpy(part)])
              for part in (train, val, test)]
    mean, std = channel_stats(splits[0].images)
    return ImageDataset("digits", *splits, num_classes=10, mean=mean, std=std,
                        crop_padding=0, flip=False)


def synthetic(num_classes: int = 10, size: int = 32, train: int = 300, val: int = 100,
              test: int = 100, seed: int = 0) -> ImageDataset:
    """Learnable noise: each class is a fixed, smooth random template (coarse colour blobs a
    small network tells apart within a few epochs) plus per-image noise. Sized by default
    for smoke runs and the tests' searches (300 training images: an epoch of a small
    network takes a fraction of a second on one core)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator)
    templates = F.interpolate(coarse, size=size, mode="bilinear", align_corners=False) * 160 + 48

    def make(count: int) -> Split:
        labels = torch.arange(count) % num_classes
        noise = torch.randn(count, 3, size, size, generator=generator) * 40
        images = (templates[labels] + noise).clamp(0, 255).round().to(torch.uint8)
        return Split(images, labels)

    splits = [make(count) for count in (train, val, test)]
    mean, std = channel_stats(splits[0].images)
    return ImageDataset("synthetic", *splits, num_classes=num_classes, mean=mean, std=std,
                        crop_padding=0, flip=False)


@dataclass(frozen=True)
class _TorchvisionSpec:
    cls_name: str
    expected: str  # what must be under the root, for the error message
    num_classes: int
    flip: bool
    split_kwargs: Callable[[bool], dict]


_TORCHVISION = {
    "cifar10": _TorchvisionSpec("CIFAR10", "cifar-10-batches-py/", 10, True,
                                lambda train: {"train": train}),
    "cifar100": _TorchvisionSpec("CIFAR100", "cifar-100-python/", 100, True,
                                 lambda train: {"train": train}),
    "svhn": _TorchvisionSpec("SVHN", "train_32x32.mat and test_32x32.mat", 10, False,
                             lambda train: {"split": "train" if train else "test"}),
}
VALIDATION_IMAGES = 5000


def _torchvision_split(name: str, root: Path, train: bool, download: bool):
    from threshsearch.compat import torchvision

    spec = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, spec.cls_name)
    try:
        return cls(str(root), download=False, **spec.split_kwargs(train))
    except RuntimeError:
        if not download:
            raise DataError(f"dataset {name}: not found under {root} (expected "
                            f"{spec.expected}); downloading is off") from None
    try:
        return cls(str(root), download=True, **spec.split_kwargs(train))
    except Exception as error:  # urllib, SSL, socket and checksum errors all end here
        raise DataError(
            f"dataset {name}: not found under {root} (expected {spec.expected}) and the "
            f"download failed ({type(error).__name__}: {error}); put the files there or "
            "run once with network access") from None


def _torchvision_dataset(name: str, root: Path, download: bool) -> ImageDataset:
    spec = _TORCHVISION[name]
    tensors = []
    for train in (True, False):
        raw = _torchvision_split(name, root, train, download)
        data = np.asarray(raw.data)
        images = torch.from_numpy(data if data.shape[1] == 3 else data.transpose(0, 3, 1, 2))
        labels = torch.as_tensor(np.asarray(raw.targets if hasattr(raw, "targets")
                                            else raw.labels))
        tensors.append((images.contiguous(), labels.long()))
    (train_images, train_labels), (test_images, test_labels) = tensors
    train_split, val_split = _split_off(train_images, train_labels, VALIDATION_IMAGES)
    mean, std = channel_stats(train_split.images)
    return ImageDataset(name, train_split, val_split, Split(test_images, test_labels),
                        num_classes=spec.num_classes, mean=mean, std=std, crop_padding=4,
                        flip=spec.flip)


DATASETS = ("cifar10", "cifar100", "svhn", "digits", "synthetic", "folder")
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "svhn": 10, "digits": 10, "synthetic": 10}
INPUT_SIZE = 32  # every dataset here is 32x32 (digits are scaled up to it)


def num_classes(name: str, root: str | Path = "data") -> int:
    """How many classes the dataset ``name`` has (for a folder, counted from its folders
    once per process: the driver may lose sight of the folder after loading it)."""
    return _folder_class_count(str(Path(root).resolve())) if name == "folder" \
        else NUM_CLASSES[name]


@cache
def _folder_class_count(root: str) -> int:
    from threshsearch.folders import folder_classes  # folders builds on this module

    return len(folder_classes(root))


def load_dataset(name: str, root: str | Path = "data", device: str | torch.device = "cpu",
                 download: bool = True, test_fraction: float = 0.0,
                 max_pixels: int | None = None) -> ImageDataset:
    """Load a dataset by name onto ``device``. ``root`` is where torchvision datasets live
    (downloaded there on first use) and what ``folder`` reads (see
    ``threshsearch.folders.image_folder``, which alone takes ``test_fraction`` and
    ``max_pixels``); digits and synthetic need no files."""
    if name == "digits":
        dataset = _digits()
    elif name == "folder":
        from threshsearch.folders import MAX_IMAGE_PIXELS, image_folder

        dataset = image_folder(root, INPUT_SIZE, test_fraction, max_pixels or MAX_IMAGE_PIXELS)
    elif name == "synthetic":
        dataset = synthetic()
    elif name in _TORCHVISION:
        dataset = _torchvision_dataset(name, Path(root), download)
    else:
        raise DataError(f"dataset: unknown dataset {name!r}; expected one of "
                        f"{', '.join(DATASETS)}")
    return dataset.to(device)
