"""Errors that keras_ae reports to the user as one clear line (no traceback)."""


class KerasAEError(Exception):
    """Base class: a problem the user can fix (bad name, bad file, bad value)."""


class DataError(KerasAEError, ValueError):
    """A dataset could not be found, read or trusted; the message names the file or value."""


class ConfigError(KerasAEError, ValueError):
    """A model or training option is out of range or unknown."""


def exit_code(action) -> int:
    """Run a command's ``action()``: 0 on success; a KerasAEError becomes one ``error:`` line on stderr and 2."""
    import sys

    try:
        action()
    except KerasAEError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
