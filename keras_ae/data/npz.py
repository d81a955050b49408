"""NumPy .npz archives (the Keras ``mnist.npz`` layout, with an optional published ``x_valid``/``y_valid``
validation split, or ``x``/``y``), loaded with allow_pickle=False."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from keras_ae.data.arrays import ArraySplit
from keras_ae.data.split import MAX_ARRAY_BYTES, MAX_CLASSES, Loaded, pair_up
from keras_ae.errors import DataError

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # what np.load reads as a .npz (the second: an empty zip)
_NPY_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def load_npz(path: Path) -> Loaded:
    """A .npz with x_train/y_train[/x_valid/y_valid]/x_test/y_test (keras layout) or x|images with optional
    y|labels."""
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
            validation = _npz_split(npz, path, "x_valid", "y_valid") if "x_valid" in keys else None
        else:
            image_key = next((k for k in ("x", "images") if k in keys), None)
            if image_key is None:
                raise DataError(
                    f"{path}: no image array; expected keys x_train[,y_train,x_test,y_test] or x|images"
                    f"[,y|labels], found {', '.join(map(repr, sorted(keys))) or 'none'}"
                )
            label_key = next((k for k in ("y", "labels") if k in keys), None)
            train, test, validation = _npz_split(npz, path, image_key, label_key), None, None
    return pair_up(f"npz {path}", path, train, test, validation=validation)


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
