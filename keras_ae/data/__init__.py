"""Datasets for keras_ae: find images by name or path, check them, split them, feed them to Keras.

`load(name)` resolves `name` in this order and stops at the first source that exists:

1. an existing path: a `.npz` file, a folder of IDX files, a single IDX images file or a folder of images;
2. `"digits"`: scikit-learn's bundled 8x8 digits (float32, the 0..16 values divided by 16);
3. local roots (`data_dir`, then each entry of $KERAS_AE_DATA): `root` itself when it is an IDX folder
   and was given as `data_dir`, then `root/<name>`, `root/<name>.npz`, `root/<name>-*` (sorted);
4. TensorFlow Datasets: prepared data first (`download=False`), then a download.

A source that exists but is broken raises a `DataError` naming the file; nothing is silently skipped
or repaired. Every array is checked against the real file before it is trusted.

Image folders and TFDS datasets stream from disk through tf.data (decoded in parallel, cached as
`cache` says); IDX files, .npz archives and the digits are small and read into memory.

Modules: `resolve` (the order above and `load`), one reader per format (`idx`, `npz`, `images`,
`tfds`), `split` (what a reader returns: a `Split`) and `arrays` (the in-memory one), `dataset` (the
three splits and the tf.data pipeline), `cache` (disk caches).
"""

from keras_ae.data.arrays import ArraySplit
from keras_ae.data.cache import POLICIES as CACHE_POLICIES
from keras_ae.data.idx import IDX_FILES
from keras_ae.data.images import IMAGE_SUFFIXES, MAX_IMAGE_SIDE
from keras_ae.data.resolve import DATA_ENV, known_datasets, load
from keras_ae.data.split import MAX_ARRAY_BYTES, MAX_CLASSES, Split
from keras_ae.data.dataset import SPLITS, DataSplits, pipeline_options
from keras_ae.data.tfds import TFDS_DATASETS

__all__ = ["CACHE_POLICIES", "DATA_ENV", "IDX_FILES", "IMAGE_SUFFIXES", "MAX_ARRAY_BYTES", "MAX_CLASSES",
           "MAX_IMAGE_SIDE", "SPLITS", "TFDS_DATASETS", "ArraySplit", "DataSplits", "Split", "known_datasets", "load",
           "pipeline_options"]
