"""Finding a dataset by name or path: the order `keras_ae.data.load` tries its sources in."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from keras_ae.data.arrays import ArraySplit
from keras_ae.data.cache import POLICIES
from keras_ae.data.split import Loaded
from keras_ae.data.idx import idx_file, load_idx_file, load_idx_folder, IDX_FILES
from keras_ae.data.images import IMAGE_SUFFIXES, has_images, load_image_folder
from keras_ae.data.npz import load_npz
from keras_ae.data.dataset import DataSplits, check_fraction, check_image_size, check_integer, finish, split_three_ways
from keras_ae.data.tfds import REGISTRY, REGISTRY_TIMEOUT, TFDS_DATASETS, Unavailable, load_tfds, registry_reachable
from keras_ae.errors import DataError

DATA_ENV = "KERAS_AE_DATA"


def known_datasets() -> list[str]:
    """Dataset names keras_ae documents: the bundled digits and TFDS image datasets."""
    return ["digits", *TFDS_DATASETS]


def load(
    name: str,
    *,
    data_dir: str | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    image_size: tuple[int, int] | None = None,
    limit: int | None = None,
    download: bool = True,
    skip_corrupt: bool = False,
    cache: str = "auto",
    cache_dir: str | None = None,
    attributes: str | None = None,
    partition: str | None = None,
) -> DataSplits:
    """Find dataset `name` (see the module docstring), check it and split it.

    Validation and test are the source's own splits (e.g. a .npz's x_valid and x_test), or carved from
    train with a permutation seeded by `seed` (`validation_fraction`, `test_fraction`) where it has none.
    `image_size=(H, W)` resizes every image. `limit` caps each of the three splits at that many images (after splitting).
    `download=False` never asks TFDS to download. `skip_corrupt` reads every image file once and leaves
    out the unreadable ones (listed in ``skipped``) instead of failing when training meets one. `cache`
    and `cache_dir` say how the pipelines cache decoded images (:mod:`keras_ae.data.cache`). A folder of
    images takes its binary attributes from an `attributes` file (CelebA's list or a CSV) and its splits from
    a `partition` file, CelebA's own when they sit beside it (:mod:`keras_ae.data.attributes`).
    """
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"dataset name must be a non-empty string, got {name!r}")
    if data_dir is not None and not isinstance(data_dir, (str, os.PathLike)):
        raise DataError(f"data_dir must be a folder path or None, got {data_dir!r:.80}")
    if not isinstance(download, bool):
        raise DataError(f"download must be true or false, got {download!r:.80}")
    check_fraction("validation_fraction", validation_fraction)
    check_fraction("test_fraction", test_fraction)
    check_integer("seed", seed, 0)
    if limit is not None:
        check_integer("limit", limit, 1)
    check_image_size(image_size)
    if cache not in POLICIES:
        raise DataError(f"unknown cache policy {cache!r}; choose one of {', '.join(POLICIES)}")
    loaded = _resolve(name, data_dir, image_size, download, (attributes, partition))
    skipped = ()
    if skip_corrupt:
        loaded, skipped = _without_unreadable(loaded)
    train, validation, test = split_three_ways(name, loaded, validation_fraction, test_fraction, seed)
    parts = [finish(part, limit, image_size) for part in (train, validation, test)]
    how = {"name": name, "data_dir": data_dir, "validation_fraction": validation_fraction,
           "test_fraction": test_fraction, "seed": seed, "image_size": None if image_size is None else list(image_size),
           "limit": limit, "download": download, "skip_corrupt": skip_corrupt, "attributes": attributes,
           "partition": partition}
    return DataSplits(name, loaded.source, *parts, loaded.num_classes, how, cache, cache_dir, skipped)


def _without_unreadable(loaded: Loaded) -> tuple[Loaded, tuple[str, ...]]:
    """The source without its unreadable files (one pass over all of them), and those files."""
    parts, skipped = [], []
    for part in (loaded.train, loaded.test, loaded.validation):
        bad = set(part.unreadable_files()) if part is not None else set()
        if bad:
            part = part.take(np.flatnonzero([path not in bad for path in part.paths]))
        parts.append(part)
        skipped += sorted(bad)
    if len(parts[0]) == 0:
        raise DataError(f"{loaded.source}: no readable image ({len(skipped)} unreadable)")
    return Loaded(loaded.source, parts[0], parts[1], loaded.num_classes, parts[2]), tuple(skipped)


# ---------------------------------------------------------------- name resolution


def _resolve(name: str, data_dir: str | None, image_size, download: bool, files=(None, None)) -> Loaded:
    """Try every place `name` could come from, in order; one DataError listing them all if none works.
    ``files`` are the attributes and partition files, for a folder of images."""
    path = Path(name).expanduser()
    if path.exists():
        return _load_path(path, image_size, files)
    if name.startswith(("/", "~", ".")) or path.suffix.lower() in (".npz", ".gz"):
        raise DataError(f"{name}: no such file or folder")
    if any(files) and not any(_kind(candidate) == "image folder" for root, explicit in _roots(data_dir)
                              for candidate in _candidates(root, name, explicit)):
        raise DataError(f"{name}: --attributes and --partition apply to a folder of images")
    if name == "digits":
        return _load_digits()

    tried = []
    for root, explicit in _roots(data_dir):
        for candidate in _candidates(root, name, explicit):
            if _kind(candidate):
                return _load_path(candidate, image_size, files)
        tried.append(f"{root} ({name}, {name}.npz, {name}-*)")
    if not tried:
        tried.append(f"no local folders (${DATA_ENV} unset, no data_dir)")

    unknown = False
    for attempt in (False, True) if download else (False,):
        if attempt and not registry_reachable():  # offline, TFDS would retry the download for minutes
            tried.append(f"tfds:{name} download: {REGISTRY[0]}:{REGISTRY[1]} did not answer within "
                         f"{REGISTRY_TIMEOUT:g} s")
            break
        try:
            return load_tfds(name, attempt, image_size)
        except Unavailable as e:
            tried.append(f"tfds:{name} {'download' if attempt else 'prepared data'}: {e}")
            if e.unknown:
                unknown = True
                break
    places = "; ".join(tried)
    if unknown:
        raise DataError(
            f"unknown dataset {name!r}; known: {', '.join(known_datasets())}; "
            f"or give a path to a .npz, IDX or image folder (tried {places})"
        )
    raise DataError(
        f"dataset {name!r} not available: tried {places}. Put IDX files (or {name}.npz) in "
        f"${DATA_ENV}/{name} or a folder given as --data-dir, prepare it with TFDS in {_tfds_data_dir()}, "
        "or run with network so tfds can download it"
    )


def _tfds_data_dir() -> str:
    """Where TFDS looks for prepared datasets ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
    return os.environ.get("TFDS_DATA_DIR") or str(Path("~/tensorflow_datasets").expanduser())


def _roots(data_dir: str | None) -> list[tuple[Path, bool]]:
    """Local folders to search: (root, given explicitly as data_dir)."""
    roots = []
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not root.is_dir():
            raise DataError(f"data_dir {data_dir}: no such folder")
        roots.append((root, True))
    for entry in os.environ.get(DATA_ENV, "").split(os.pathsep):
        if entry:
            roots.append((Path(entry).expanduser(), False))
    return roots


def _candidates(root: Path, name: str, explicit: bool) -> list[Path]:
    """Paths under `root` that could hold `name`, most specific first."""
    found = [root] if explicit and _kind(root) == "idx folder" else []
    found += [root / name, root / f"{name}.npz"]
    if root.is_dir():
        found += sorted(root.glob(f"{glob.escape(name)}-*"))
    return found


def _kind(path: Path) -> str | None:
    """Which format `path` holds, judged by names only; None when it is no dataset we read."""
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return "npz"
        if "-idx" in path.name and path.name.endswith(("-ubyte", "-ubyte.gz")):
            return "idx file"
        return None
    if not path.is_dir():
        return None
    if idx_file(path, IDX_FILES["train"][0]):
        return "idx folder"
    if has_images(path):
        return "image folder"
    return None


def _load_path(path: Path, image_size, files=(None, None)) -> Loaded:
    """Load the user's own data at `path`, whatever its format (``files``: attributes and partition files, for
    a folder of images)."""
    kind = _kind(path)
    if any(files) and kind != "image folder":
        raise DataError(f"{path}: --attributes and --partition apply to a folder of images, not a {kind or 'file'}")
    if kind == "npz":
        return load_npz(path)
    if kind == "idx folder":
        return load_idx_folder(path)
    if kind == "idx file":
        return load_idx_file(path)
    if kind == "image folder":
        return load_image_folder(path, image_size, *files)
    if path.is_dir():
        what = "folder holds no IDX files and no images" if any(path.iterdir()) else "empty folder"
        raise DataError(f"{path}: {what} (want *-idx3-ubyte[.gz] or {', '.join(IMAGE_SUFFIXES)})")
    raise DataError(f"{path}: not a .npz file, an IDX file (*-idx3-ubyte[.gz]) or a folder of images")


# ---------------------------------------------------------------- digits


def _load_digits() -> Loaded:
    """scikit-learn's 1,797 8x8 digits, values 0..16 divided by 16 into float32 [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    return Loaded("sklearn digits", ArraySplit(images, digits.target.astype(np.int64)), None, 10)
