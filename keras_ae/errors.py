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


def exit_code(action, interrupted: str = "interrupted") -> int:
    """Run a command's ``action()``: 0 on success, else one ``error:`` line on stderr and no traceback.

    The one place where a command's failures become messages: a KerasAEError (a problem the user can
    fix) and what the system refuses -- a full disk, a missing permission, memory -- end with exit
    code 2; Ctrl-C with ``interrupted`` and 130. Anything else is a bug and keeps its traceback.
    """
    try:
        action()
    except KerasAEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # ENOSPC, EACCES, ENOTDIR, ...: the message names the file
        where = f"{error.filename}: " if error.filename else ""
        print(f"error: {where}{error.strerror or one_line(error)}", file=sys.stderr)
        return 2
    except MemoryError:
        print("error: out of memory; use a smaller --batch-size, --widths or --image-size", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"error: {interrupted}", file=sys.stderr)
        return 130
    except Exception as error:
        if type(error).__name__ != "ResourceExhaustedError":  # TensorFlow's out-of-memory, without importing it
            raise
        print(f"error: out of memory ({one_line(error)[:160]}); use a smaller --batch-size, --widths or "
              "--image-size", file=sys.stderr)
        return 2
    return 0
