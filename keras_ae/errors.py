"""Errors that keras_ae reports to the user as one clear line (no traceback)."""

import sys


class KerasAEError(Exception):
    """Base class: a problem the user can fix (bad name, bad file, bad value)."""


class DataError(KerasAEError, ValueError):
    """A dataset could not be found, read or trusted; the message names the file or value."""


class ConfigError(KerasAEError, ValueError):
    """A model or training option is out of range or unknown."""


class InputError(KerasAEError, ValueError):
    """Codes, labels or images that do not fit a model or an exported artifact; the message names the value."""


def one_line(error: BaseException) -> str:
    """The first line of an error's message (user-facing errors are one line)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def exit_code(action) -> int:
    """Run a command's ``action()``: 0 on success; a KerasAEError becomes one ``error:`` line on stderr and 2."""
    try:
        action()
    except KerasAEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
