import pytest
import torch

from threshsearch.data import (
    DataError,
    Normalizer,
    Split,
    _split_off,
    batches,
    load_dataset,
    random_crop,
    random_flip,
    synthetic,
)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_digits_shapes_labels_and_split_sizes(digits):
    assert digits.num_classes == 10 and digits.input_size == 32
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1077, 360, 360)
    for split in (digits.train, digits.val, digits.test):
        assert split.images.dtype == torch.uint8
        assert split.images.shape[1:] == (3, 32, 32)
        assert split.labels.min() >= 0 and split.labels.max() <= 9
    assert digits.crop_padding == 0 and not digits.flip
    # stratified: every class present in every split in about the same share
    for split in (digits.val, digits.test):
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.min() >= 33 and counts.max() <= 38


def test_digits_are_the_same_every_time(digits):
    again = load_dataset("digits")
    assert torch.equal(again.val.images, digits.val.images)


def test_validation_is_carved_from_training_without_overlap():
    images = torch.arange(100).view(100, 1, 1, 1).to(torch.uint8).expand(100, 3, 2, 2)
    labels = torch.arange(100) % 10
    train, val = _split_off(images, labels, 20)
    train_ids = set(train.images[:, 0, 0, 0].tolist())
    val_ids = set(val.images[:, 0, 0, 0].tolist())
    assert len(val_ids) == 20 and len(train_ids) == 80
    assert not train_ids & val_ids
    assert torch.equal(train.labels, train.images[:, 0, 0, 0].long() % 10)


def test_random_crop_shifts_windows_of_the_padded_image():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(1, 255, (64, 3, 8, 8), dtype=torch.uint8)
    cropped = random_crop(images, 2, generator)
    assert cropped.shape == images.shape and cropped.dtype == torch.uint8
    assert not torch.equal(cropped, images)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for index in range(8):
        windows = [padded[index, :, top:top + 8, left:left + 8]
                   for top in range(5) for left in range(5)]
        assert any(torch.equal(cropped[index], window) for window in windows)


def test_random_flip_mirrors_some_images_exactly():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (64, 3, 4, 4), dtype=torch.uint8)
    flipped = random_flip(images, generator)
    mirrored = [torch.equal(a, b.flip(-1)) for a, b in zip(flipped, images, strict=True)]
    kept = [torch.equal(a, b) for a, b in zip(flipped, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 10 < sum(mirrored) < 54


def test_batches_cover_every_image_once():
    split = Split(torch.zeros(25, 3, 2, 2, dtype=torch.uint8), torch.arange(25))
    seen = torch.cat([labels for _, labels in batches(split, 7, torch.Generator())])
    assert sorted(seen.tolist()) == list(range(25))
    assert [len(labels) for _, labels in batches(split, 7)] == [7, 7, 7, 4]


def test_normalizer_centres_the_training_data():
    dataset = synthetic()
    x = Normalizer(dataset)(dataset.train.images)
    assert x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_unknown_dataset_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="expected one of cifar10"):
        load_dataset("mnist")
    with pytest.raises(DataError, match=r"cifar10: not found under .*cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_a_pickled_split_shares_its_memory_with_out_of_band_buffers():
    """What Ray's object store does with a shipped dataset: pickle protocol 5 with the
    arrays' buffers kept apart, read back without copying them (read-only), so trials on
    one node share one copy of the data."""
    import pickle

    import numpy as np

    from threshsearch.data import synthetic

    split = synthetic(train=40, val=10, test=10).train
    buffers = []
    payload = pickle.dumps(split, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == 2 and len(payload) < 1000, "the pixels travel out of band"
    shared = [np.frombuffer(buffer.raw(), dtype=np.uint8) for buffer in buffers]
    for array in shared:
        array.flags.writeable = False  # as the object store hands them out
    restored = pickle.loads(payload, buffers=shared)
    assert torch.equal(restored.images, split.images)
    assert torch.equal(restored.labels, split.labels)
    assert restored.images.data_ptr() == shared[0].ctypes.data, "no copy was made"
