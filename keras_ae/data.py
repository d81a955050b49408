"""Datasets for keras_ae: find images by name or path, check them, split them, feed them to Keras.

`load(name)` resolves `name` in this order and stops at the first source that exists:

1. an existing path: a `.npz` file, a folder of IDX files, a single IDX images file or a folder of images;
2. `"digits"`: scikit-learn's bundled 8x8 digits (float32, the 0..16 values divided by 16);
3. local roots (`data_dir`, then each entry of $KERAS_AE_DATA): `root` itself when it is an IDX folder
   and was given as `data_dir`, then `root/<name>`, `root/<name>.npz`, `root/<name>-*` (sorted);
4. TensorFlow Datasets: prepared data first (`download=False`), then a download.

A source that exists but is broken raises a `DataError` naming the file; nothing is silently skipped
or repaired. Every array is checked against the real file before it is trusted.
"""

from __future__ import annotations

import glob
import gzip
import io
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_ae.errors import DataError

DATA_ENV = "KERAS_AE_DATA"
SPLITS = ("train", "validation", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TFDS_DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn_cropped")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned-byte images (3-D) and labels (1-D)
MAX_ARRAY_BYTES = 2**31  # refuse IDX and .npy headers, and image folders, that promise more than this
MAX_CLASSES = 100_000  # labels are class indices; a larger one is a corrupt file, not a class
MAX_IMAGE_SIDE = 4096  # --image-size beyond this is refused (a 1,024-image resize batch would not fit)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what np.load reads as a .npz (the second: an empty zip)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
_READ_CHUNK = 1 << 20  # bytes per read of an IDX file
_BATCH = 1024  # images per step when converting or resizing
# Pillow modes we read, and the mode each becomes; anything else (16-bit, LA, ...) is refused.
_PIL_MODES = {"1": "L", "L": "L", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB"}


@dataclass(frozen=True)
class ArraySplit:
    """One split in memory: NHWC images (uint8 0..255 or float32 0..1) and int64 labels or None."""

    images: np.ndarray
    labels: np.ndarray | None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype not in (np.uint8, np.float32):
            raise DataError(f"images must be NHWC uint8 or float32, got {self.images.dtype} {self.images.shape}")
        if self.labels is not None and (
            self.labels.dtype != np.int64 or self.labels.shape != (len(self.images),)
        ):
            raise DataError(
                f"labels must be int64 of shape ({len(self.images)},), "
                f"got {self.labels.dtype} {self.labels.shape}"
            )

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> ArraySplit:
        """The images (and labels) at `index`, in that order."""
        return ArraySplit(self.images[index], None if self.labels is None else self.labels[index])


@dataclass(frozen=True)
class DataSplits:
    """A dataset split three ways, with where it came from."""

    name: str
    source: str
    train: ArraySplit
    validation: ArraySplit
    test: ArraySplit
    num_classes: int | None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(int(d) for d in self.train.images.shape[1:])

    def split(self, split: str) -> ArraySplit:
        """The named split; DataError for a name outside train/validation/test."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Images as float32 in [0, 1] and labels (or None) of one split."""
        data = self.split(split)
        return _to_unit_float(data.images), data.labels

    def pipeline(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool | None = None,
        seed: int = 0,
        labels: bool = True,
        drop_remainder: bool = False,
    ) -> tf.data.Dataset:
        """Batches of float32 NHWC images in [0, 1], as `(images, labels)` when labelled and asked for.

        Shuffles the train split by default, with a fixed seed, so two fresh pipelines with the same
        seed give the same batches; each further epoch is reshuffled.
        """
        data = self.split(split)
        if len(data) == 0:
            fraction = "test_fraction" if split == "test" else "validation_fraction"
            raise DataError(f"{self.name}: the {split} split is empty ({fraction} was 0)")
        _check_batch_size(batch_size, len(data), split, drop_remainder)
        _check_integer("seed", seed, 0)
        if shuffle is None:
            shuffle = split == "train"
        tensors = (data.images, data.labels) if labels and data.labels is not None else data.images
        ds = tf.data.Dataset.from_tensor_slices(tensors).cache().with_options(_PIPELINE_OPTIONS)
        if shuffle:
            ds = ds.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        convert = _unit_float_tensor if data.images.dtype == np.uint8 else tf.identity
        if isinstance(tensors, tuple):
            ds = ds.map(lambda x, y: (convert(x), y), num_parallel_calls=_MAP_THREADS)
        else:
            ds = ds.map(convert, num_parallel_calls=_MAP_THREADS)
        return ds.prefetch(_PREFETCH_BATCHES)


def pipeline_options() -> tf.data.Options:
    """tf.data options of every pipeline: no autotuning.

    The autotuner's background thread sleeps in doubling intervals (10 ms, 20 ms, ... 2.56 s) and
    the iterator's destructor waits for it to wake; Keras drops the training and validation
    iterators at each epoch's end, which cost up to 2.5 s per epoch (measured: 5 conv-VAE epochs on
    mnist-small took 15.9 s with autotuning, 12.3 s without). Our data sits in memory and the one map
    is a cast, so there is nothing to tune: the map runs on every core and two batches are prefetched.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


_PIPELINE_OPTIONS = pipeline_options()
_MAP_THREADS = os.cpu_count() or 1
_PREFETCH_BATCHES = 2


@dataclass(frozen=True)
class _Loaded:
    """What a source gives before splitting: train, its own test split if it has one."""

    source: str
    train: ArraySplit
    test: ArraySplit | None
    num_classes: int | None


class _Unavailable(Exception):
    """TFDS could not provide a dataset; `unknown` when TFDS has no builder of that name."""

    def __init__(self, reason: str, unknown: bool = False):
        super().__init__(reason)
        self.unknown = unknown


def known_datasets() -> list[str]:
    """Dataset names keras_ae documents: the bundled digits and TFDS image datasets."""
    return ["digits", *TFDS_DATASETS]


def load(
    name: str,
    *,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    limit: int | None = None,
    download: bool = True,
) -> DataSplits:
    """Find dataset `name` (see the module docstring), check it and split it.

    Validation is carved from train with a permutation seeded by `seed`; test is the source's own test
    split, or carved the same way with `test_fraction` when the source has none. `image_size=(H, W)`
    resizes every image. `limit` caps each of the three splits at that many images (after splitting).
    `download=False` never asks TFDS to download (offline, TFDS retries for minutes before failing).
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    _check_fraction("validation_fraction", validation_fraction)
    _check_fraction("test_fraction", test_fraction)
    _check_integer("seed", seed, 0)
    if limit is not None:
        _check_integer("limit", limit, 1)
    _check_image_size(image_size)
    loaded = _resolve(name, data_dir, image_size, download)
    train, validation, test = _split(name, loaded, validation_fraction, test_fraction, seed)
    parts = [_finish(part, limit, image_size) for part in (train, validation, test)]
    return DataSplits(name, loaded.source, *parts, loaded.num_classes)


# ---------------------------------------------------------------- option checks


def _check_fraction(option: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DataError(f"{option} must be in [0, 1), got {value!r}")


def _check_integer(option: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{option} must be an integer >= {minimum}, got {value!r}")


def _check_image_size(image_size) -> None:
    ok = (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_IMAGE_SIDE for d in image_size)
    )
    if image_size is not None and not ok:
        raise DataError(f"image_size must be (height, width) with integers in [1, {MAX_IMAGE_SIDE}], "
                        f"got {image_size!r}")


def _check_batch_size(batch_size, count: int, split: str, drop_remainder: bool) -> None:
    _check_integer("batch_size", batch_size, 1)
    if batch_size > count and (split == "train" or drop_remainder):
        raise DataError(
            f"batch_size {batch_size} is larger than the {count} images of the {split} split; "
            f"use a batch size <= {count}"
        )


# ---------------------------------------------------------------- name resolution


def _resolve(name: str, data_dir: str | None, image_size, download: bool) -> _Loaded:
    """Try every place `name` could come from, in order; one DataError listing them all if none works."""
    path = Path(name).expanduser()
    if path.exists():
        return _load_path(path, image_size)
    if name.startswith(("/", "~", ".")) or path.suffix.lower() in (".npz", ".gz"):
        raise DataError(f"{name}: no such file or folder")
    if name == "digits":
        return _load_digits()

    tried = []
    for root, explicit in _roots(data_dir):
        for candidate in _candidates(root, name, explicit):
            if _kind(candidate):
                return _load_path(candidate, image_size)
        tried.append(f"{root} ({name}, {name}.npz, {name}-*)")
    if not tried:
        tried.append(f"no local folders (${DATA_ENV} unset, no data_dir)")

    unknown = False
    for attempt in (False, True) if download else (False,):
        try:
            return _load_tfds(name, attempt, image_size)
        except _Unavailable as e:
            tried.append(f"tfds:{name} {'download' if attempt else 'prepared data'}: {e}")
            if e.unknown:
                unknown = True
                break
    places = "; ".join(tried)
    if unknown:
        raise DataError(
            f"unknown dataset {name!r}; known: {', '.join(known_datasets())}; "
            f"or give a path to a .npz, IDX or image folder (tried {places})"
        )
    raise DataError(
        f"dataset {name!r} not available: tried {places}. Put IDX files (or {name}.npz) in "
        f"${DATA_ENV}/{name}, pass --data-dir, or run with network so tfds can download it"
    )


def _roots(data_dir: str | None) -> list[tuple[Path, bool]]:
    """Local folders to search: (root, given explicitly as data_dir)."""
    roots = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data_dir {data_dir}: no such folder")
        roots.append((root, True))
    for entry in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if entry:
            roots.append((Path(entry).expanduser(), False))
    return roots


def _candidates(root: Path, name: str, explicit: bool) -> list[Path]:
    """Paths under `root` that could hold `name`, most specific first."""
    found = [root] if explicit and _kind(root) == "idx folder" else []
    found += [root / name, root / f"{name}.npz"]
    if root.is_dir():
        found += sorted(root.glob(f"{glob.escape(name)}-*"))
    return found


def _kind(path: Path) -> str | None:
    """Which format `path` holds, judged by names only; None when it is no dataset we read."""
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        if "-idx" in path.name and path.name.endswith(("-ubyte", "-ubyte.gz")):
            return "idx file"
        return None
    if not path.is_dir():
        return None
    if _idx_file(path, IDX_FILES["train"][0]):
        return "idx folder"
    if _image_files(path) or any(_image_files(d) for d in _subfolders(path)):
        return "image folder"
    return None


def _load_path(path: Path, image_size) -> _Loaded:
    """Load the user's own data at `path`, whatever its format."""
    kind = _kind(path)
    if kind == "npz":
        return _load_npz(path)
    if kind == "idx folder":
        return _load_idx_folder(path)
    if kind == "idx file":
        return _load_idx_file(path)
    if kind == "image folder":
        return _load_image_folder(path, image_size)
    if path.is_dir():
        what = "folder holds no IDX files and no images" if any(path.iterdir()) else "empty folder"
        raise DataError(f"{path}: {what} (want *-idx3-ubyte[.gz] or {', '.join(IMAGE_SUFFIXES)})")
    raise DataError(f"{path}: not a .npz file, an IDX file (*-idx3-ubyte[.gz]) or a folder of images")


# ---------------------------------------------------------------- digits


def _load_digits() -> _Loaded:
    """scikit-learn's 1,797 8x8 digits, values 0..16 divided by 16 into float32 [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return _Loaded("sklearn digits", ArraySplit(images, digits.target.astype(np.int64)), None, 10)


# ---------------------------------------------------------------- IDX


def _idx_file(folder: Path, stem: str) -> Path | None:
    """`folder/stem` or `folder/stem.gz`, whichever exists."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array, checked against its header before anything is allocated."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
            if len(head) < 4 + 4 * ndim:
                raise DataError(f"{path}: truncated header ({len(head)} bytes)")
            magic = int.from_bytes(head[:4], "big")
            if magic != IDX_MAGIC[ndim]:
                raise DataError(
                    f"{path}: bad magic 0x{magic:08x}, expected 0x{IDX_MAGIC[ndim]:08x} "
                    f"(IDX unsigned bytes, {ndim}-D)"
                )
            dims = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
            shape = "x".join(map(str, dims))
            expected = math.prod(dims)
            if expected == 0:
                raise DataError(f"{path}: header has a zero dimension ({shape})")
            if expected > MAX_ARRAY_BYTES:
                raise DataError(
                    f"{path}: header says {shape} = {expected} bytes, over the {MAX_ARRAY_BYTES} limit"
                )
            data = _read_at_most(f, expected + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({'corrupt gzip: ' if opener is gzip.open else ''}{e})") from None
    if len(data) < expected:
        raise DataError(f"{path}: truncated: header says {shape} = {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise DataError(f"{path}: trailing bytes after the {shape} = {expected} bytes the header declares")
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _read_at_most(f, size: int) -> bytes:
    """Up to `size` bytes, read in chunks so memory follows the real data, not a header's promise."""
    chunks, total = [], 0
    while total < size:
        chunk = f.read(min(_READ_CHUNK, size - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _read_idx_pair(images_path: Path, labels_path: Path | None) -> ArraySplit:
    """IDX images (N, H, W) -> (N, H, W, 1) uint8, with their labels when the file exists."""
    images = _read_idx(images_path, 3)[..., None]
    if labels_path is None:
        return ArraySplit(images, None)
    labels = _read_idx(labels_path, 1).astype(np.int64)
    if len(labels) != len(images):
        raise DataError(
            f"{labels_path}: {len(labels)} labels but {images_path.name} has {len(images)} images"
        )
    return ArraySplit(images, labels)


def _load_idx_folder(folder: Path) -> _Loaded:
    """An MNIST-style folder: train images (+ labels), optionally t10k test images (+ labels)."""
    splits = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        images_path = _idx_file(folder, images_stem)
        if images_path is not None:
            splits[split] = _read_idx_pair(images_path, _idx_file(folder, labels_stem))
    return _pair_up(f"idx folder {folder}", folder, splits["train"], splits.get("test"))


def _load_idx_file(path: Path) -> _Loaded:
    """A single IDX images file, labelled by its `...-labels-idx1-ubyte` sibling when there is one."""
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    labels_path = labels_path if labels_path != path and labels_path.is_file() else None
    return _pair_up(f"idx file {path}", path, _read_idx_pair(path, labels_path), None)


def _pair_up(
    source: str, where: str | Path, train: ArraySplit, test: ArraySplit | None, num_classes: int | None = None
) -> _Loaded:
    """Check a source's train and test agree (shape, labels); count the classes unless given."""
    if test is not None:
        if train.images.shape[1:] != test.images.shape[1:]:
            raise DataError(
                f"{where}: train images are {train.images.shape[1:]} but test images are {test.images.shape[1:]}"
            )
        if (train.labels is None) != (test.labels is None):
            raise DataError(f"{where}: labels for only one of train and test; give both or neither")
    if train.labels is None:
        return _Loaded(source, train, test, None)
    if num_classes is None:
        num_classes = 1 + max(int(part.labels.max()) for part in (train, test) if part is not None)
    return _Loaded(source, train, test, num_classes)


# ---------------------------------------------------------------- npz


def _load_npz(path: Path) -> _Loaded:
    """A .npz with x_train/y_train/x_test/y_test (keras layout) or x|images with optional y|labels."""
    try:
        with open(path, "rb") as f:
            magic = f.read(len(np.lib.format.MAGIC_PREFIX))
        # Only a zip goes to np.load: it would read a lone .npy whole, whatever shape its header claims.
        npz = np.load(path, allow_pickle=False) if magic.startswith(_ZIP_MAGIC) else None
    except Exception as e:  # zipfile raises BadZipFile, OSError, NotImplementedError... for a damaged archive
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    if npz is None and magic == np.lib.format.MAGIC_PREFIX:
        raise DataError(f"{path}: holds a single array, not a .npz archive of named arrays")
    if npz is None:
        raise DataError(f"{path}: not a readable .npz archive (not a zip file)")
    with npz:
        keys = set(npz.files)
        if "x_train" in keys:
            train = _npz_split(npz, path, "x_train", "y_train")
            test = _npz_split(npz, path, "x_test", "y_test") if "x_test" in keys else None
        else:
            image_key = next((k for k in ("x", "images") if k in keys), None)
            if image_key is None:
                raise DataError(
                    f"{path}: no image array; expected keys x_train[,y_train,x_test,y_test] or x|images"
                    f"[,y|labels], found {', '.join(map(repr, sorted(keys))) or 'none'}"
                )
            label_key = next((k for k in ("y", "labels") if k in keys), None)
            train, test = _npz_split(npz, path, image_key, label_key), None
    return _pair_up(f"npz {path}", path, train, test)


def _npz_split(npz, path: Path, image_key: str, label_key: str | None) -> ArraySplit:
    """One split of a .npz: checked images and, when `label_key` is in the archive, checked labels."""
    images = _npz_images(_npz_array(npz, path, image_key), path, image_key)
    if label_key is None or label_key not in npz.files:
        return ArraySplit(images, None)
    return ArraySplit(images, _npz_labels(_npz_array(npz, path, label_key), len(images), path, label_key))


def _npz_array(npz, path: Path, key: str) -> np.ndarray:
    """Array `key`, its .npy header checked against the limit and the member's size before anything is allocated."""
    member = key if key in npz.zip.namelist() else f"{key}.npy"  # the lookup NpzFile makes
    try:
        info = npz.zip.getinfo(member)
        with npz.zip.open(info) as f:
            # read_magic refuses a member that is no .npy (NpzFile would return its raw bytes).
            read_header = _NPY_HEADER_READERS.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise DataError(f"{path}: '{key}' is a .npy file of an unsupported format version")
            shape, _, dtype = read_header(f)
            size, available = math.prod(shape) * dtype.itemsize, info.file_size - f.tell()
        if size > MAX_ARRAY_BYTES:
            raise DataError(
                f"{path}: '{key}' header says {dtype} {shape} = {size} bytes, over the {MAX_ARRAY_BYTES} limit"
            )
        if size > available:
            raise DataError(f"{path}: '{key}' is truncated: header says {dtype} {shape} = {size} bytes, "
                            f"the archive holds {available}")
        return npz[key]
    except DataError:
        raise
    except Exception as e:  # zipfile, zlib, bz2, lzma and numpy raise many types for a damaged member
        raise DataError(f"{path}: cannot read array '{key}' ({type(e).__name__}: {e})") from None


def _npz_images(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(N, H, W[, C]) uint8 0..255 or float 0..1 -> (N, H, W, C) uint8 or float32; anything else refused."""
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DataError(
            f"{path}: '{key}' has shape {array.shape}; expected (N, H, W) or (N, H, W, C) with C in 1, 3, 4"
        )
    if len(array) == 0 or 0 in array.shape:
        raise DataError(f"{path}: '{key}' holds no images (shape {array.shape})")
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind in "iu":  # not np.issubdtype(..., np.integer): that takes timedelta64 (NaT) too
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise DataError(f"{path}: '{key}' is {array.dtype} with values {low}..{high}, outside 0..255")
        return array.astype(np.uint8)
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f"{path}: '{key}' has dtype {array.dtype}; expected uint8 or float in [0, 1]")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise DataError(f"{path}: '{key}' has {bad} NaN/inf values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(f"{path}: '{key}' is float with min {low:g} and max {high:g}, outside [0, 1]")
    return array.astype(np.float32)


def _npz_labels(array: np.ndarray, count: int, path: Path, key: str) -> np.ndarray:
    """Integer labels >= 0, shape (N,) or (N, 1) -> (N,) int64."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.dtype.kind not in "iu":  # timedelta64 is an np.integer subtype
        raise DataError(f"{path}: '{key}' must be 1-D integer labels, got {array.dtype} {array.shape}")
    if len(array) != count:
        raise DataError(f"{path}: '{key}' has {len(array)} labels for {count} images")
    if array.min() < 0:
        raise DataError(f"{path}: '{key}' has negative labels (min {array.min()})")
    if array.max() >= MAX_CLASSES:  # also catches uint64 labels that int64 would wrap to negative ones
        raise DataError(f"{path}: '{key}' has a label of {array.max()}; labels are class indices below {MAX_CLASSES}")
    return array.astype(np.int64)


# ---------------------------------------------------------------- image folders


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _load_image_folder(folder: Path, image_size) -> _Loaded:
    """Images in `folder` (unlabelled) or in its class subfolders (sorted names -> labels 0..K-1)."""
    classes = [d for d in _subfolders(folder) if _image_files(d)]
    loose = _image_files(folder)
    if classes and loose:
        raise DataError(
            f"{folder}: has both images ({loose[0].name}, ...) and class subfolders ({classes[0].name}, ...); "
            "use one layout"
        )
    if not classes and not loose:
        raise DataError(f"{folder}: empty folder: no images ({', '.join(IMAGE_SUFFIXES)})")
    if classes:
        files = [(f, label) for label, d in enumerate(classes) for f in _image_files(d)]
    else:
        files = [(f, None) for f in loose]
    first_path, first = files[0][0], _read_image(files[0][0], image_size)
    if len(files) * first.nbytes > MAX_ARRAY_BYTES:  # every image must match the first: this is the total
        raise DataError(
            f"{folder}: {len(files)} images of {'x'.join(map(str, first.shape))} = {len(files) * first.nbytes} "
            f"bytes, over the {MAX_ARRAY_BYTES} limit; pass --image-size HxW (image_size=(H, W)) to shrink them"
        )
    images = [first]
    for path, _ in files[1:]:
        image = _read_image(path, image_size)
        if image.shape[:2] != first.shape[:2]:
            raise DataError(
                f"{first_path} is {first.shape[0]}x{first.shape[1]} but {path} is "
                f"{image.shape[0]}x{image.shape[1]}; pass --image-size HxW (image_size=(H, W)) to resize all"
            )
        if image.shape[2] != first.shape[2]:
            raise DataError(
                f"{first_path} has {first.shape[2]} channel(s) but {path} has {image.shape[2]}; "
                "convert the images to one mode (all grayscale or all RGB)"
            )
        images.append(image)
    labels = np.array([label for _, label in files], dtype=np.int64) if classes else None
    source = f"image folder {folder}"
    return _Loaded(source, ArraySplit(np.stack(images), labels), None, len(classes) or None)


def _read_image(path: Path, image_size) -> np.ndarray:
    """One image as (H, W, C) uint8, resized to `image_size` when given."""
    try:
        with warnings.catch_warnings():
            # Refuse what Pillow only warns about: up to twice MAX_IMAGE_PIXELS from a few hundred bytes.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # From memory: Pillow reads a chunk at the length the file claims, and a file's read(n) allocates n bytes.
            image = Image.open(io.BytesIO(path.read_bytes()))
        with image:
            image.load()
            mode = _PIL_MODES.get(image.mode)
            if mode is None:
                raise DataError(f"{path}: unsupported image mode {image.mode}; save it as 8-bit grey, RGB or RGBA")
            if image.mode == "P" and "transparency" in image.info:
                mode = "RGBA"
            image = image.convert(mode)
            if image_size is not None:
                image = image.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except UnidentifiedImageError:  # its message shows the in-memory file object
        raise DataError(f"{path}: unreadable image (cannot identify image file)") from None
    except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError,  # Pillow's ways to fail
            Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
    return array[..., None] if array.ndim == 2 else array


# ---------------------------------------------------------------- TFDS


def _load_tfds(name: str, download: bool, image_size) -> _Loaded:
    """The train (and test, when there is one) split of TFDS dataset `name` as uint8 arrays."""
    import tensorflow_datasets as tfds

    try:
        train, info = tfds.load(name, split="train", download=download, with_info=True)
        # Under tfds.testing.mock_data the split list is empty (unknown): assume the usual train/test.
        has_test = "test" in info.splits or not info.splits
        test = tfds.load(name, split="test", download=download) if has_test else None
    except tfds.core.registered.DatasetNotFoundError as e:
        raise _Unavailable(_reason(e), unknown=True) from None
    except Exception as e:  # TFDS raises anything from AssertionError to network errors here
        raise _Unavailable(f"{type(e).__name__}: {_reason(e)}") from None

    features = info.features
    if "image" not in features:
        raise DataError(f"tfds:{name} has no 'image' feature (features: {', '.join(features.keys())})")
    height, width, channels = features["image"].shape
    if features["image"].np_dtype != np.uint8 or channels not in (1, 3, 4):
        raise DataError(
            f"tfds:{name}: images are {features['image'].np_dtype} with {channels} channels; "
            "need uint8 with 1, 3 or 4"
        )
    if (height is None or width is None) and image_size is None:
        raise DataError(f"tfds:{name}: images vary in size; pass --image-size HxW (image_size=(H, W))")
    labelled = "label" in features
    num_classes = getattr(features["label"], "num_classes", None) if labelled else None
    train = _tfds_arrays(train, name, "train", labelled, image_size)
    test = None if test is None else _tfds_arrays(test, name, "test", labelled, image_size)
    return _pair_up(f"tfds:{name}", f"tfds:{name}", train, test, num_classes)


def _tfds_arrays(ds: tf.data.Dataset, name: str, split: str, labelled: bool, image_size) -> ArraySplit:
    """A TFDS split as numpy, in batches (batch_size=-1 aborts the process under mock_data)."""
    import tensorflow_datasets as tfds

    def pick(example):
        image = example["image"] if image_size is None else _resize_tensor(example["image"], image_size)
        return (image, example["label"]) if labelled else (image,)

    batches = list(tfds.as_numpy(ds.map(pick).batch(_BATCH)))
    if not batches:
        raise DataError(f"tfds:{name}: the {split} split is empty")
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches]).astype(np.int64) if labelled else None
    return ArraySplit(images, labels)


def _reason(error: Exception) -> str:
    """The first sentence of a TFDS error: its messages run to many lines (e.g. every dataset name)."""
    lines = str(error).strip().splitlines()
    return lines[0].split(". ")[0].rstrip(".")[:200] if lines else type(error).__name__


# ---------------------------------------------------------------- splitting and finishing


def _split(name: str, loaded: _Loaded, validation_fraction: float, test_fraction: float, seed: int):
    """(train, validation, test): validation and, without a source test split, test carved off train."""
    count = len(loaded.train)
    n_test = 0 if loaded.test is not None else _carve_count(count, test_fraction)
    n_val = _carve_count(count, validation_fraction)
    if n_test + n_val >= count:
        raise DataError(
            f"{name}: {count} images leave none for training with validation_fraction={validation_fraction} "
            f"and test_fraction={test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(count)
    test = loaded.test if loaded.test is not None else loaded.train.take(order[:n_test])
    validation = loaded.train.take(order[n_test : n_test + n_val])
    return loaded.train.take(order[n_test + n_val :]), validation, test


def _carve_count(count: int, fraction: float) -> int:
    """How many of `count` images a fraction takes: none for 0, else at least one."""
    return 0 if fraction == 0 else max(1, round(count * fraction))


def _finish(part: ArraySplit, limit: int | None, image_size) -> ArraySplit:
    """Cap a split at `limit` images and resize it to `image_size` if it is not that size already."""
    if limit is not None and len(part) > limit:
        part = part.take(np.arange(limit))
    if image_size is None or tuple(part.images.shape[1:3]) == tuple(image_size):
        return part
    if len(part) == 0:
        return ArraySplit(np.zeros((0, *image_size, part.images.shape[3]), part.images.dtype), part.labels)
    chunks = [_resize_tensor(part.images[i : i + _BATCH], image_size).numpy() for i in range(0, len(part), _BATCH)]
    return ArraySplit(np.concatenate(chunks), part.labels)


def _resize_tensor(images, size) -> tf.Tensor:
    """Bilinear, antialiased resize of (..., H, W, C) images that keeps uint8 as uint8 and floats in [0, 1]."""
    resized = tf.image.resize(images, size, antialias=True)
    if tf.as_dtype(images.dtype) == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return tf.clip_by_value(resized, 0.0, 1.0)


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images


def _unit_float_tensor(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 255.0
