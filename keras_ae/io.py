"""Atomic file writes, process locks and confined paths: a crash or a second process never leaves a
truncated or mixed file behind, and a path read from a file never leaves its folder."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)
_LOCKS: dict[str, list] = {}  # lock file -> [open file descriptor, depth] of the locks this process holds


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it over ``path`` in one step.

    The temporary file keeps the target's suffixes (Keras and matplotlib choose the format by them,
    e.g. ``.weights.h5``) and lives in the same folder, so the final ``os.replace`` is atomic. On
    error it is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:len(path.name) - len(suffix)]}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the final file the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path, data) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


MAX_JSON_BYTES = 64 << 20  # no file keras_ae writes comes near this; a larger one (or /dev/zero) is refused


def read_json(path, error=None, hint: str = ""):
    """The JSON document in ``path``, or ``error`` (a KerasAEError class) with one line naming the file.

    ``hint`` says what to do when the file is missing or unreadable (e.g. "run train.py first").
    """
    from keras_ae.errors import KerasAEError, one_line

    error, path = error or KerasAEError, Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise error(f"{path}: not found{hint}") from None
    except OSError as os_error:
        raise error(f"{path}: unreadable ({os_error.strerror or one_line(os_error)}){hint}") from None
    if len(blob) > MAX_JSON_BYTES:
        raise error(f"{path}: over {MAX_JSON_BYTES} bytes, not a file keras_ae wrote{hint}")
    try:
        return json.loads(blob)
    except (ValueError, RecursionError) as parse_error:  # ValueError: bad UTF-8 or JSON, an int of > 4300 digits
        raise error(f"{path}: unreadable ({one_line(parse_error)}){hint}") from None


def confined(base, name, source) -> Path:
    """``base / name`` when ``name`` is a relative path that stays inside ``base``; else a KerasAEError
    naming ``source``, the file the path was read from.

    The one check for paths read from files keras_ae wrote (a backup's state, an export's metadata):
    a hand-edited ``../../elsewhere`` or an absolute path never reaches a loader or a delete.
    """
    from keras_ae.errors import KerasAEError

    base = Path(base)
    if not isinstance(name, str) or not name:
        raise KerasAEError(f"{source}: {name!r:.80} is not a path inside {base}; refusing it")
    path = base / name
    if Path(name).is_absolute() or not path.resolve().is_relative_to(base.resolve()):
        raise KerasAEError(f"{source}: the path {name!r:.80} leaves {base}; refusing it")
    return path


@contextlib.contextmanager
def exclusive(lock_file, busy: str):
    """Hold an exclusive OS lock (``flock``) on ``lock_file`` for the block; a KerasAEError(``busy``) at once
    when another process holds it.

    The lock dies with its process (a kill never leaves a folder locked), and one process may take it
    again inside the block (``train.py`` locks its run folder, then trains, evaluates and exports it).
    """
    from keras_ae.errors import KerasAEError

    key = os.path.abspath(lock_file)
    held = _LOCKS.get(key)
    if held is None:
        Path(key).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise KerasAEError(busy) from None
        held = _LOCKS[key] = [fd, 0]
    held[1] += 1
    try:
        yield
    finally:
        held[1] -= 1
        if not held[1]:
            del _LOCKS[key]
            os.close(held[0])  # releases the lock; the file stays (removing it would race a waiting process)
