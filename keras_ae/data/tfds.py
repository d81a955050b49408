"""TensorFlow Datasets: prepared data first, then a download."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_ae.data.arrays import ArraySplit, Loaded, pair_up
from keras_ae.data.splits import CONVERT_BATCH, resize_tensor
from keras_ae.errors import DataError

TFDS_DATASETS = ("mnist", "fashion_mnist", "kmnist", "emnist", "cifar10", "cifar100", "svhn_cropped")


class Unavailable(Exception):
    """TFDS could not provide a dataset; `unknown` when TFDS has no builder of that name."""

    def __init__(self, reason: str, unknown: bool = False):
        super().__init__(reason)
        self.unknown = unknown


def load_tfds(name: str, download: bool, image_size) -> Loaded:
    """The train (and test, when there is one) split of TFDS dataset `name` as uint8 arrays."""
    import tensorflow_datasets as tfds

    try:
        train, info = tfds.load(name, split="train", download=download, with_info=True)
        # Under tfds.testing.mock_data the split list is empty (unknown): assume the usual train/test.
        has_test = "test" in info.splits or not info.splits
        test = tfds.load(name, split="test", download=download) if has_test else None
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
    labelled = "label" in features
    num_classes = getattr(features["label"], "num_classes", None) if labelled else None
    train = _tfds_arrays(train, name, "train", labelled, image_size)
    test = None if test is None else _tfds_arrays(test, name, "test", labelled, image_size)
    return pair_up(f"tfds:{name}", f"tfds:{name}", train, test, num_classes)


def _tfds_arrays(ds: tf.data.Dataset, name: str, split: str, labelled: bool, image_size) -> ArraySplit:
    """A TFDS split as numpy, in batches (batch_size=-1 aborts the process under mock_data)."""
    import tensorflow_datasets as tfds

    def pick(example):
        image = example["image"] if image_size is None else resize_tensor(example["image"], image_size)
        return (image, example["label"]) if labelled else (image,)

    batches = list(tfds.as_numpy(ds.map(pick).batch(CONVERT_BATCH)))
    if not batches:
        raise DataError(f"tfds:{name}: the {split} split is empty")
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches]).astype(np.int64) if labelled else None
    return ArraySplit(images, labels)


def _reason(error: Exception) -> str:
    """The first sentence of a TFDS error: its messages run to many lines (e.g. every dataset name)."""
    lines = str(error).strip().splitlines()
    return lines[0].split(". ")[0].rstrip(".")[:200] if lines else type(error).__name__
