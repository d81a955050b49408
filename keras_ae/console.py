"""A quiet console: keras_ae's own lines and Keras's progress bar on the terminal, TensorFlow's logs in a file.

TensorFlow's C++ code and absl write their start-up and runtime logs ("oneDNN custom operations are
on", "failed call to cuInit", the TFLite converter's statistics) straight to file descriptor 2, where
``TF_CPP_MIN_LOG_LEVEL`` no longer stops them all. :func:`capture_native` points descriptor 2 at a
temporary file and gives Python's ``sys.stderr`` a descriptor of its own on the terminal, so every
line Python prints (keras_ae's log, warnings, ``error:`` lines) still shows; :func:`save_native_log`
keeps what was captured in a run folder (``logs/tensorflow.log``). ``import keras_ae`` captures only
while TensorFlow is imported; the commands capture for their whole run. Set ``KERAS_AE_TF_LOGS=1`` to
see everything on the terminal instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

SHOW_ENV = "KERAS_AE_TF_LOGS"
_captured = tempfile.TemporaryFile()  # everything descriptor 2 received while captured, this process
_terminal: int | None = None  # a descriptor of the real stderr while descriptor 2 is captured
_python_stderr = None  # sys.stderr before the capture, given back by release_native


def _real_stderr_fd() -> int | None:
    """2 when ``sys.stderr`` is the process's descriptor 2 (not a notebook's or a test runner's stream)."""
    try:
        return 2 if sys.stderr.fileno() == 2 else None
    except (AttributeError, OSError, ValueError):
        return None


def capture_native() -> bool:
    """Send what native code writes to descriptor 2 to the log from now on; return whether it does."""
    global _terminal, _python_stderr
    if _terminal is not None:
        return True
    if os.environ.get(SHOW_ENV) or _real_stderr_fd() is None:
        return False
    sys.stderr.flush()
    _python_stderr, _terminal = sys.stderr, os.dup(2)
    os.dup2(_captured.fileno(), 2)
    sys.stderr = io.TextIOWrapper(io.FileIO(os.dup(_terminal), "w"), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True)
    for handler in logging.getLogger().handlers:  # handlers made before keep writing where Python's lines go
        if isinstance(handler, logging.StreamHandler) and handler.stream is _python_stderr:
            handler.setStream(sys.stderr)
    return True


def release_native() -> None:
    """Give descriptor 2 back to the terminal (and ``sys.stderr`` its original stream)."""
    global _terminal
    if _terminal is None:
        return
    sys.stderr.flush()
    os.dup2(_terminal, 2)
    os.close(_terminal)
    _terminal = None
    sys.stderr = _python_stderr


@contextlib.contextmanager
def native_captured():
    """Capture for the block only (``import keras_ae``: TensorFlow's start-up lines)."""
    captured = capture_native()
    try:
        yield
    finally:
        if captured:
            release_native()


def quiet_python_loggers() -> None:
    """TensorFlow's and absl's Python loggers (``Assets written to: /tmp/...``) keep only errors."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    with contextlib.suppress(ImportError):
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)


def save_native_log(folder) -> Path | None:
    """Append what was captured so far to ``<folder>/logs/tensorflow.log``; return its path."""
    _captured.flush()
    if not _captured.tell():
        return None
    path = Path(folder) / "logs" / "tensorflow.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    _captured.seek(0)
    with open(path, "ab") as log:
        shutil.copyfileobj(_captured, log)
    _captured.seek(0, os.SEEK_END)
    return path


def command_started() -> None:
    """What every command does first: capture native logs and quiet TensorFlow's Python loggers."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    capture_native()
    quiet_python_loggers()
