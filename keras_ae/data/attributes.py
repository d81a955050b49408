"""Binary attributes and a train/validation/test partition read from files beside a folder of images.

CelebA's official download is ``img_align_celeba/`` beside ``list_attr_celeba.txt`` (a count line, a line of
the 40 attribute names, then ``file -1|1 ...`` rows) and ``list_eval_partition.txt`` (``file 0|1|2``: train,
validation, test). Both are found there on their own, or given as ``attributes`` and ``partition``. Anyone's
own data can give a CSV instead: a ``file,<attr>,...`` header, then rows of 0/1 or -1/1 values. Files are
named relative to the image folder (``000001.jpg``, or ``class/name.png`` for class folders).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from keras_ae.errors import DataError

CELEBA_ATTRIBUTES, CELEBA_PARTITION = "list_attr_celeba.txt", "list_eval_partition.txt"
_VALUES = {"1": 1, "-1": 0, "0": 0}  # attribute values as written -> 0/1


def files_beside(folder: Path, attributes, partition) -> tuple[Path | None, Path | None]:
    """The attribute and partition files: the ones given, else CelebA's when they sit beside ``folder``."""
    found = [Path(given) if given is not None else (folder.parent / default if (folder.parent / default).is_file()
                                                    else None)
             for given, default in ((attributes, CELEBA_ATTRIBUTES), (partition, CELEBA_PARTITION))]
    for path in found:
        if path is not None and not path.is_file():
            raise DataError(f"{path}: no such file")
    return found[0], found[1]


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # (a spreadsheet's CSV may begin with a BOM)
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error})") from None


def read_attributes(path: Path) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    """(names, files, 0/1 values (files x names) as uint8) from a CelebA attribute list or a CSV."""
    lines = _lines(path)
    if path.suffix.lower() == ".csv":
        try:
            rows = list(csv.reader(lines))
        except csv.Error as error:
            raise DataError(f"{path}: not a CSV ({error})") from None
        if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "file":
            raise DataError(f"{path}:1: expected a header file,<attribute>,..., got {lines[0][:80] if lines else ''!r}")
        names = tuple(name.strip() for name in rows[0][1:])
        body = [(number, row) for number, row in enumerate(rows[1:], 2) if row]
    else:
        if len(lines) < 2 or not lines[0].strip().isdigit():
            raise DataError(f"{path}:1: expected CelebA's layout: a count line, a line of attribute names, then "
                            f"file -1|1 ... rows (or give a .csv)")
        names = tuple(lines[1].split())
        body = [(number, line.split()) for number, line in enumerate(lines[2:], 3) if line.strip()]
        if int(lines[0]) != len(body):
            raise DataError(f"{path}:1: says {int(lines[0])} rows, the file has {len(body)}")
    if len(set(names)) != len(names) or not all(names):
        raise DataError(f"{path}: attribute names must be distinct and non-empty, got {', '.join(names)[:120]}")
    files, values = [], np.zeros((len(body), len(names)), np.uint8)
    for index, (number, row) in enumerate(body):
        cells = [cell.strip() for cell in row]
        if len(cells) != len(names) + 1 or any(cell not in _VALUES for cell in cells[1:]):
            raise DataError(f"{path}:{number}: expected a file name and {len(names)} values of 0/1 or -1/1, "
                            f"got {' '.join(cells)[:80]!r}")
        files.append(cells[0])
        values[index] = [_VALUES[cell] for cell in cells[1:]]
    return names, files, values


def read_partition(path: Path) -> tuple[list[str], np.ndarray]:
    """(files, 0|1|2 per file: train, validation, test) from ``file part`` rows."""
    files, parts = [], []
    for number, line in enumerate(_lines(path), 1):
        cells = line.replace(",", " ").split()
        if not cells:
            continue
        if len(cells) != 2 or cells[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{number}: expected a file name and 0, 1 or 2 (train, validation, test), got "
                            f"{line[:80]!r}")
        files.append(cells[0])
        parts.append(int(cells[1]))
    return files, np.array(parts, np.int8)


def order_of(path: Path, folder: Path, listed: list[str], relative: np.ndarray) -> np.ndarray:
    """For each image of the folder (``relative`` names), its row in ``listed``; a DataError for rows of files
    that are not there and for images without a row."""
    row = {name: i for i, name in enumerate(listed)}
    if len(row) != len(listed):
        seen = set()
        twice = next(name for name in listed if name in seen or seen.add(name))
        raise DataError(f"{path}: {twice} has two rows")
    missing = sorted(set(row) - set(relative.tolist()))
    if missing:
        raise DataError(f"{path}: {len(missing)} rows name files that are not in {folder} (e.g. {missing[0]})")
    unlisted = [name for name in relative.tolist() if name not in row]
    if unlisted:
        raise DataError(f"{path}: {len(unlisted)} images of {folder} have no row (e.g. {unlisted[0]})")
    return np.array([row[name] for name in relative.tolist()], np.int64)


def relative_names(folder: Path, paths: np.ndarray) -> np.ndarray:
    """Each image path relative to ``folder``, with / between parts (what the files' rows name)."""
    prefix = len(os.path.join(folder, ""))
    return np.array([path[prefix:].replace(os.sep, "/") for path in paths.tolist()])
