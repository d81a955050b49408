"""Images in memory: one split's arrays, and what a source gives before it is split."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_ae.errors import DataError

MAX_ARRAY_BYTES = 2**31  # refuse IDX and .npy headers, and image folders, that promise more than this
MAX_CLASSES = 100_000  # labels are class indices; a larger one is a corrupt file, not a class


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
class Loaded:
    """What a source gives before splitting: train, its own test split if it has one."""

    source: str
    train: ArraySplit
    test: ArraySplit | None
    num_classes: int | None


def pair_up(
    source: str, where: str | Path, train: ArraySplit, test: ArraySplit | None, num_classes: int | None = None
) -> Loaded:
    """Check a source's train and test agree (shape, labels); count the classes unless given."""
    if test is not None:
        if train.images.shape[1:] != test.images.shape[1:]:
            raise DataError(
                f"{where}: train images are {train.images.shape[1:]} but test images are {test.images.shape[1:]}"
            )
        if (train.labels is None) != (test.labels is None):
            raise DataError(f"{where}: labels for only one of train and test; give both or neither")
    if train.labels is None:
        return Loaded(source, train, test, None)
    if num_classes is None:
        num_classes = 1 + max(int(part.labels.max()) for part in (train, test) if part is not None)
    return Loaded(source, train, test, num_classes)
