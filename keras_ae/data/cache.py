"""Disk caches of decoded splits: one folder per split fingerprint, written once, never reused for other data.

``auto`` (the default policy of :class:`keras_ae.data.DataSplits`) keeps a split's decoded uint8 images
in memory when they take at most ``MEMORY_CACHE_BYTES``; a larger split is cached on disk here, under
``<root>/<key>/`` where the key is a digest of the split's fingerprint (members, file sizes and times)
and the worker's shard. tf.data writes the cache while the first full pass over the split runs, and
only a pass that reached the end leaves one (``cache.index``); a pass cut short discards its partial
files. A process killed mid-write leaves a lockfile and temporary files: the next process that takes
the folder's lock removes them. A process holds the folder's lock (shared to read a complete cache,
exclusive to write one) until it ends; one that cannot take it trains without a disk cache.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

from keras_ae.data.split import digest

log = logging.getLogger("keras_ae")
CACHE_ENV = "KERAS_AE_CACHE"
MEMORY_CACHE_BYTES = 1 << 30  # auto: a split whose uint8 images take at most this is cached in memory
CACHE_FORMAT = 1  # part of every key: a change of what a cache holds never reads an old one
POLICIES = ("auto", "memory", "disk", "none")
_HELD: dict[Path, tuple[int, int]] = {}  # cache folder -> (open lock file descriptor, flock mode) of this process


def cache_root(cache_dir=None) -> Path:
    """``cache_dir``, else $KERAS_AE_CACHE, else ~/.cache/keras_ae."""
    return Path(cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "keras_ae").expanduser()


def disk_cache(root: Path, fingerprint: str, shard) -> str | None:
    """The tf.data cache prefix for a split, or None when another process holds its folder."""
    folder = root / digest(CACHE_FORMAT, fingerprint, shard)[:32]
    folder.mkdir(parents=True, exist_ok=True)
    complete = (folder / "cache.index").is_file()
    mode = fcntl.LOCK_SH if complete else fcntl.LOCK_EX
    held = _HELD.get(folder)
    if held is not None and (held[1] == fcntl.LOCK_EX or complete):
        return str(folder / "cache")  # this process holds it already (and may be writing it now)
    fd = held[0] if held else os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        if not held:
            os.close(fd)
        log.info("disk cache %s is in use by another process: decoding without it", folder)
        return None
    _HELD[folder] = (fd, mode)
    if not complete:  # no other process can be writing: what a killed writer left is stale
        for stale in folder.glob("cache*"):
            stale.unlink(missing_ok=True)
    return str(folder / "cache")
