"""Train, validation and test splits in memory, and the one tf.data pipeline that feeds them to Keras."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_ae.data.arrays import ArraySplit, Loaded
from keras_ae.errors import DataError

SPLITS = ("train", "validation", "test")
MAX_IMAGE_SIDE = 4096  # --image-size beyond this is refused (a 1,024-image resize batch would not fit)
CONVERT_BATCH = 1024  # images per step when converting or resizing


@dataclass(frozen=True)
class DataSplits:
    """A dataset split three ways, with where it came from."""

    name: str
    source: str
    train: ArraySplit
    validation: ArraySplit
    test: ArraySplit
    num_classes: int | None
    load_args: dict | None = None  # the keyword arguments of keras_ae.data.load that give these splits again

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
        check_integer("seed", seed, 0)
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

    The autotuner's background thread sleeps in doubling intervals (up to 2.56 s) and the iterator's
    destructor waits for it to wake; Keras drops the training and validation iterators at each epoch's
    end, so every epoch ended in a stall (BENCHMARKS.md, "What the profile showed"). Our data sits in
    memory and the one map is a cast, so there is nothing to tune: the map runs on every core and two
    batches are prefetched.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


_PIPELINE_OPTIONS = pipeline_options()
_MAP_THREADS = os.cpu_count() or 1
_PREFETCH_BATCHES = 2


# ---------------------------------------------------------------- option checks


def check_fraction(option: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DataError(f"{option} must be in [0, 1), got {value!r}")


def check_integer(option: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{option} must be an integer >= {minimum}, got {value!r}")


def check_image_size(image_size) -> None:
    ok = (
        isinstance(image_size, (tuple, list))
        and len(image_size) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= MAX_IMAGE_SIDE for d in image_size)
    )
    if image_size is not None and not ok:
        raise DataError(f"image_size must be (height, width) with integers in [1, {MAX_IMAGE_SIDE}], "
                        f"got {image_size!r}")


def _check_batch_size(batch_size, count: int, split: str, drop_remainder: bool) -> None:
    check_integer("batch_size", batch_size, 1)
    if batch_size > count and (split == "train" or drop_remainder):
        raise DataError(
            f"batch_size {batch_size} is larger than the {count} images of the {split} split; "
            f"use a batch size <= {count}"
        )


# ---------------------------------------------------------------- splitting and finishing


def split_three_ways(name: str, loaded: Loaded, validation_fraction: float, test_fraction: float, seed: int):
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


def finish(part: ArraySplit, limit: int | None, image_size) -> ArraySplit:
    """Cap a split at `limit` images and resize it to `image_size` if it is not that size already."""
    if limit is not None and len(part) > limit:
        part = part.take(np.arange(limit))
    if image_size is None or tuple(part.images.shape[1:3]) == tuple(image_size):
        return part
    if len(part) == 0:
        return ArraySplit(np.zeros((0, *image_size, part.images.shape[3]), part.images.dtype), part.labels)
    chunks = [resize_tensor(part.images[i : i + CONVERT_BATCH], image_size).numpy() for i in range(0, len(part), CONVERT_BATCH)]
    return ArraySplit(np.concatenate(chunks), part.labels)


def resize_tensor(images, size) -> tf.Tensor:
    """Bilinear, antialiased resize of (..., H, W, C) images that keeps uint8 as uint8 and floats in [0, 1]."""
    resized = tf.image.resize(images, size, antialias=True)
    if tf.as_dtype(images.dtype) == tf.uint8:
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
    return tf.clip_by_value(resized, 0.0, 1.0)


def _to_unit_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images


def _unit_float_tensor(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 255.0
