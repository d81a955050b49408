"""MNIST's IDX files: unsigned-byte arrays checked against their header before anything is allocated."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from keras_ae.data.arrays import ArraySplit
from keras_ae.data.split import MAX_ARRAY_BYTES, Loaded, pair_up
from keras_ae.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}  # unsigned-byte images (3-D) and labels (1-D)
_READ_CHUNK = 1 << 20  # bytes per read of an IDX file
_CHECK_BYTES = 64 << 20  # after a gzip that gave too many bytes, how much more is read to look for a CRC error


def idx_file(folder: Path, stem: str) -> Path | None:
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
            size = expected + 1  # one byte more: trailing data shows
            if opener is not gzip.open:  # a plain file's size is known: never allocate more than it holds
                size = min(size, os.fstat(f.fileno()).st_size - len(head))
            data = _read_at_most(f, size)
            if len(data) > expected and opener is gzip.open:
                for _ in range(_CHECK_BYTES // _READ_CHUNK):  # a gzip corrupted mid-stream fails its CRC by
                    if not f.read(_READ_CHUNK):                   # the end of the stream: then say "corrupt"
                        break
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read ({'corrupt gzip: ' if opener is gzip.open else ''}{e})") from None
    if len(data) < expected:
        raise DataError(f"{path}: truncated: header says {shape} = {expected} bytes, file has {len(data)}")
    if len(data) > expected:
        raise DataError(f"{path}: trailing bytes after the {shape} = {expected} bytes the header declares")
    return data.reshape(dims)


def _read_at_most(f, size: int) -> np.ndarray:
    """Up to ``size`` bytes as uint8, read in chunks straight into one array, so the data is never held twice.

    The array starts at one chunk and doubles as the data fills it (``ndarray.resize`` reallocates,
    which for large blocks remaps pages rather than copying), so memory follows the real data, not a
    header's promise.
    """
    data, position = np.empty(min(size, _READ_CHUNK), np.uint8), 0
    while position < size:
        if position == len(data):
            data.resize(min(2 * len(data), size), refcheck=False)
        count = f.readinto(memoryview(data)[position:min(len(data), position + _READ_CHUNK)])
        if not count:
            break
        position += count
    data.resize(position, refcheck=False)
    return data


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


def load_idx_folder(folder: Path) -> Loaded:
    """An MNIST-style folder: train images (+ labels), optionally t10k test images (+ labels)."""
    splits = {}
    for split, (images_stem, labels_stem) in IDX_FILES.items():
        images_path = idx_file(folder, images_stem)
        if images_path is not None:
            splits[split] = _read_idx_pair(images_path, idx_file(folder, labels_stem))
    return pair_up(f"idx folder {folder}", folder, splits["train"], splits.get("test"))


def load_idx_file(path: Path) -> Loaded:
    """A single IDX images file, labelled by its `...-labels-idx1-ubyte` sibling when there is one."""
    labels_path = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
    labels_path = labels_path if labels_path != path and labels_path.is_file() else None
    return pair_up(f"idx file {path}", path, _read_idx_pair(path, labels_path), None)
