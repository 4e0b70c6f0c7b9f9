"""Image folders as datasets, read the way people really keep them: in torchvision
ImageFolder's layouts, with hidden and system entries, empty classes, broken links and
undecodable or oversized images found, listed and counted rather than read or crashed on.

Every entry under the root that does not become an image is listed in the dataset's
``skipped`` with its reason (a skipped folder stands for everything in it).
"""

from __future__ import annotations

import os
import stat
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from threshsearch.data import (
    SPLIT_SEED,
    DataError,
    ImageDataset,
    SkippedFile,
    Split,
    channel_stats,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FOLDER_VAL_FRACTION = 0.2  # of each class, held out for validation when there is no val/
MAX_IMAGE_PIXELS = 100_000_000  # width x height above which an image is skipped, unread
MAX_TEST_FRACTION = 0.5
# Folders and files that tools, not people, put beside images.
SYSTEM_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "$RECYCLE.BIN",
                          "System Volume Information", "lost+found"})
SPLIT_FOLDERS = ("train", "val", "test")
HIDDEN = "hidden or system"


def is_hidden_or_system(name: str) -> bool:
    return name.startswith(".") or name in SYSTEM_NAMES


def folder_classes(root: str | Path) -> list[str]:
    """The class names of an image folder: the subfolders of ``train/`` if there is one,
    else of the root, sorted, hidden and system folders left out. DataError when none."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root
    splits = [name for name in SPLIT_FOLDERS[1:] if (root / name).is_dir()]
    if base == root and splits:
        # Read as classes, val/ and test/ would be two classes of mixed images.
        raise DataError(f"dataset folder: {root} has {' and '.join(f'{s}/' for s in splits)} "
                        f"but no train/ beside it; expected {root}/train/<class>/<image>, or "
                        f"the class folders directly under {root} with no split folders")
    try:
        classes = sorted(p.name for p in base.iterdir()
                         if p.is_dir() and not is_hidden_or_system(p.name)) \
            if base.is_dir() else []
    except OSError as error:
        raise DataError(f"dataset folder: cannot read {base}: {error.strerror}") from None
    if not classes:
        raise DataError(f"dataset folder: no class folders under {base} (expected "
                        f"{root}/<class>/<image> or {root}/train/<class>/<image> with "
                        f"{root}/val/<class>/<image>)")
    return classes


def _file_problem(path: str) -> str | None:
    """Why the file at ``path`` is no image to read; None when it may be one."""
    name = os.path.basename(path)
    if is_hidden_or_system(name):
        return f"{HIDDEN} file"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "broken link" if os.path.islink(path) else "vanished while read"
    except OSError as error:
        return f"unreadable: {error.strerror}"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return f"not an image file (expected {', '.join(IMAGE_SUFFIXES)})"
    return None


def _class_files(folder: Path, skipped: list[SkippedFile]) -> list[str]:
    """The candidate image files under one class folder, sorted; the rest go to skipped."""
    found = []
    for parent, folders, files in os.walk(folder, onerror=lambda error: skipped.append(
            SkippedFile(str(error.filename), f"unreadable folder: {error.strerror}"))):
        kept = []
        for name in sorted(folders):
            path = os.path.join(parent, name)
            if is_hidden_or_system(name):
                skipped.append(SkippedFile(path, f"{HIDDEN} folder, not read"))
            elif os.path.islink(path):
                skipped.append(SkippedFile(path, "link to a folder, not followed"))
            else:
                kept.append(name)
        folders[:] = kept
        for name in sorted(files):
            path = os.path.join(parent, name)
            problem = _file_problem(path)
            if problem:
                skipped.append(SkippedFile(path, problem))
            else:
                found.append(path)
    return found


def _decode(path: str, size: int, max_pixels: int) -> np.ndarray | str:
    """The image at ``path`` as size x size RGB pixels, or why it cannot be."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # The pixel limit is checked here, on the header, before any pixel is decoded.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    return f"oversized: {width}x{height} pixels > the limit of {max_pixels}"
                pixels = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
                return np.asarray(pixels, dtype=np.uint8)
    except Image.DecompressionBombError as error:  # PIL's own limit, before any pixel
        return f"oversized: {error}"
    except Exception as error:  # a decoder fails in many ways on a broken file
        return f"undecodable: {type(error).__name__}: {' '.join(str(error).split())[:200]}"


def _read_split(folder: Path, classes: list[str], size: int, max_pixels: int,
                skipped: list[SkippedFile]) -> Split:
    """Every image under ``folder/<class>/``; DataError naming the classes left empty."""
    images, labels = [], []
    try:
        entries = sorted(os.listdir(folder))
    except OSError as error:
        raise DataError(f"dataset folder: cannot read {folder}: {error.strerror}") from None
    for entry in entries:
        path = folder / entry
        if entry in classes:
            continue
        if is_hidden_or_system(entry):
            skipped.append(SkippedFile(str(path), f"{HIDDEN} "
                                       f"{'folder, not read' if path.is_dir() else 'file'}"))
        elif path.is_dir():
            skipped.append(SkippedFile(str(path), "a class folder that train/ does not have, "
                                                  "not read"))
        elif path.is_symlink() and not path.exists():
            skipped.append(SkippedFile(str(path), "broken link"))
        else:
            skipped.append(SkippedFile(str(path), "not in a class folder"))
    empty = []
    for label, name in enumerate(classes):
        count = len(labels)
        if (folder / name).is_dir():
            for path in _class_files(folder / name, skipped):
                pixels = _decode(path, size, max_pixels)
                if isinstance(pixels, str):
                    skipped.append(SkippedFile(path, pixels))
                else:
                    images.append(pixels)
                    labels.append(label)
        if len(labels) == count:
            empty.append(name)
    if empty:
        raise DataError(f"dataset folder: no readable image in class folders "
                        f"{', '.join(empty)} under {folder} (formats "
                        f"{', '.join(IMAGE_SUFFIXES)}); add images or remove those folders")
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Split(stacked, torch.tensor(labels, dtype=torch.long))


def _hold_out(split: Split, classes: list[str], fractions: tuple[float, ...], folder: Path
              ) -> list[Split]:
    """``split`` less a fixed random share of each class per fraction, then those shares:
    [rest, share 1, share 2, ...]. At least one image of each class goes to each share."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    part = torch.zeros(len(split), dtype=torch.long)  # 0: rest, i: the i-th share
    short = []
    for label, name in enumerate(classes):
        members = torch.nonzero(split.labels == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        counts = [max(1, round(fraction * len(members))) for fraction in fractions]
        if sum(counts) >= len(members):
            short.append(f"{name} ({len(members)})")
            continue
        start = 0
        for index, count in enumerate(counts, start=1):
            part[members[start:start + count]] = index
            start += count
    if short:
        raise DataError(f"dataset folder: too few images under {folder} to split off "
                        f"validation and test images and keep one to train on, in class "
                        f"folders {', '.join(short)}; add images to them")
    return [Split(split.images[part == index], split.labels[part == index])
            for index in range(len(fractions) + 1)]


def image_folder(root: str | Path, size: int = 32, test_fraction: float = 0.0,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> ImageDataset:
    """Your own images, in the layout torchvision's ImageFolder reads: ``train/<class>/`` and
    ``val/<class>/`` (and ``test/<class>/``), or ``<class>/`` alone, of which a fixed
    ``FOLDER_VAL_FRACTION`` of each class (seed ``SPLIT_SEED``) is held out for validation.
    With no ``test/`` folder, ``test_fraction`` of each class of the training images is held
    out as the test split; 0 makes the test split the validation split (the dataset says
    so). Images are converted to RGB and resized to ``size`` x ``size`` once; what is not
    read is listed in ``skipped`` with its reason."""
    root = Path(root)
    if not 0 <= test_fraction < MAX_TEST_FRACTION:
        raise DataError(f"dataset folder: test_fraction {test_fraction!r} is invalid; "
                        f"expected 0 <= x < {MAX_TEST_FRACTION}")
    classes = folder_classes(root)
    skipped: list[SkippedFile] = []
    layout = (root / "train").is_dir()
    if layout and not (root / "val").is_dir():
        raise DataError(f"dataset folder: {root}/train/ has no {root}/val/ beside it; "
                        f"add one, or put the class folders directly under {root}")
    if layout and (root / "test").is_dir() and test_fraction:
        raise DataError(f"dataset folder: test_fraction {test_fraction:g} holds out nothing: "
                        f"{root} has its own test split in {root}/test/; set it to 0")
    fractions = (test_fraction,) if test_fraction else ()
    if layout:
        for entry in sorted(os.listdir(root)):
            if entry not in SPLIT_FOLDERS:
                skipped.append(SkippedFile(str(root / entry),
                                           "not part of the train/, val/, test/ layout"))
        train = _read_split(root / "train", classes, size, max_pixels, skipped)
        val = _read_split(root / "val", classes, size, max_pixels, skipped)
        if (root / "test").is_dir():
            test = _read_split(root / "test", classes, size, max_pixels, skipped)
            source = f"the test/ folder under {root}"
        elif fractions:
            train, test = _hold_out(train, classes, fractions, root / "train")
    else:
        every = _read_split(root, classes, size, max_pixels, skipped)
        train, val, *held = _hold_out(every, classes, (FOLDER_VAL_FRACTION, *fractions), root)
        test = held[0] if held else None
    if fractions:
        source = f"held out: {test_fraction:g} of each class (data.test_fraction)"
    elif not (layout and (root / "test").is_dir()):
        test = val
        source = ("the validation split: no test/ folder and data.test_fraction 0, so test "
                  "accuracy is measured on the images that chose the network")
    mean, std = channel_stats(train.images)
    return ImageDataset("folder", train, val, test, num_classes=len(classes), mean=mean,
                        std=std, crop_padding=size // 8, flip=True, skipped=tuple(skipped),
                        test_split=source, test_is_validation=test is val)


def skipped_summary(skipped: tuple[SkippedFile, ...]) -> str:
    """How many entries were skipped, by reason: '3 skipped (2 undecodable, 1 broken link)'."""
    reasons = Counter(item.reason.split(":")[0].split(",")[0] for item in skipped)
    return (f"{len(skipped)} skipped (" + ", ".join(f"{count} {reason}" for reason, count
                                                 in reasons.most_common()) + ")")
