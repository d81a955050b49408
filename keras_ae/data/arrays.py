"""A split held in memory: the arrays that IDX files, .npz archives and the bundled digits load into."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_ae.data.split import Split, digest
from keras_ae.errors import DataError

RESIZE_BATCH = 1024  # images per resize step


def _resize(images, size) -> tf.Tensor:
    """Bilinear, antialiased resize of (N, H, W, C) images that keeps uint8 as uint8 and floats in [0, 1]."""
    resized = tf.image.resize(images, size, antialias=True)
    if tf.as_dtype(images.dtype) == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return tf.clip_by_value(resized, 0.0, 1.0)


@dataclass(frozen=True)
class ArraySplit(Split):
    """One split in memory: NHWC images (uint8 0..255 or float32 0..1) and int64 labels or None.

    These sources are small by nature (an IDX or .npy header promising more than 2 GiB is refused),
    so they are read whole; their pipelines slice the arrays.
    """

    images: np.ndarray
    labels: np.ndarray | None
    in_memory = True

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

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.images.shape[1:])

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> ArraySplit:
        """The images (and labels) at `index`, in that order."""
        return ArraySplit(self.images[index], None if self.labels is None else self.labels[index])

    def examples(self, labels=True, shard=None, shuffle_seed=None, attribute=None) -> tf.data.Dataset:
        index = slice(None) if shard is None else slice(shard[1], None, shard[0])
        tensors = (self.images[index], self.labels[index]) if labels and self.has_labels else self.images[index]
        return tf.data.Dataset.from_tensor_slices(tensors)

    def to_arrays(self, attribute=None) -> tuple[np.ndarray, np.ndarray | None]:
        images = self.images.astype(np.float32) / 255.0 if self.images.dtype == np.uint8 else self.images
        return images, self.labels

    def resized(self, size) -> ArraySplit:
        """The same images resized to ``size`` (H, W): bilinear, antialiased, uint8 kept uint8."""
        if len(self) == 0:
            return ArraySplit(np.zeros((0, *size, self.images.shape[3]), self.images.dtype), self.labels)
        chunks = [_resize(self.images[i:i + RESIZE_BATCH], size).numpy() for i in range(0, len(self), RESIZE_BATCH)]
        return ArraySplit(np.concatenate(chunks), self.labels)

    def fingerprint(self) -> str:
        return digest(str(self.images.dtype), self.images.shape, self.images,
                      b"" if self.labels is None else self.labels)
