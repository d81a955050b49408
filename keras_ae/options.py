"""Model options, declared once next to the model that takes them, and the command line built from them.

Every model class lists the options it adds in an ``options`` dict of :class:`Option` (help text, how to
parse the flag, the default, the allowed choices). That declaration is the only one: the constructor takes
the options as keyword arguments and sets each as an attribute, ``get_config`` returns their values, the
class docstring's "Options:" block lists them (:class:`keras_ae.models.base.ZooModel`), and ``train.py``
turns the options of every registered model into flags (:func:`add_model_flags`), whose ``--help`` shows
the real defaults, model by model where they differ.

A subclass that changes the default of an option it inherits says so in its ``option_defaults`` dict
(``{"beta": 3.0}``), and one that does not take an inherited option names it in ``dropped_options``
(it then keeps that option's default). ``seed`` is declared by the models that use one, but is not a
flag of its own: ``--seed`` gives it, as the data gives ``input_shape`` and ``num_classes``.
"""

from __future__ import annotations

import argparse
import math
import textwrap
from dataclasses import dataclass
from typing import Callable

from keras_ae.errors import ConfigError

NOT_FLAGS = ("input_shape", "num_classes", "seed", "encoder", "decoder")  # given by the data, --seed or Python


@dataclass(frozen=True)
class Option:
    """One option of a model: a keyword argument of its constructor, an attribute, a config entry and a flag.

    Args:
        help: what it does (the default is appended in ``--help`` and in the class docstring).
        parse: turns the flag's text into the value (the model itself validates the value); a parser
            marked with :func:`_python_value` also says how a value given in Python is normalised.
        default: the value when none is given (a subclass may change it in its ``option_defaults``).
        choices: the allowed values, if there is a fixed set.
        metavar: the placeholder shown in ``--help``.
        flag: a switch without a value (``store_true``).
        default_text: what ``--help`` shows as the default when ``default`` (``None``) means something
            else, e.g. "learned" or a value that depends on another option.
        only_with: (option, value): the flag means something only when that option has that value
            (``--target-rate`` with ``--sparsity kl``); given otherwise, it is refused.
        in_run_name_base: its value goes into the run folder's base name, ``runs/<model>-<value>-<dataset>``.
        resolved_default: f(every option's value) -> the real default, when ``None`` depends on other options.
        flag_name: the flag when it is not the option's name (the VQ-VAE's ``prior_kind`` is ``--prior``: its
            attribute ``prior`` is the model's prior itself).
    """

    help: str
    parse: Callable = str
    default: object = None
    choices: tuple | None = None
    metavar: str | None = None
    flag: bool = False
    default_text: str | None = None
    only_with: tuple[str, object] | None = None
    in_run_name_base: bool = False
    resolved_default: Callable[[dict], object] | None = None
    flag_name: str | None = None

    def flag_of(self, name: str) -> str:
        """The ``train.py`` flag of this option, declared under ``name``."""
        return "--" + (self.flag_name or name.replace("_", "-"))

    def coerce(self, name: str, value):
        """``value`` as the model keeps it, whether a flag or Python gave it: an int as int, a float as
        float, a sequence as a tuple, a switch as bool, so that configs and run names do not depend on
        who gave it; a ConfigError if it cannot be one. ``None`` (a default that means something else)
        stays ``None``; the range is the model's ``validate()`` to check."""
        if value is None:
            return None
        if self.flag:
            return bool(value)
        kind, convert = getattr(self.parse, "python_value", (None, None))
        if convert is None:
            return value
        try:
            return convert(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {kind}, got {value!r}") from None


def _python_value(kind: str, convert: Callable):
    """Mark a flag parser with how an option it parses is normalised when given in Python: ``convert``,
    or a ConfigError that the value is not ``kind`` (see :meth:`Option.coerce`)."""

    def mark(parse):
        parse.python_value = (kind, convert)
        return parse

    return mark


# ---------------------------------------------------------------- flag parsers (argparse types)


def _integer_in(minimum: int, maximum: int | None = None):
    @_python_value("an integer", int)
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            wanted = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise argparse.ArgumentTypeError(f"expected an integer {wanted}, got {value}")
        return value

    return parse


positive_int = _integer_in(1)
non_negative_int = _integer_in(0)
random_seed = _integer_in(0, 2**32 - 1)  # what numpy's and Python's seeding take


def positive_float(text: str) -> float:
    """A finite number > 0 (a learning rate, a timeout in seconds)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


@_python_value("a number", float)
def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _int_tuple(values) -> tuple[int, ...]:
    if isinstance(values, str):  # (a string is a sequence too: "32" is not (3, 2))
        raise ValueError(values)
    return tuple(int(value) for value in values)


@_python_value("a sequence of integers such as (32, 64)", _int_tuple)
def int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 28x28, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"image size must be positive, got {text!r}")
    return height, width


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


# ---------------------------------------------------------------- what the registry declares


def declared_options(model_cls) -> dict[str, Option]:
    """The options of a model class and of its bases, by constructor argument name, less those a class
    says it does not take (``dropped_options``: a VQ-VAE has no --arch)."""
    options = {}
    for klass in reversed(model_cls.__mro__):
        options.update(vars(klass).get("options", {}))
        for name in vars(klass).get("dropped_options", ()):
            options.pop(name, None)
    return options


def flag_options(model_cls) -> dict[str, Option]:
    """The declared options that are flags of ``train.py`` (all but ``seed``, which ``--seed`` gives)."""
    return {name: option for name, option in declared_options(model_cls).items() if name not in NOT_FLAGS}


def _defaults(model_cls) -> dict:
    """The default of every option of a model class and its bases, dropped ones included: the declared
    one, or the one the nearest class sets in ``option_defaults``."""
    defaults = {}
    for klass in reversed(model_cls.__mro__):
        defaults.update({name: option.default for name, option in vars(klass).get("options", {}).items()})
        defaults.update(vars(klass).get("option_defaults", {}))
    return defaults


def constructor_defaults(model_cls) -> dict:
    """The default of every option a model class takes, as its constructor uses it."""
    defaults = _defaults(model_cls)
    return {name: defaults[name] for name in declared_options(model_cls)}


def option_values(model_cls, given: dict) -> dict:
    """Every option of ``model_cls`` by name, normalised (:meth:`Option.coerce`): as ``given`` or its
    default; a dropped option keeps its default (a VQ-VAE's arch is conv)."""
    defaults, options = _defaults(model_cls), {}
    for klass in reversed(model_cls.__mro__):
        options.update(vars(klass).get("options", {}))
    return {name: option.coerce(name, given.get(name, defaults[name])) for name, option in options.items()}


def options_doc(model_cls, indent: str = "    ") -> str:
    """The "Options:" section of a model class's docstring: every option it takes (its own first, then its
    bases'), with its help and its default."""
    options, defaults = declared_options(model_cls), constructor_defaults(model_cls)
    names = dict.fromkeys(name for klass in model_cls.__mro__ for name in vars(klass).get("options", {})
                          if name in options)
    lines = [f"{indent}Options:"]
    for name in names:
        option, default = options[name], defaults[name]
        shown = option.default_text if default is None and option.default_text is not None else repr(default)
        among = f"one of {', '.join(map(repr, option.choices))}; " if option.choices else ""
        lines.append(textwrap.fill(f"{name}: {option.help} ({among}default: {shown}).", 110, initial_indent=2 * indent,
                                   subsequent_indent=3 * indent, break_on_hyphens=False))
    return "\n".join(lines)


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def default_text(name: str, option: Option, models: dict) -> str:
    """'(default: X)', or the default of each model where they differ."""
    if option.default_text is not None:
        return f"(default: {option.default_text})"
    by_value: dict[str, list[str]] = {}
    for model_name, cls in models.items():
        if name in flag_options(cls):
            by_value.setdefault(_shown(constructor_defaults(cls)[name]), []).append(model_name)
    if option.flag:
        return ""
    if len(by_value) == 1:
        return f"(default: {next(iter(by_value))})"
    return "(default: " + "; ".join(f"{value} for {', '.join(names)}" for value, names in by_value.items()) + ")"


def add_model_flags(parser: argparse.ArgumentParser, models: dict, shared: dict) -> None:
    """One flag per option of the registered ``models``: the ``shared`` ones first, then each family's own.

    Every flag defaults to None, so a flag given to a model that does not take it can be refused
    (:func:`model_kwargs`); the help names the models that take it and their real defaults.
    """
    groups = {"": (parser.add_argument_group("model"), dict(shared))}
    seen = set(groups[""][1])
    for model_name, cls in models.items():
        own = {name: option for name, option in flag_options(cls).items() if name not in seen}
        if own:
            family = cls.__module__.rsplit(".", 1)[-1]
            group, options = groups.setdefault(family, (parser.add_argument_group(
                f"{family} options ({', '.join(n for n, c in models.items() if c.__module__ == cls.__module__)})"),
                {}))
            options.update(own)
            seen |= set(own)
    for group, options in groups.values():
        for name, option in options.items():
            takers = [n for n, c in models.items() if name in flag_options(c)]
            applies = "" if len(takers) == len(models) else f"[{', '.join(takers)}] "
            text = f"{applies}{option.help} {default_text(name, option, models)}".strip()
            if option.flag:
                group.add_argument(option.flag_of(name), dest=name, action="store_const", const=True, default=None,
                                   help=text)
            else:
                group.add_argument(option.flag_of(name), dest=name, type=option.parse, choices=option.choices,
                                   default=None, metavar=option.metavar, help=text)
