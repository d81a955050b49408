"""One split of a dataset, whatever holds it: arrays in memory, image files, or a TFDS split.

Every source gives :class:`Split` objects that stream their examples as tf.data (uint8 or float32
HWC images, with int64 labels when the source has them), so memory is bounded by the pipeline's
buffers and the cache policy, not by the number of images. A split knows its size, can be narrowed
to a subset of its examples (the seeded train/validation/test carving) and has a fingerprint that
changes when its membership or its files change.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_ae.errors import DataError

MAX_ARRAY_BYTES = 2**31  # refuse IDX and .npy headers that promise more than this
MAX_CLASSES = 100_000  # labels are class indices; a larger one is a corrupt file, not a class
THREADS = os.cpu_count() or 1  # parallel calls of every decoding and conversion map
ARRAY_BATCH_BYTES = 64 << 20  # to_arrays reads batches of at most this many bytes (tf.data allocates whole batches)


class Split:
    """The examples of one split. Subclasses: ArraySplit, FileSplit, TFDSSplit.

    Attributes:
        image_shape: (H, W, C) of every image the split yields.
        has_labels: whether examples come with an int64 label.
        in_memory: the images are already in memory (nothing to decode or cache).
        shuffle_before_decode: shuffling the split's index is cheap (file paths), so an uncached
            pipeline shuffles before decoding instead of keeping a buffer of decoded images.
    """

    image_shape: tuple[int, int, int]
    has_labels: bool
    in_memory = False
    shuffle_before_decode = False

    def __len__(self) -> int:
        raise NotImplementedError

    def take(self, index: np.ndarray) -> Split:
        """The examples at positions ``index`` of this split, in that order."""
        raise NotImplementedError

    attributes: tuple[str, ...] = ()  # names of the binary attributes each example has (CelebA's 40)

    def examples(self, labels: bool = True, shard: tuple[int, int] | None = None,
                 shuffle_seed: int | None = None, attribute: str | None = None) -> tf.data.Dataset:
        """Unbatched images (uint8 or float32), or ``(image, label)`` when labelled and asked for.

        ``shard=(count, index)`` keeps every count-th example from ``index`` on, before any decoding;
        ``shuffle_seed`` reshuffles the order every epoch (only where ``shuffle_before_decode``);
        ``attribute`` gives that binary attribute (0 or 1) in place of the label.
        """
        raise NotImplementedError

    def to_arrays(self, attribute: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Every image as float32 in [0, 1], and the labels (or None; or the 0/1 values of ``attribute``),
        in order: for samples and small splits."""
        options = tf.data.Options()
        options.autotune.enabled = False
        labelled = attribute is not None or self.has_labels
        images, labels = [], []
        batch = int(max(1, min(1024, ARRAY_BATCH_BYTES // max(1, int(np.prod(self.image_shape))))))
        batches = self.examples(labels=True, attribute=attribute).batch(batch).with_options(options)
        for batch in batches.as_numpy_iterator():
            images.append(batch[0] if labelled else batch)
            if labelled:
                labels.append(batch[1])
        images = np.concatenate(images) if images else np.zeros((0, *self.image_shape), np.uint8)
        images = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
        return images, (np.concatenate(labels).astype(np.int64) if labels else None) if labelled else None

    def unreadable_files(self) -> list[str]:
        """The files of this split that cannot be read (a full pass for streamed files; none for arrays)."""
        return []

    @property
    def nbytes(self) -> int:
        """Bytes of the split's decoded uint8 images (what a cache of it holds)."""
        return len(self) * int(np.prod(self.image_shape))

    def fingerprint(self) -> str:
        """sha256 of what the split holds: its members in order and, where cheap, their content."""
        raise NotImplementedError


def digest(*parts) -> str:
    """sha256 hex of byte strings, arrays and texts, each length-prefixed (so no two sequences collide)."""
    hasher = hashlib.sha256()
    for part in parts:
        data = part.tobytes() if isinstance(part, np.ndarray) else part if isinstance(part, bytes) else str(part).encode()
        hasher.update(len(data).to_bytes(8, "little") + data)
    return hasher.hexdigest()


@dataclass(frozen=True)
class Loaded:
    """What a source gives before splitting: train, and its own test and validation splits if it has them
    (a published validation split is kept as it is instead of being carved off train)."""

    source: str
    train: Split
    test: Split | None
    num_classes: int | None
    validation: Split | None = None


def pair_up(source: str, where: str | Path, train: Split, test: Split | None, num_classes: int | None = None,
            validation: Split | None = None) -> Loaded:
    """Check a source's train, test and validation agree (shape, labels); count the classes from known labels
    unless given."""
    for name, part in (("test", test), ("validation", validation)):
        if part is None:
            continue
        if train.image_shape != part.image_shape:
            raise DataError(f"{where}: train images are {train.image_shape} but {name} images are {part.image_shape}")
        if train.has_labels != part.has_labels:
            raise DataError(f"{where}: labels for only one of train and {name}; give both or neither")
    if not train.has_labels:
        return Loaded(source, train, test, None, validation)
    if num_classes is None:
        num_classes = 1 + max(int(part.labels.max()) for part in (train, test, validation) if part is not None)
    return Loaded(source, train, test, num_classes, validation)
