"""Image folders as people really have them: hidden and system entries, empty classes,
undecodable and oversized images, broken links, and where the test split comes from."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from threshsearch.data import DataError, load_dataset


def save_image(path, value=100, size=(10, 12), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((*size, 3), value, dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path)


def make_classes(root, classes=("cat", "dog"), per_class=10):
    for label, name in enumerate(classes):
        for index in range(per_class):
            save_image(root / name / f"{index}.png", value=40 + 80 * label + index)


def reasons(dataset) -> dict[str, str]:
    return {os.path.basename(item.path): item.reason for item in dataset.skipped}


def test_hidden_and_system_entries_are_skipped_and_listed(tmp_path):
    make_classes(tmp_path)
    save_image(tmp_path / ".ipynb_checkpoints" / "0-checkpoint.png")
    save_image(tmp_path / "__MACOSX" / "cat" / "._0.png")
    save_image(tmp_path / "cat" / ".hidden.png")
    (tmp_path / "cat" / "Thumbs.db").write_bytes(b"\0" * 10)
    (tmp_path / "dog" / ".DS_Store").write_bytes(b"\0" * 10)
    (tmp_path / "notes.txt").write_text("not a class")
    dataset = load_dataset("folder", tmp_path)
    assert dataset.num_classes == 2, "only cat and dog are classes"
    assert len(dataset.train) + len(dataset.val) == 20
    skipped = reasons(dataset)
    for name in (".ipynb_checkpoints", "__MACOSX", ".hidden.png", "Thumbs.db", ".DS_Store"):
        assert "hidden or system" in skipped[name], name
    assert "not in a class folder" in skipped["notes.txt"]


def test_an_empty_class_is_refused_by_name(tmp_path):
    make_classes(tmp_path)
    (tmp_path / "bird").mkdir()
    (tmp_path / "fish").mkdir()
    (tmp_path / "fish" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no readable image in class folders bird, fish"):
        load_dataset("folder", tmp_path)


def test_undecodable_and_oversized_images_are_skipped_counted_and_listed(tmp_path):
    from threshsearch.folders import image_folder

    make_classes(tmp_path)
    (tmp_path / "cat" / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    whole = tmp_path / "full.png"
    save_image(whole, size=(40, 40))
    (tmp_path / "dog" / "truncated.png").write_bytes(whole.read_bytes()[:60])
    # A header claiming 20000 x 20000 pixels: PIL raises DecompressionBombError (not an
    # OSError) on opening it, before reading any pixel.
    Image.new("1", (20000, 20000)).save(tmp_path / "dog" / "bomb.png")
    save_image(tmp_path / "cat" / "large.png", size=(60, 60))
    whole.unlink()
    dataset = image_folder(tmp_path, max_pixels=50 * 50)
    skipped = reasons(dataset)
    assert set(skipped) == {"junk.png", "truncated.png", "bomb.png", "large.png"}
    assert "undecodable" in skipped["junk.png"] and "undecodable" in skipped["truncated.png"]
    assert skipped["bomb.png"].startswith("oversized: Image size (400000000 pixels)")
    assert "oversized: 60x60" in skipped["large.png"]
    assert len(dataset.train) + len(dataset.val) == 20


def test_broken_links_are_listed(tmp_path):
    make_classes(tmp_path)
    os.symlink(tmp_path / "nowhere.png", tmp_path / "cat" / "gone.png")
    os.symlink(tmp_path / "dog" / "0.png", tmp_path / "cat" / "linked.png")
    dataset = load_dataset("folder", tmp_path)
    assert reasons(dataset) == {"gone.png": "broken link"}
    assert len(dataset.train) + len(dataset.val) == 21, "a working link is read"


def test_without_a_test_folder_the_test_split_is_the_validation_split_and_says_so(tmp_path):
    make_classes(tmp_path)
    dataset = load_dataset("folder", tmp_path)
    assert dataset.test_is_validation
    assert torch.equal(dataset.test.images, dataset.val.images)
    assert "validation" in dataset.test_split and "test_fraction" in dataset.test_split


def test_a_test_fraction_holds_out_a_test_split_of_each_class(tmp_path):
    make_classes(tmp_path, per_class=20)
    dataset = load_dataset("folder", tmp_path, test_fraction=0.25)
    assert not dataset.test_is_validation
    assert torch.bincount(dataset.test.labels).tolist() == [5, 5]
    assert torch.bincount(dataset.val.labels).tolist() == [4, 4]
    assert len(dataset.train) == 40 - 10 - 8
    seen = [set(split.images[:, 0, 0, 0].tolist())
            for split in (dataset.train, dataset.val, dataset.test)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    again = load_dataset("folder", tmp_path, test_fraction=0.25)
    assert torch.equal(again.test.images, dataset.test.images), "a fixed seed"


def test_a_test_fraction_comes_out_of_train_beside_val(tmp_path):
    make_classes(tmp_path / "train", per_class=20)
    make_classes(tmp_path / "val", per_class=3)
    dataset = load_dataset("folder", tmp_path, test_fraction=0.1)
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (36, 6, 4)
    assert not dataset.test_is_validation


def test_a_test_fraction_beside_a_test_folder_is_refused(tmp_path):
    for split in ("train", "val", "test"):
        make_classes(tmp_path / split, per_class=2)
    assert not load_dataset("folder", tmp_path).test_is_validation
    with pytest.raises(DataError, match=r"test_fraction 0\.2 .* has its own .*test/"):
        load_dataset("folder", tmp_path, test_fraction=0.2)


def test_split_folders_without_train_are_refused_not_read_as_classes(tmp_path):
    make_classes(tmp_path / "val", per_class=2)
    make_classes(tmp_path / "test", per_class=2)
    with pytest.raises(DataError, match=r"has val/ and test/ but no train/ beside it"):
        load_dataset("folder", tmp_path)


def test_a_folder_it_may_not_read_is_one_line_naming_it(tmp_path, monkeypatch):
    from pathlib import Path

    make_classes(tmp_path)
    real_iterdir = Path.iterdir

    def closed(path):
        if path == tmp_path:
            raise PermissionError(13, "Permission denied", str(path))
        return real_iterdir(path)

    monkeypatch.setattr(Path, "iterdir", closed)  # root reads every folder: pretend not
    with pytest.raises(DataError, match=f"cannot read {tmp_path}: Permission denied"):
        load_dataset("folder", tmp_path)
