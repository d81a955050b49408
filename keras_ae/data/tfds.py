"""TensorFlow Datasets, streamed: prepared data first, then a download (when the registry answers).

A TFDS split stays a tf.data pipeline: a :class:`TFDSSplit` is the split's stream in TFDS's stored order
(``shuffle_files=False``, so positions are stable) filtered to its members' positions, so carving a
validation split off ``train`` needs no pass over the images. Images are resized (centre crop to the
target's aspect ratio; CelebA's central 148x148 face first, as the VAE literature crops it) when
``image_size`` is given; labels come from a ``label`` feature, and the binary ``attributes`` (CelebA's
40) can stand in for the labels of a sample (``DataSplits.sample(attribute=...)``).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from keras_ae.data.images import crop_resize
from keras_ae.data.split import THREADS, Loaded, Split, digest, pair_up
from keras_ae.errors import DataError

TFDS_DATASETS = ("mnist", "binarized_mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn_cropped",
                 "celeb_a")
# Datasets whose uint8 images hold 0 and 1 (binarized_mnist: Larochelle & Murray's fixed binarization):
# stored as 0 and 255, so the one scaling to [0, 1] of every image gives them back as 0 and 1.
BINARY = ("binarized_mnist",)
# The central square kept before resizing, where the literature crops: CelebA's 178x218 photos to the face.
CROPS = {"celeb_a": 148}
REGISTRY = ("storage.googleapis.com", 443)  # where TFDS downloads prepared datasets from first
REGISTRY_TIMEOUT = 3.0  # seconds to wait for it before a download is not attempted


class Unavailable(Exception):
    """TFDS could not provide a dataset; `unknown` when TFDS has no builder of that name."""

    def __init__(self, reason: str, unknown: bool = False):
        super().__init__(reason)
        self.unknown = unknown


@dataclass(frozen=True)
class TFDSSplit(Split):
    """Members ``index`` (positions in TFDS's stored order) of one TFDS split, streamed from ``dataset``."""

    name: str
    split: str
    version: str
    dataset: tf.data.Dataset  # the TFDS split: dicts of features, in stored order
    total: int  # examples in the TFDS split
    index: np.ndarray
    image_shape: tuple[int, int, int]
    has_labels: bool
    resize: bool
    crop: int | None = None  # the central crop x crop square kept before resizing (CROPS)
    attributes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.index)

    def take(self, index: np.ndarray) -> TFDSSplit:
        return TFDSSplit(self.name, self.split, self.version, self.dataset, self.total, self.index[index],
                         self.image_shape, self.has_labels, self.resize, self.crop, self.attributes)

    def examples(self, labels=True, shard=None, shuffle_seed=None, attribute=None) -> tf.data.Dataset:
        member = np.zeros(self.total, bool)
        member[self.index] = True
        member = tf.constant(member)
        ds = self.dataset.enumerate().filter(lambda i, example: member[i])
        ds = ds.apply(tf.data.experimental.assert_cardinality(len(self)))  # Keras then knows an epoch's steps
        if shard is not None:
            ds = ds.shard(*shard)
        shape, resize, crop, binary = self.image_shape, self.resize, self.crop, self.name in BINARY
        with_label = attribute is not None or (labels and self.has_labels)

        def pick(i, example):
            image = example["image"]
            if binary:
                image = tf.where(image > 0, tf.constant(255, tf.uint8), tf.constant(0, tf.uint8))
            image = crop_resize(image, shape[:2], crop) if resize else image
            image = tf.ensure_shape(image, shape)
            label = example["attributes"][attribute] if attribute is not None else example.get("label")
            return (image, tf.cast(label, tf.int64)) if with_label else image

        return ds.map(pick, num_parallel_calls=THREADS, deterministic=True)

    def fingerprint(self) -> str:
        return digest(self.name, self.version, self.split, self.total, self.index, self.image_shape, self.crop)


def registry_reachable() -> bool:
    """Whether TFDS's download host answers within REGISTRY_TIMEOUT seconds (offline, TFDS retries for minutes)."""
    try:
        socket.create_connection(REGISTRY, timeout=REGISTRY_TIMEOUT).close()
    except OSError:
        return False
    return True


def load_tfds(name: str, download: bool, image_size) -> Loaded:
    """The train (and test, when there is one) split of TFDS dataset `name`, as streams."""
    import tensorflow_datasets as tfds

    try:
        train, info = tfds.load(name, split="train", download=download, with_info=True, shuffle_files=False)
        # Under tfds.testing.mock_data the split list is empty (unknown): assume the usual train/test.
        has_test = "test" in info.splits or not info.splits
        test = tfds.load(name, split="test", download=download, shuffle_files=False) if has_test else None
    except tfds.core.registered.DatasetNotFoundError as e:
        raise Unavailable(_reason(e), unknown=True) from None
    except Exception as e:  # TFDS raises anything from AssertionError to network errors here
        raise Unavailable(f"{type(e).__name__}: {_reason(e)}") from None

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
    shape = (*(image_size or (height, width)), channels)
    labelled = "label" in features
    num_classes = getattr(features["label"], "num_classes", None) if labelled else None
    attributes = tuple(features["attributes"].keys()) if "attributes" in features else ()

    def stream(split: str, dataset) -> TFDSSplit:
        total = _count(info, split, dataset)
        if total == 0:
            raise DataError(f"tfds:{name}: the {split} split is empty")
        return TFDSSplit(name, split, str(info.version), dataset, total, np.arange(total), shape, labelled,
                         image_size is not None, CROPS.get(name) if image_size is not None else None, attributes)

    return pair_up(f"tfds:{name}", f"tfds:{name}", stream("train", train),
                   None if test is None else stream("test", test), num_classes)


def _count(info, split: str, dataset) -> int:
    """Examples in a TFDS split: from its info, else from the dataset (counted under mock data)."""
    if split in info.splits and info.splits[split].num_examples:
        return int(info.splits[split].num_examples)
    cardinality = int(dataset.cardinality())
    return cardinality if cardinality >= 0 else int(dataset.reduce(0, lambda n, _: n + 1))


def _reason(error: Exception) -> str:
    """The first sentence of a TFDS error: its messages run to many lines (e.g. every dataset name)."""
    lines = str(error).strip().splitlines()
    return lines[0].split(". ")[0].rstrip(".")[:200] if lines else type(error).__name__
