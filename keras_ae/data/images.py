"""Folders of PNG/JPEG images: loose (unlabelled) or one sub-folder per class."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_ae.data.arrays import MAX_ARRAY_BYTES, ArraySplit, Loaded
from keras_ae.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# Pillow modes we read, and the mode each becomes; anything else (16-bit, LA, ...) is refused.
_PIL_MODES = {"1": "L", "L": "L", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "YCbCr": "RGB"}


def image_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_image_folder(folder: Path, image_size) -> Loaded:
    """Images in `folder` (unlabelled) or in its class subfolders (sorted names -> labels 0..K-1)."""
    classes = [d for d in subfolders(folder) if image_files(d)]
    loose = image_files(folder)
    if classes and loose:
        raise DataError(
            f"{folder}: has both images ({loose[0].name}, ...) and class subfolders ({classes[0].name}, ...); "
            "use one layout"
        )
    if not classes and not loose:
        raise DataError(f"{folder}: empty folder: no images ({', '.join(IMAGE_SUFFIXES)})")
    if classes:
        files = [(f, label) for label, d in enumerate(classes) for f in image_files(d)]
    else:
        files = [(f, None) for f in loose]
    first_path, first = files[0][0], _read_image(files[0][0], image_size)
    if len(files) * first.nbytes > MAX_ARRAY_BYTES:  # every image must match the first: this is the total
        raise DataError(
            f"{folder}: {len(files)} images of {'x'.join(map(str, first.shape))} = {len(files) * first.nbytes} "
            f"bytes, over the {MAX_ARRAY_BYTES} limit; pass --image-size HxW (image_size=(H, W)) to shrink them"
        )
    images = [first]
    for path, _ in files[1:]:
        image = _read_image(path, image_size)
        if image.shape[:2] != first.shape[:2]:
            raise DataError(
                f"{first_path} is {first.shape[0]}x{first.shape[1]} but {path} is "
                f"{image.shape[0]}x{image.shape[1]}; pass --image-size HxW (image_size=(H, W)) to resize all"
            )
        if image.shape[2] != first.shape[2]:
            raise DataError(
                f"{first_path} has {first.shape[2]} channel(s) but {path} has {image.shape[2]}; "
                "convert the images to one mode (all grayscale or all RGB)"
            )
        images.append(image)
    labels = np.array([label for _, label in files], dtype=np.int64) if classes else None
    source = f"image folder {folder}"
    return Loaded(source, ArraySplit(np.stack(images), labels), None, len(classes) or None)


def _read_image(path: Path, image_size) -> np.ndarray:
    """One image as (H, W, C) uint8, resized to `image_size` when given."""
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
            if image_size is not None:
                image = image.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except DataError:
        raise
    except UnidentifiedImageError:  # its message shows the in-memory file object
        raise DataError(f"{path}: unreadable image (cannot identify image file)") from None
    except (OSError, ValueError, SyntaxError, MemoryError, Image.DecompressionBombError,  # Pillow's ways to fail
            Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: unreadable image ({e})") from None
    return array[..., None] if array.ndim == 2 else array
