"""Tests for keras_ae.data: every source format, name resolution, splits, pipelines and bad input."""

import gzip
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from keras_ae import data
from keras_ae.errors import DataError



def shared_datasets() -> Path:
    """The shared data folder: an entry of $KERAS_AE_DATA holding mnist-small, else shared/ beside the repo."""
    for entry in os.environ.get(data.DATA_ENV, "").split(os.pathsep):
        if entry and (Path(entry) / "mnist-small").is_dir():
            return Path(entry)
    return Path(__file__).parents[2] / "shared" / "datasets"


SHARED = shared_datasets()
MNIST_SMALL = SHARED / "mnist-small"
needs_mnist_small = pytest.mark.skipif(
    not (MNIST_SMALL / "train-images-idx3-ubyte.gz").is_file(), reason="shared mnist-small not present"
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No $KERAS_AE_DATA and an empty working directory, so only what a test sets up is found."""
    monkeypatch.delenv(data.DATA_ENV, raising=False)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


# ---------------------------------------------------------------- writers


def write_idx(path: Path, array: np.ndarray, magic: int | None = None, extra: bytes = b"") -> Path:
    """An IDX file (gzip when the name ends in .gz) holding `array` as unsigned bytes."""
    header = struct.pack(">I", magic if magic is not None else 0x800 | array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes() + extra
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path


def coded_images(count: int, size: int = 4) -> np.ndarray:
    """(count, size, size) uint8 images whose first two pixels encode the image's index."""
    images = np.full((count, size, size), 7, dtype=np.uint8)
    images[:, 0, 0] = np.arange(count) % 256
    images[:, 0, 1] = np.arange(count) // 256
    return images


def image_ids(split: data.ArraySplit) -> np.ndarray:
    """The indices encoded by coded_images (works on uint8 images)."""
    return split.images[:, 0, 0, 0].astype(int) + 256 * split.images[:, 0, 1, 0].astype(int)


def write_idx_folder(folder: Path, train: int, test: int | None, suffix: str = ".gz", classes: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        if count is not None:
            write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", coded_images(count))
            write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(count) % classes)
    return folder


def write_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


# ---------------------------------------------------------------- sources


def test_known_datasets_lists_digits_and_tfds_names():
    names = data.known_datasets()
    assert names[0] == "digits"
    assert {"mnist", "fashion_mnist", "cifar10"} <= set(names)


def test_digits_are_scaled_8x8_with_ten_classes():
    splits = data.load("digits")
    assert splits.source == "sklearn digits"
    assert splits.image_shape == (8, 8, 1)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (1437, 180, 180)
    assert splits.num_classes == 10
    everything = np.concatenate([splits.train.images, splits.validation.images, splits.test.images])
    assert everything.dtype == np.float32
    assert everything.min() == 0.0 and everything.max() == 1.0
    assert set(np.unique(everything * 16)) <= set(range(17))  # exactly the 0..16 grid, divided by 16
    assert splits.train.labels.dtype == np.int64
    assert set(splits.train.labels) == set(range(10))


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_folder_with_test_split(tmp_path, suffix):
    folder = write_idx_folder(tmp_path / "mine", train=50, test=12, suffix=suffix)
    splits = data.load(str(folder), validation_fraction=0.2)
    assert splits.source == f"idx folder {folder}"
    assert splits.image_shape == (4, 4, 1)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 10, 12)
    assert splits.train.images.dtype == np.uint8
    assert splits.num_classes == 3
    assert sorted(np.concatenate([image_ids(splits.train), image_ids(splits.validation)])) == list(range(50))
    assert list(image_ids(splits.test)) == list(range(12))  # the source's own test split, in order
    for part in (splits.train, splits.validation, splits.test):
        assert np.array_equal(part.labels, image_ids(part) % 3)  # labels stay with their images
        assert np.all(part.images[:, 1:] == 7)


def test_idx_folder_without_test_split_carves_one(tmp_path):
    folder = write_idx_folder(tmp_path / "mine", train=40, test=None)
    splits = data.load(str(folder), validation_fraction=0.25, test_fraction=0.25)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (20, 10, 10)
    ids = np.concatenate([image_ids(splits.train), image_ids(splits.validation), image_ids(splits.test)])
    assert sorted(ids) == list(range(40))


def test_single_idx_file_uses_sibling_labels(tmp_path):
    folder = write_idx_folder(tmp_path / "mine", train=30, test=None, suffix="")
    splits = data.load(str(folder / "train-images-idx3-ubyte"))
    assert splits.source.startswith("idx file ")
    assert sum(map(len, (splits.train, splits.validation, splits.test))) == 30
    assert np.array_equal(splits.train.labels, image_ids(splits.train) % 3)


@needs_mnist_small
def test_real_mnist_small():
    splits = data.load(str(MNIST_SMALL))
    assert splits.image_shape == (28, 28, 1)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (6300, 700, 1000)
    assert splits.num_classes == 10
    assert splits.train.images.dtype == np.uint8
    assert splits.train.images.max() == 255 and splits.train.images.min() == 0
    assert 0.05 < splits.test.images.mean() / 255 < 0.25  # mostly black digits, not noise
    assert set(splits.test.labels) == set(range(10))


@needs_mnist_small
def test_mnist_name_resolves_to_mnist_small_via_env(monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, os.pathsep.join(["/nonexistent-root", str(SHARED)]))
    splits = data.load("mnist", limit=100)
    assert splits.source == f"idx folder {MNIST_SMALL}"
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (100, 100, 100)
    assert splits.num_classes == 10


def test_data_dir_resolution_order(tmp_path):
    root = tmp_path / "root"
    write_idx_folder(root / "toy-small", train=20, test=None)
    np.savez(root / "toy.npz", x=coded_images(30))
    assert data.load("toy", data_dir=str(root)).source == f"npz {root / 'toy.npz'}"  # <name>.npz before <name>-*
    assert data.load("toy-small", data_dir=str(root)).source == f"idx folder {root / 'toy-small'}"
    (root / "toy.npz").unlink()
    assert data.load("toy", data_dir=str(root)).source == f"idx folder {root / 'toy-small'}"
    # data_dir itself may be the IDX folder, whatever the name
    assert data.load("anything", data_dir=str(root / "toy-small")).source == f"idx folder {root / 'toy-small'}"


def test_npz_keras_layout(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(
        path, x_train=coded_images(40), y_train=np.arange(40) % 5, x_test=coded_images(10), y_test=np.arange(10) % 5
    )
    splits = data.load(str(path))
    assert splits.source == f"npz {path}"
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (36, 4, 10)
    assert splits.num_classes == 5
    assert splits.image_shape == (4, 4, 1)
    assert np.array_equal(splits.train.labels, image_ids(splits.train) % 5)


def test_a_published_validation_split_is_kept_not_carved(tmp_path):
    """binarized_mnist's layout: x_valid is the validation split, whole and in order; train loses nothing."""
    path = tmp_path / "binarized.npz"
    ids = coded_images(60)
    np.savez(path, x_train=ids[:40], x_valid=ids[40:50], x_test=ids[50:])
    splits = data.load(str(path), validation_fraction=0.5, seed=3)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (40, 10, 10)
    assert list(image_ids(splits.validation)) == list(range(40, 50))
    assert sorted(image_ids(splits.train)) == list(range(40))
    np.savez(path, x_train=ids[:40], y_train=np.arange(40) % 5, x_valid=ids[40:50], x_test=ids[50:],
             y_test=np.arange(10) % 5)
    with pytest.raises(DataError, match="labels for only one of train and validation"):
        data.load(str(path))
    np.savez(path, x_train=ids[:40], x_valid=coded_images(10, size=5), x_test=ids[50:])
    with pytest.raises(DataError, match=r"validation images are \(5, 5, 1\)"):
        data.load(str(path))


def test_npz_images_layout_float_rgb_and_column_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((20, 6, 5, 3))
    path = tmp_path / "colour.npz"
    np.savez(path, images=images, labels=(np.arange(20) % 2).reshape(20, 1))
    splits = data.load(str(path), validation_fraction=0, test_fraction=0.5)
    assert splits.image_shape == (6, 5, 3)
    assert splits.train.images.dtype == np.float32
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (10, 0, 10)
    assert splits.num_classes == 2 and splits.train.labels.shape == (10,)
    originals = {img.astype(np.float32).tobytes(): label for img, label in zip(images, np.arange(20) % 2)}
    for img, label in zip(splits.test.images, splits.test.labels):
        assert originals[img.tobytes()] == label


def test_npz_unlabelled(tmp_path):
    np.savez(tmp_path / "plain.npz", x=coded_images(10))
    splits = data.load(str(tmp_path / "plain.npz"))
    assert splits.num_classes is None and splits.train.labels is None


def test_image_folder_with_class_subfolders(tmp_path):
    folder = tmp_path / "shapes"
    for name, value in (("circle", 10), ("square", 200)):
        for i in range(5):
            write_png(folder / name / f"{i}.png", np.full((6, 7), value + i, dtype=np.uint8))
    splits = data.load(str(folder), validation_fraction=0.2, test_fraction=0.2)
    assert splits.source == f"image folder {folder}"
    assert splits.image_shape == (6, 7, 1)
    assert splits.num_classes == 2
    for part in data.SPLITS:
        images, labels = splits.arrays(part)  # decoded from the files only now
        assert images.dtype == np.float32 and images.shape[1:] == (6, 7, 1)
        assert np.array_equal(labels, (images[:, 0, 0, 0] >= 200 / 255).astype(np.int64))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (6, 2, 2)


def test_image_folder_unlabelled_rgb_resized(tmp_path):
    folder = tmp_path / "photos"
    write_png(folder / "a.png", np.full((10, 20, 3), 255, dtype=np.uint8))
    write_png(folder / "b.png", np.zeros((16, 8, 3), dtype=np.uint8))
    write_png(folder / "c.png", np.full((5, 5, 3), 128, dtype=np.uint8))
    splits = data.load(str(folder), image_size=(4, 6), validation_fraction=0, test_fraction=0)
    assert splits.image_shape == (4, 6, 3)
    assert splits.train.labels is None and splits.num_classes is None
    assert sorted(round(img.mean() * 255) for img in splits.arrays("train")[0]) == [0, 128, 255]


def test_image_size_resizes_arrays_too():
    splits = data.load("digits", image_size=(16, 16), limit=20)
    assert splits.image_shape == (16, 16, 1)
    images = np.concatenate([splits.train.images, splits.validation.images, splits.test.images])
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1


def test_tfds_path_offline_with_mock_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []
    real_load = tfds.load

    def spy(name, **kwargs):
        calls.append((name, kwargs.get("split"), kwargs.get("download")))
        return real_load(name, **kwargs)

    monkeypatch.setattr(tfds, "load", spy)
    empty = tmp_path / "empty"
    empty.mkdir()
    with tfds.testing.mock_data(num_examples=30):
        splits = data.load("mnist", data_dir=str(empty), validation_fraction=0.2)
    assert calls[0] == ("mnist", "train", False)  # prepared data first, no download
    assert ("mnist", "test", False) in calls
    assert splits.source == "tfds:mnist"
    assert splits.image_shape == (28, 28, 1)
    assert splits.num_classes == 10  # from the ClassLabel feature, not the random labels
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (24, 6, 30)
    assert not splits.train.in_memory  # a stream from TFDS, never converted to one array
    images, labels = splits.arrays("train")
    assert images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1 and images.max() > 0.5
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 10


def test_binarized_mnist_is_a_named_tfds_dataset_of_zeros_and_ones(tmp_path):
    """TFDS stores binarized_mnist's fixed binarization as uint8 0/1; the pipeline gives pixels 0.0 and 1.0
    (not 1/255), with its own train/validation/test (offline, mock data)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    empty = tmp_path / "empty"
    empty.mkdir()
    with tfds.testing.mock_data(num_examples=20):
        splits = data.load("binarized_mnist", data_dir=str(empty), validation_fraction=0.25)
    assert "binarized_mnist" in data.known_datasets() and splits.source == "tfds:binarized_mnist"
    images = splits.arrays("train")[0]
    assert splits.image_shape == (28, 28, 1) and set(np.unique(images)) == {0.0, 1.0}
    assert not splits.train.has_labels


def test_nothing_available_lists_every_place(tmp_path, monkeypatch):
    constants = pytest.importorskip("tensorflow_datasets").core.constants
    monkeypatch.setattr(constants, "DATA_DIR", str(tmp_path / "tfds"))  # no prepared TFDS data
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(data.DATA_ENV, str(tmp_path / "env-root"))
    with pytest.raises(DataError) as caught:
        data.load("mnist", data_dir=str(empty), download=False)
    message = str(caught.value)
    assert "\n" not in message
    assert str(empty) in message and str(tmp_path / "env-root") in message
    assert "tfds:mnist prepared data" in message
    assert "$KERAS_AE_DATA/mnist" in message and "--data-dir" in message


def test_unknown_name_says_unknown_and_lists_known():
    with pytest.raises(DataError, match=r"unknown dataset 'no_such_set_xyz'; known: digits, mnist"):
        data.load("no_such_set_xyz")


# ---------------------------------------------------------------- splits


def write_coded_npz(tmp_path: Path, count: int = 300) -> str:
    path = tmp_path / "coded.npz"
    np.savez(path, x=coded_images(count), y=np.arange(count) % 4)
    return str(path)


def all_ids(splits: data.DataSplits) -> list[np.ndarray]:
    return [image_ids(part) for part in (splits.train, splits.validation, splits.test)]


def test_splits_are_disjoint_complete_and_seeded(tmp_path):
    path = write_coded_npz(tmp_path)
    first = all_ids(data.load(path, seed=3))
    assert [len(ids) for ids in first] == [240, 30, 30]
    assert sorted(np.concatenate(first)) == list(range(300))  # no overlap, nothing lost
    again = all_ids(data.load(path, seed=3))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = all_ids(data.load(path, seed=4))
    assert not np.array_equal(first[1], other[1])


def test_limit_caps_every_split(tmp_path):
    splits = data.load(write_coded_npz(tmp_path), limit=7)
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (7, 7, 7)
    full = data.load(write_coded_npz(tmp_path))
    assert np.array_equal(splits.train.images, full.train.images[:7])


# ---------------------------------------------------------------- pipelines


def first_batches(ds, count=3):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(count)]


def test_pipeline_is_deterministic_and_float(tmp_path):
    splits = data.load(write_coded_npz(tmp_path))
    one = first_batches(splits.pipeline("train", 32, seed=5))
    two = first_batches(splits.pipeline("train", 32, seed=5))
    other = first_batches(splits.pipeline("train", 32, seed=6))
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(one, two))
    assert not np.array_equal(one[0][1], other[0][1])
    images, labels = one[0]
    assert images.shape == (32, 4, 4, 1) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert np.allclose(images[:, 1:], 7 / 255)  # uint8 7 -> 7/255
    assert labels.dtype == np.int64
    # labels stay with their images through shuffling and conversion
    ids = np.round(images[:, 0, 0, 0] * 255).astype(int) + 256 * np.round(images[:, 0, 1, 0] * 255).astype(int)
    assert np.array_equal(labels, ids % 4)


def test_pipeline_order_and_options(tmp_path):
    splits = data.load(write_coded_npz(tmp_path))
    test = [batch for batch in splits.pipeline("test", 8, labels=False)]
    assert [b.shape[0] for b in test] == [8, 8, 8, 6]  # not shuffled, last batch kept
    assert np.allclose(np.concatenate([b.numpy() for b in test]), splits.arrays("test")[0])
    kept = list(splits.pipeline("validation", 8, drop_remainder=True))
    assert [b[0].shape[0] for b in kept] == [8, 8, 8]
    ds = splits.pipeline("train", 240)
    epoch1, epoch2 = (next(iter(ds))[1].numpy() for _ in range(2))
    assert not np.array_equal(epoch1, epoch2)  # reshuffled each epoch
    # no autotuner thread: dropping its iterator at an epoch's end stalled fit up to 2.5 s (BENCHMARKS.md)
    assert ds.options().autotune.enabled is False


def test_shifted_training_images_are_moved_copies_with_their_labels_moved_anew_each_epoch():
    splits = data.load("digits", seed=0)
    plain = first_batches(splits.pipeline("train", 64, shuffle=False), 1)[0]
    ds = splits.pipeline("train", 64, shuffle=False, shift=2, seed=3)
    epoch1, epoch2 = (first_batches(ds, 1)[0] for _ in range(2))
    assert np.array_equal(epoch1[1], plain[1])  # the labels stay with their images
    padded = np.pad(plain[0], ((0, 0), (2, 2), (2, 2), (0, 0)))
    offsets = []
    for moved, source in zip(epoch1[0], padded):
        found = [(r, c) for r in range(5) for c in range(5) if np.array_equal(source[r:r + 8, c:c + 8], moved)]
        assert found, "every image is its original moved by at most 2 pixels, the border zero"
        offsets.append(found[0])
    assert len(set(offsets)) > 10  # moved by many different amounts
    assert not np.array_equal(epoch1[0], epoch2[0])  # and anew every epoch
    again = first_batches(splits.pipeline("train", 64, shuffle=False, shift=2, seed=3), 1)[0]
    assert np.array_equal(again[0], epoch1[0])  # the same for the same seed
    with pytest.raises(DataError, match="a shift of 8 pixels leaves nothing of its 8x8 images"):
        splits.pipeline("train", 64, shift=8)


def test_pipeline_unlabelled_yields_images_alone(tmp_path):
    np.savez(tmp_path / "plain.npz", x=coded_images(20))
    batch = next(iter(data.load(str(tmp_path / "plain.npz")).pipeline("train", 4)))
    assert batch.shape == (4, 4, 4, 1) and batch.dtype.name == "float32"


def test_pipeline_errors():
    splits = data.load("digits", limit=10, validation_fraction=0)
    with pytest.raises(DataError, match=r"batch_size 64 .* 10 images of the train split"):
        splits.pipeline("train", 64)
    with pytest.raises(DataError, match="batch_size must be an integer >= 1, got 0"):
        splits.pipeline("train", 0)
    with pytest.raises(DataError, match=r"validation split is empty \(validation_fraction was 0\)"):
        splits.pipeline("validation", 4)
    with pytest.raises(DataError, match="unknown split 'dev'"):
        splits.pipeline("dev", 4)


# ---------------------------------------------------------------- bad input


def bad_idx_folder(tmp_path, **replace):
    """An IDX folder whose file `name` is replaced by the given bytes or array writer."""
    folder = write_idx_folder(tmp_path / "bad", train=10, test=None)
    for name, content in replace.items():
        target = folder / f"{name.replace('_', '-')}.gz"
        content(target) if callable(content) else target.write_bytes(content)
    return str(folder)


# case -> (writes the bad data and returns the name to load, text(s) the error message must contain)
BAD_INPUTS = {
    "truncated idx": (
        lambda t: bad_idx_folder(
            t, train_images_idx3_ubyte=gzip.compress(struct.pack(">IIII", 0x803, 7000, 28, 28) + bytes(1200))
        ),
        "train-images-idx3-ubyte.gz: truncated: header says 7000x28x28 = 5488000 bytes, file has 1200",
    ),
    "trailing bytes": (
        lambda t: bad_idx_folder(t, train_images_idx3_ubyte=lambda p: write_idx(p, coded_images(10), extra=b"xx")),
        "train-images-idx3-ubyte.gz: trailing bytes",
    ),
    "wrong magic": (
        lambda t: bad_idx_folder(t, train_images_idx3_ubyte=lambda p: write_idx(p, coded_images(10), magic=2049)),
        "train-images-idx3-ubyte.gz: bad magic 0x00000801, expected 0x00000803",
    ),
    "corrupt gzip": (
        lambda t: bad_idx_folder(t, train_labels_idx1_ubyte=b"\x1f\x8b\x08\x00garbage-not-deflate"),
        "train-labels-idx1-ubyte.gz: cannot read (corrupt gzip",
    ),
    "count mismatch": (
        lambda t: bad_idx_folder(t, train_labels_idx1_ubyte=lambda p: write_idx(p, np.zeros(9))),
        "train-labels-idx1-ubyte.gz: 9 labels but train-images-idx3-ubyte.gz has 10 images",
    ),
    "npz nan": (
        lambda t: save_npz(t / "nan.npz", x=np.array([[[np.nan, 0.5]], [[np.inf, 0.1]], [[0.2, 0.3]]])),
        "nan.npz: 'x' has 2 NaN/inf values",
    ),
    "npz out of range": (
        lambda t: save_npz(t / "range.npz", x_train=np.linspace(-1, 255, 32).reshape(2, 4, 4)),
        "range.npz: 'x_train' is float with min -1 and max 255, outside [0, 1]",
    ),
    "corrupt npz": (
        lambda t: write_bytes(t / "broken.npz", b"PK\x03\x04 this is not a zip archive"),
        "broken.npz: not a readable .npz archive",
    ),
    "object npz": (
        lambda t: save_npz(t / "objects.npz", x=np.array([None, 1], dtype=object)),
        "objects.npz: cannot read array 'x'",
    ),
    "npz label mismatch": (
        lambda t: save_npz(t / "labels.npz", x=coded_images(5), y=np.arange(4)),
        "labels.npz: 'y' has 4 labels for 5 images",
    ),
    "empty dataset": (
        lambda t: save_npz(t / "none.npz", x=np.zeros((0, 28, 28), dtype=np.uint8)),
        "none.npz: 'x' holds no images",
    ),
    "mixed image sizes": (
        lambda t: image_folder(t, ("a.png", np.zeros((4, 4), np.uint8)), ("b.png", np.zeros((5, 4), np.uint8))),
        "b.png: image is 5x4 but the first image is 4x4; pass --image-size HxW",
    ),
    "huge image header": (
        lambda t: image_folder(t, ("a.png", np.zeros((4, 4), np.uint8)),
                               ("b.png", png_claiming(100_000, 100_000))),
        "b.png: image of 100000x100000 pixels, over the 67108864 a decoder may take",
    ),
    "unreadable image": (
        lambda t: image_folder(t, ("a.png", np.zeros((4, 4), np.uint8)), ("b.png", b"not a png")),
        "b.png: unreadable image",
    ),
    "empty folder": (lambda t: mkdir(t / "nothing-here"), "nothing-here: empty folder"),
    "missing folder": (lambda t: str(t / "not-there"), "not-there: no such file or folder"),
}


def save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def write_bytes(path: Path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def mkdir(path: Path) -> str:
    path.mkdir()
    return str(path)


def image_folder(tmp_path: Path, *files) -> str:
    folder = tmp_path / "pictures"
    for name, content in files:
        if isinstance(content, np.ndarray):
            write_png(folder / name, content)
        else:
            write_bytes(folder / name, content)
    return str(folder)


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header (and nothing to decode) that claims width x height pixels."""
    import zlib
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def read_everything(name: str) -> None:
    """Load a dataset and decode every image of every split (image folders are read only when streamed)."""
    splits = data.load(name, validation_fraction=0, test_fraction=0)
    for part in data.SPLITS:
        if len(splits.split(part)):
            splits.arrays(part)


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_one_line_data_error(tmp_path, case):
    make, expected = BAD_INPUTS[case]
    with pytest.raises(DataError) as caught:
        read_everything(make(tmp_path))
    message = str(caught.value)
    assert "\n" not in message
    for part in (expected,) if isinstance(expected, str) else expected:
        assert part in message


def test_huge_idx_header_is_refused_without_allocating(tmp_path):
    over = tmp_path / "over" / "train-images-idx3-ubyte.gz"
    over.parent.mkdir()
    over.write_bytes(gzip.compress(struct.pack(">IIII", 0x803, 100_000, 100_000, 100_000) + bytes(64)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: header says 100000x100000x100000 = .* over"):
        data.load(str(over.parent))
    under = tmp_path / "under" / "train-images-idx3-ubyte"
    under.parent.mkdir()
    under.write_bytes(struct.pack(">IIII", 0x803, 2_000, 1_000, 1_000) + bytes(4096))  # promises 2 GB
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="truncated: header says 2000x1000x1000 = 2000000000 bytes, file has 4096"):
            data.load(str(under.parent))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"validation_fraction": 1.0}, r"validation_fraction must be in \[0, 1\), got 1.0"),
        ({"test_fraction": -0.1}, r"test_fraction must be in \[0, 1\), got -0.1"),
        ({"validation_fraction": 0.6, "test_fraction": 0.5}, "1797 images leave none for training"),
        ({"limit": 0}, "limit must be an integer >= 1, got 0"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"image_size": (0, 8)}, "image_size must be"),
        ({"image_size": (99999, 8)}, r"integers in \[1, 4096\]"),
    ],
)
def test_bad_options(options, expected):
    with pytest.raises(DataError, match=expected):
        data.load("digits", **options)


def test_data_dir_must_exist(tmp_path):
    with pytest.raises(DataError, match="data_dir .*missing: no such folder"):
        data.load("mnist", data_dir=str(tmp_path / "missing"))


def test_npz_labels_must_be_plausible_class_indices(tmp_path):
    images = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "big.npz", x=images, y=np.array([0, 1, 2**40]))
    with pytest.raises(DataError, match=r"big.npz: 'y' has a label of 1099511627776; labels are class indices"):
        data.load(str(tmp_path / "big.npz"))
