"""Folders of PNG/JPEG/GIF/BMP images, loose (unlabelled) or one sub-folder per class, streamed from disk.

Loading a folder lists its files (and their sizes and modification times, for the fingerprint) and
decodes the first image only, with Pillow, to learn the shape and the channels. Every other image is
read and decoded inside tf.data, on every core, when a pipeline asks for it (:meth:`FileSplit.examples`):
its header is checked first (a known format, at most ``MAX_DECODE_PIXELS``, the size of the first
image unless ``image_size`` resizes them all), so a file that claims to be huge costs nothing. A file
that fails there names itself; one that fails to decode is found by :func:`unreadable_files`.
``image_size`` centre-crops each image to the target's aspect ratio, then resizes it (bilinear,
antialiased), as the VAE literature prepares CelebA.
"""

from __future__ import annotations

import functools
import io
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from keras_ae.data.attributes import files_beside, order_of, read_attributes, read_partition, relative_names
from keras_ae.data.split import THREADS, Loaded, Split, digest
from keras_ae.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
MAX_DECODE_PIXELS = 2**26  # an image larger than this (67 Mpixel) is refused before it is decoded
MAX_IMAGE_SIDE = 4096  # without --image-size, a folder of images larger than this a side is refused
ERROR_MARK = "keras_ae:"  # what a decoding check puts before its one-line message (see named_error)
# Pillow modes we read, and the mode each becomes; anything else (16-bit, LA, ...) is refused.
_PIL_MODES = {"1": "L", "L": "L", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB"}


def _is_image(entry: os.DirEntry) -> bool:
    """Whether ``entry`` is an image file (by its suffix). A name with an image suffix that is no regular
    file (a broken or looping link, a socket) is refused rather than skipped in silence."""
    if entry.name.startswith(".") or not entry.name.lower().endswith(IMAGE_SUFFIXES):
        return False
    try:
        if entry.is_file() or entry.is_dir():
            return entry.is_file()
    except OSError:  # a link that loops
        pass
    raise DataError(f"{entry.path}: not a readable file (a broken or looping link?); remove it")


def image_files(folder: Path) -> list[str]:
    """The image file names in ``folder``, sorted (os.scandir: no stat per file, names compared as text)."""
    with os.scandir(folder) as entries:
        return sorted(entry.name for entry in entries if _is_image(entry))


def has_images(folder: Path) -> bool:
    """Whether ``folder`` or one of its sub-folders holds an image file (stops at the first)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if _is_image(entry) or (entry.is_dir() and not entry.name.startswith(".") and
                                    any(_is_image(inner) for inner in os.scandir(entry.path))):
                return True
    return False


def subfolders(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


@dataclass(frozen=True)
class FileSplit(Split):
    """Image files (absolute paths), their labels or None, decoded to ``image_shape`` when streamed.

    ``stats`` holds each file's size and modification time in nanoseconds: with the paths, they make
    the fingerprint, so a file that changes gives another fingerprint (and another cache). ``attributes``
    names the binary attributes read from a file beside the folder (:mod:`keras_ae.data.attributes`), and
    ``attribute_values`` holds their 0/1 values, one row per image.
    """

    paths: np.ndarray
    labels: np.ndarray | None
    stats: np.ndarray
    image_shape: tuple[int, int, int]
    resize: bool  # False: every image must have the first image's size
    attributes: tuple[str, ...] = ()
    attribute_values: np.ndarray | None = None
    shuffle_before_decode = True

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, index: np.ndarray) -> FileSplit:
        return FileSplit(self.paths[index], None if self.labels is None else self.labels[index], self.stats[index],
                         self.image_shape, self.resize, self.attributes,
                         None if self.attribute_values is None else self.attribute_values[index])

    def examples(self, labels=True, shard=None, shuffle_seed=None, attribute=None) -> tf.data.Dataset:
        if attribute is not None:
            tensors = (self.paths, self.attribute_values[:, self.attributes.index(attribute)].astype(np.int64))
        else:
            tensors = (self.paths, self.labels) if labels and self.has_labels else (self.paths,)
        ds = tf.data.Dataset.from_tensor_slices(tensors)
        if shard is not None:
            ds = ds.shard(*shard)
        if shuffle_seed is not None:
            ds = ds.shuffle(len(self), seed=shuffle_seed, reshuffle_each_iteration=True)
        decode = decoder(self.image_shape, self.resize)

        def read(path, *label):
            image = decode(path)
            return (image, *label) if label else image

        return ds.map(read, num_parallel_calls=THREADS, deterministic=True)

    def unreadable_files(self) -> list[str]:
        return unreadable_files(self)

    def fingerprint(self) -> str:
        return digest(self.image_shape, self.resize, "\n".join(self.paths.tolist()), self.stats,
                      b"" if self.labels is None else self.labels, ",".join(self.attributes),
                      b"" if self.attribute_values is None else self.attribute_values)


def load_image_folder(folder: Path, image_size, attributes=None, partition=None) -> Loaded:
    """Images in `folder` (unlabelled) or in its class subfolders (sorted names -> labels 0..K-1), with the binary
    attributes of an ``attributes`` file and the splits of a ``partition`` file (CelebA's when they sit beside
    the folder; :mod:`keras_ae.data.attributes`)."""
    listed = {d: image_files(d) for d in subfolders(folder)}
    classes = [d for d, names in listed.items() if names]
    if classes and len(classes) < len(listed):  # the class indices are the sorted sub-folders: keep them stable
        empty = next(d for d, names in listed.items() if not names)
        raise DataError(f"{empty}: a class folder without images: it would shift the labels of the classes after "
                        "it; remove it or add images")
    loose = image_files(folder)
    if classes and loose:
        raise DataError(
            f"{folder}: has both images ({loose[0]}, ...) and class subfolders ({classes[0].name}, ...); use one layout"
        )
    if not classes and not loose:
        raise DataError(f"{folder}: empty folder: no images ({', '.join(IMAGE_SUFFIXES)})")
    groups = [(os.path.join(d, ""), listed[d]) for d in classes] if classes else [(os.path.join(folder, ""), loose)]
    paths = np.array([prefix + name for prefix, names in groups for name in names])  # text joins: no Path per file
    first = read_image(Path(paths[0]), image_size)
    if image_size is None and max(first.shape[:2]) > MAX_IMAGE_SIDE:
        raise DataError(f"{paths[0]}: {first.shape[0]}x{first.shape[1]} pixels; pass --image-size HxW (image_size="
                        f"(H, W), at most {MAX_IMAGE_SIDE} a side) to train on images this large")
    stats = np.array([(s.st_size, s.st_mtime_ns) for s in map(os.stat, paths)], np.int64).reshape(len(paths), 2)
    labels = np.repeat(np.arange(len(classes), dtype=np.int64), [len(listed[d]) for d in classes]) if classes else None
    split = FileSplit(paths, labels, stats, tuple(int(d) for d in first.shape), image_size is not None)
    attributes, partition = files_beside(folder, attributes, partition)
    relative = relative_names(folder, paths) if attributes or partition else None
    if attributes is not None:
        names, listed, values = read_attributes(attributes)
        split = replace(split, attributes=names, attribute_values=values[order_of(attributes, folder, listed, relative)])
    source, count = f"image folder {folder}", len(classes) or None
    if partition is None:
        return Loaded(source, split, None, count)
    listed, parts = read_partition(partition)
    part = parts[order_of(partition, folder, listed, relative)]
    train, validation, test = (split.take(np.flatnonzero(part == p)) for p in (0, 1, 2))
    if not len(train):
        raise DataError(f"{partition}: no image is in the training part (0)")
    return Loaded(f"{source} (split by {partition.name})", train, test if len(test) else None, count,
                  validation if len(validation) else None)


def read_image(path: Path, image_size=None) -> np.ndarray:
    """One image as (H, W, C) uint8 with Pillow (its decompression-bomb limits), resized to `image_size`."""
    try:
        with warnings.catch_warnings():
            # Refuse what Pillow only warns about: up to twice MAX_IMAGE_PIXELS from a few hundred bytes.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # From memory: Pillow reads a chunk at the length the file claims, and a file's read(n) allocates n bytes.
            image = Image.open(io.BytesIO(path.read_bytes()))
        with image:
            image.load()
            mode = _PIL_MODES.get(image.mode)
            if mode is None:
                raise DataError(f"{path}: unsupported image mode {image.mode}; save it as 8-bit grey, RGB or RGBA")
            if image.mode == "P" and "transparency" in image.info:
                mode = "RGBA"
            image = image.convert(mode)
            array = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except UnidentifiedImageError:  # its message shows the in-memory file object
        raise DataError(f"{path}: unreadable image (cannot identify image file)") from None
    except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError,  # Pillow's ways to fail
            Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
    array = array[..., None] if array.ndim == 2 else array
    return array if image_size is None else crop_resize(array, image_size).numpy()


# ---------------------------------------------------------------- decoding inside tf.data


def _header_size(contents):
    """(height, width) read from a PNG, GIF, BMP or JPEG header without decoding; (-1, -1) for other data.

    PNG, GIF and BMP sizes are weighted sums of the first 32 bytes (zero-padded); JPEG's sits in a
    marker further on, read by one branch. (Few ops on purpose: every op costs at each pipeline start.)
    """
    head = tf.strings.substr(contents + b"\0" * 32, 0, 32)
    b = tf.cast(tf.io.decode_raw(head, tf.uint8), tf.int64)
    png = tf.reduce_sum(tf.reshape(b[16:24], (2, 4)) * [2**24, 2**16, 2**8, 1], axis=1)  # width, height
    gif = tf.reduce_sum(tf.reshape(b[6:10], (2, 2)) * [1, 2**8], axis=1)
    bmp = tf.reduce_sum(tf.reshape(b[18:26], (2, 4)) * [1, 2**8, 2**16, 2**24], axis=1)
    bmp = tf.abs(tf.where(bmp >= 2**31, bmp - 2**32, bmp))  # signed: a negative height is a top-down bitmap
    length = tf.strings.length(contents)
    size = tf.where(tf.equal(tf.strings.substr(head, 0, 4), b"\x89PNG") & (length >= 24), png,
           tf.where(tf.equal(tf.strings.substr(head, 0, 3), b"GIF") & (length >= 10), gif,
           tf.where(tf.equal(tf.strings.substr(head, 0, 2), b"BM") & (length >= 26), bmp,
                    tf.constant([-1, -1], tf.int64))))
    return tf.cond(tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff"),
                   lambda: tf.cast(tf.image.extract_jpeg_shape(contents)[1::-1], tf.int64), lambda: size)[::-1]


def _check(ok, *message):
    """An assertion whose failure message is ERROR_MARK + one line (tensors and texts joined)."""
    text = tf.strings.join([ERROR_MARK, *[m if isinstance(m, tf.Tensor) else str(m) for m in message]])
    return tf.debugging.Assert(ok, [text])


@functools.lru_cache(maxsize=None)
def decoder(image_shape: tuple[int, int, int], resize: bool):
    """:func:`decode_file` as one traced function per shape: a pipeline calls it instead of tracing it again."""
    return tf.function(lambda path: decode_file(path, image_shape, resize),
                       input_signature=[tf.TensorSpec((), tf.string)])


def decode_file(path, image_shape, resize: bool):
    """One image file -> uint8 (H, W, C) of ``image_shape``, its header checked before it is decoded."""
    contents = tf.io.read_file(path)
    size = _header_size(contents)
    height, width = tf.strings.as_string(size[0]), tf.strings.as_string(size[1])
    checks = [_check(size[0] > 0, path, ": unreadable image (not a PNG, JPEG, GIF or BMP file)"),
              _check(size[0] * size[1] <= MAX_DECODE_PIXELS, path, ": image of ", height, "x", width,
                     f" pixels, over the {MAX_DECODE_PIXELS} a decoder may take")]
    if not resize:
        checks.append(_check(tf.reduce_all(tf.equal(size, image_shape[:2])), path, ": image is ", height, "x",
                             width, f" but the first image is {image_shape[0]}x{image_shape[1]}; pass --image-size "
                             "HxW (image_size=(H, W)) to resize all"))
    with tf.control_dependencies(checks):
        image = tf.io.decode_image(contents, channels=image_shape[2], expand_animations=False)
    if resize:
        image = crop_resize(image, image_shape[:2])
    return tf.ensure_shape(image, image_shape)


def crop_resize(image, size, crop: int | None = None):
    """The largest centred crop of ``image`` (H, W, C) with the aspect ratio of ``size``, resized to it (uint8).

    ``crop`` first keeps the central crop x crop square (where a dataset's subject is, e.g. CelebA's face).
    """
    if crop is not None:
        image = tf.image.resize_with_crop_or_pad(image, crop, crop)
    shape = tf.shape(image)
    height, width = tf.cast(shape[0], tf.float64), tf.cast(shape[1], tf.float64)
    scale = tf.minimum(height / size[0], width / size[1])
    crop_h = tf.cast(tf.math.round(scale * size[0]), tf.int32)
    crop_w = tf.cast(tf.math.round(scale * size[1]), tf.int32)
    top, left = (shape[0] - crop_h) // 2, (shape[1] - crop_w) // 2
    cropped = image[top:top + crop_h, left:left + crop_w]
    resized = tf.image.resize(cropped, size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


# ---------------------------------------------------------------- naming a file that fails


def named_error(error: Exception) -> str | None:
    """The one-line message a decoding check left in a TensorFlow error, or None."""
    found = re.search(re.escape(ERROR_MARK) + r"(.*?)\]", str(error))
    return found.group(1).strip() if found else None


def unreadable_files(split: FileSplit) -> list[str]:
    """The files of ``split`` that fail to be read or decoded (a pass over all of them, on every core)."""
    index = np.arange(len(split))
    decode = decoder(split.image_shape, split.resize)
    ds = tf.data.Dataset.from_tensor_slices((index, split.paths)).map(
        lambda i, path: (i, tf.reduce_max(decode(path))), num_parallel_calls=THREADS)  # (the max: really decoded)
    options = tf.data.Options()
    options.autotune.enabled = False
    seen = np.zeros(len(split), bool)
    for batch, _ in ds.ignore_errors().batch(1024).with_options(options).as_numpy_iterator():
        seen[batch] = True
    return split.paths[~seen].tolist()
