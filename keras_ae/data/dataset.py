"""A dataset carved into train, validation and test, and the one tf.data pipeline that feeds them to Keras.

The splits are :class:`keras_ae.data.split.Split` objects (arrays, image files or a TFDS split), carved
by a seeded permutation of positions, so no image is read to split a dataset. A pipeline decodes in
parallel, caches as the policy says (:mod:`keras_ae.data.cache`), shuffles, batches and converts to
float32 in [0, 1]; memory is bounded by its buffers and the cache, not by the number of images.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from keras_ae.data import cache as caching
from keras_ae.data.images import MAX_IMAGE_SIDE, named_error
from keras_ae.data.split import THREADS, Loaded, Split
from keras_ae.errors import DataError

SPLITS = ("train", "validation", "test")
SHUFFLE_BUFFER = 10_000  # decoded images a shuffle keeps when the split is not cached in memory
SAMPLE_IMAGES = 2000  # what DataSplits.sample takes by default: evaluation's and the figures' test images
_PREFETCH_BATCHES = 2


@dataclass(frozen=True)
class DataSplits:
    """A dataset split three ways, with where it came from and how its pipelines cache.

    ``load_args`` are the keyword arguments of :func:`keras_ae.data.load` that give these splits
    again; ``cache`` is the policy (``auto``, ``memory``, ``disk``, ``none``) and ``cache_dir`` where
    disk caches go; ``skipped`` lists the unreadable files left out (``skip_corrupt``).
    """

    name: str
    source: str
    train: Split
    validation: Split
    test: Split
    num_classes: int | None
    load_args: dict | None = None
    cache: str = "auto"
    cache_dir: str | None = None
    skipped: tuple[str, ...] = field(default=())

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(H, W, C) of every image."""
        return tuple(int(d) for d in self.train.image_shape)

    def split(self, split: str) -> Split:
        """The named split; DataError for a name outside train/validation/test."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, split)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray | None]:
        """Every image of one split as float32 in [0, 1], and its labels (or None), in split order."""
        return self.sample(split, None)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Names of the binary attributes of this dataset's images (CelebA's 40), () for most datasets."""
        return self.train.attributes

    def check_attribute(self, attribute: str) -> None:
        """A DataError unless ``attribute`` is one of this dataset's binary attributes."""
        if attribute not in self.attributes:
            has = f"its attributes are {', '.join(self.attributes)}" if self.attributes else "it has none"
            raise DataError(f"attribute {attribute!r}: dataset {self.name!r} has no such binary attribute; {has}")

    def sample(self, split: str, count: int | None = SAMPLE_IMAGES, seed: int = 0,
               attribute: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """At most ``count`` images of a split (float32 in [0, 1]) and their labels: the whole split in its
        order when it has no more, else a seeded random subset. What evaluation and figures use.
        ``attribute`` gives that binary attribute's 0/1 values instead of the labels."""
        if attribute is not None:
            self.check_attribute(attribute)
        data = self.split(split)
        if count is not None and len(data) > count:
            data = data.take(np.random.default_rng(seed).permutation(len(data))[:count])
        with self.reading():
            return data.to_arrays(attribute)

    def fingerprint(self) -> dict:
        """What identifies the data a model was trained on: source, sizes and each split's membership digest."""
        return {"source": self.source, "image_shape": list(self.image_shape),
                "sizes": {name: len(self.split(name)) for name in SPLITS},
                "splits": {name: self.split(name).fingerprint() for name in SPLITS}}

    @contextlib.contextmanager
    def reading(self):
        """Turn an error from reading this dataset's files into one DataError naming the file."""
        try:
            yield
        except tf.errors.ResourceExhaustedError:
            raise  # memory, not a file: the command says so in one line (keras_ae.errors.exit_code)
        except tf.errors.OpError as error:
            message = named_error(error)
            if message:
                raise DataError(message) from None
            bad = sorted({path for name in SPLITS for path in self.split(name).unreadable_files()})
            if not bad:
                raise
            raise DataError(f"{bad[0]}: unreadable image ({len(bad)} unreadable file(s) in {self.name}); "
                            "remove them, or pass --skip-corrupt to leave them out") from None

    def pipeline(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool | None = None,
        seed: int = 0,
        labels: bool = True,
        drop_remainder: bool = False,
        repeat: bool = False,
        shard: tuple[int, int] | None = None,
        shift: int = 0,
    ) -> tf.data.Dataset:
        """Batches of float32 NHWC images in [0, 1], as `(images, labels)` when labelled and asked for.

        Shuffles the train split by default, with a fixed seed, so two fresh pipelines with the same
        seed give the same batches; each further epoch is reshuffled. ``repeat`` repeats it without
        end (training with ``steps_per_epoch``); ``shard=(count, index)`` keeps this worker's share.
        ``shift`` moves each image by up to that many rows and columns (augmentation, see :func:`shifted`).
        """
        data = self.split(split)
        if len(data) == 0:
            fraction = "test_fraction" if split == "test" else "validation_fraction"
            raise DataError(f"{self.name}: the {split} split is empty ({fraction} was 0)")
        _check_batch_size(batch_size, len(data), split, drop_remainder)
        check_integer("seed", seed, 0)
        self.check_shift(shift)
        if shuffle is None:
            shuffle = split == "train"
        where = self._cache_of(data, shard)
        early = shuffle and where is None and data.shuffle_before_decode
        ds = data.examples(labels=labels, shard=shard, shuffle_seed=seed if early else None)
        if where is not None:
            ds = ds.cache(where)
        ds = ds.with_options(_PIPELINE_OPTIONS if shard is None else _SHARDED_OPTIONS)
        if shuffle and not early:
            buffer = len(data) if where == "" else min(len(data), SHUFFLE_BUFFER)
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        if shift:
            ds = shifted(ds, shift, seed)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        images_are_uint8 = ds.element_spec[0].dtype == tf.uint8 if isinstance(ds.element_spec, tuple) else \
            ds.element_spec.dtype == tf.uint8
        convert = _unit_float_tensor if images_are_uint8 else tf.identity
        if isinstance(ds.element_spec, tuple):
            ds = ds.map(lambda x, y: (convert(x), y), num_parallel_calls=THREADS)
        else:
            ds = ds.map(convert, num_parallel_calls=THREADS)
        return ds.prefetch(_PREFETCH_BATCHES)

    def check_shift(self, shift: int) -> None:
        """Refuse an augmentation shift that is negative or would move an image out of its frame."""
        check_integer("shift", shift, 0)
        if shift >= min(self.image_shape[:2]):
            raise DataError(f"{self.name}: a shift of {shift} pixels leaves nothing of its "
                            f"{self.image_shape[0]}x{self.image_shape[1]} images; give fewer than "
                            f"{min(self.image_shape[:2])}")

    def _cache_of(self, data: Split, shard) -> str | None:
        """Where a pipeline of ``data`` caches its decoded images: "" in memory, a path on disk, None nowhere."""
        if data.in_memory:
            return ""
        policy = self.cache
        if policy == "auto":
            policy = "memory" if data.nbytes <= caching.MEMORY_CACHE_BYTES else "disk"
        if policy == "memory":
            return ""
        if policy == "disk":
            return caching.disk_cache(caching.cache_root(self.cache_dir), data.fingerprint(), shard)
        return None


def pipeline_options() -> tf.data.Options:
    """tf.data options of every pipeline: no autotuning.

    The autotuner's background thread sleeps in doubling intervals (up to 2.56 s) and the iterator's
    destructor waits for it to wake; Keras drops the training and validation iterators at each epoch's
    end, so every epoch ended in a stall (BENCHMARKS.md, "What the profile showed"). The maps run on
    every core, decoding deterministically, and two batches are prefetched.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


_PIPELINE_OPTIONS = pipeline_options()
_SHARDED_OPTIONS = pipeline_options()
_SHARDED_OPTIONS.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF


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


def shifted(ds: tf.data.Dataset, pixels: int, seed: int) -> tf.data.Dataset:
    """Each image of ``ds`` (images, or (images, labels)) moved by up to ``pixels`` rows and columns each
    way, the uncovered border zero: a small dataset seen in more positions. The moves are drawn anew
    every epoch, the same for the same seed."""
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def move(element, draw):
        image = element[0] if isinstance(element, tuple) else element
        padded = tf.pad(image, [[pixels, pixels], [pixels, pixels], [0, 0]])
        moved = tf.image.stateless_random_crop(padded, tf.shape(image),
                                               seed=tf.stack([draw, tf.constant(seed, tf.int64)]))
        return (moved, *element[1:]) if isinstance(element, tuple) else moved

    return tf.data.Dataset.zip(ds, draws).map(move, num_parallel_calls=THREADS)


def _check_batch_size(batch_size, count: int, split: str, drop_remainder: bool) -> None:
    check_integer("batch_size", batch_size, 1)
    if batch_size > count and (split == "train" or drop_remainder):
        raise DataError(
            f"batch_size {batch_size} is larger than the {count} images of the {split} split; "
            f"use a batch size <= {count}"
        )


# ---------------------------------------------------------------- splitting and finishing


def split_three_ways(name: str, loaded: Loaded, validation_fraction: float, test_fraction: float, seed: int):
    """(train, validation, test): the source's own validation and test splits where it has them, else carved off
    train (``validation_fraction`` and ``test_fraction`` then apply).

    The carving is a seeded permutation of positions: reproducible from ``seed``, and no image is read.
    """
    count = len(loaded.train)
    n_test = 0 if loaded.test is not None else _carve_count(count, test_fraction)
    n_val = 0 if loaded.validation is not None else _carve_count(count, validation_fraction)
    if n_test + n_val >= count:
        raise DataError(
            f"{name}: {count} images leave none for training with validation_fraction={validation_fraction} "
            f"and test_fraction={test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(count)
    test = loaded.test if loaded.test is not None else loaded.train.take(order[:n_test])
    validation = loaded.validation if loaded.validation is not None else loaded.train.take(order[n_test:n_test + n_val])
    return loaded.train.take(order[n_test + n_val :]), validation, test


def _carve_count(count: int, fraction: float) -> int:
    """How many of `count` images a fraction takes: none for 0, else at least one."""
    return 0 if fraction == 0 else max(1, round(count * fraction))


def finish(part: Split, limit: int | None, image_size) -> Split:
    """Cap a split at `limit` images and resize it to `image_size` if it is not that size already
    (streamed splits are decoded at that size; arrays are resized here)."""
    if limit is not None and len(part) > limit:
        part = part.take(np.arange(limit))
    if image_size is None or tuple(part.image_shape[:2]) == tuple(image_size):
        return part
    return part.resized(image_size)


def _unit_float_tensor(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(images, tf.float32) / 255.0
