"""Model options, declared once next to the model that takes them, and the command line built from them.

Every model class lists the options its own ``__init__`` adds in an ``options`` dict of :class:`Option`
(help text, how to parse the flag, the allowed choices); the default is the constructor's own
default. ``train.py`` turns the options of every registered model into flags (:func:`add_model_flags`),
and its ``--help`` shows the real defaults, model by model where they differ.
"""

from __future__ import annotations

import argparse
import inspect
import math
from dataclasses import dataclass
from typing import Callable

NOT_FLAGS = ("input_shape", "num_classes", "seed", "encoder", "decoder")  # given by the data, --seed or Python


@dataclass(frozen=True)
class Option:
    """One constructor argument of a model, as the command line offers it.

    Args:
        help: what it does (the default is appended from the constructor's signature).
        parse: turns the flag's text into the value (the model itself validates the value).
        choices: the allowed values, if there is a fixed set.
        metavar: the placeholder shown in ``--help``.
        flag: a switch without a value (``store_true``).
        default_text: what ``--help`` shows as the default when the signature's default (``None``)
            means something else, e.g. "learned" or a value that depends on another option.
        only_with: (option, value): the flag means something only when that option has that value
            (``--target-rate`` with ``--sparsity kl``); given otherwise, it is refused.
        in_run_name_base: its value goes into the run folder's base name, ``runs/<model>-<value>-<dataset>``.
        resolved_default: f(every option's value) -> the real default, when ``None`` depends on other options.
    """

    help: str
    parse: Callable = str
    choices: tuple | None = None
    metavar: str | None = None
    flag: bool = False
    default_text: str | None = None
    only_with: tuple[str, object] | None = None
    in_run_name_base: bool = False
    resolved_default: Callable[[dict], object] | None = None


# ---------------------------------------------------------------- flag parsers (argparse types)


def _integer_in(minimum: int, maximum: int | None = None):
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


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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


def constructor_defaults(model_cls) -> dict:
    """Every keyword argument a model class accepts (its own and its bases'), with its default."""
    defaults = {}
    for klass in reversed(model_cls.__mro__):
        if "__init__" in vars(klass) and klass is not object:
            for name, parameter in inspect.signature(klass.__init__).parameters.items():
                if parameter.default is not inspect.Parameter.empty:
                    defaults[name] = parameter.default
    return defaults


def declared_options(model_cls) -> dict[str, Option]:
    """The options of a model class and of its bases, by constructor argument name, less those a class
    says it does not take (``dropped_options``: a VQ-VAE has no --arch)."""
    options = {}
    for klass in reversed(model_cls.__mro__):
        options.update(vars(klass).get("options", {}))
        for name in vars(klass).get("dropped_options", ()):
            options.pop(name, None)
    return options


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def default_text(name: str, option: Option, models: dict) -> str:
    """'(default: X)', or the default of each model where they differ."""
    if option.default_text is not None:
        return f"(default: {option.default_text})"
    by_value: dict[str, list[str]] = {}
    for model_name, cls in models.items():
        if name in declared_options(cls):
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
        own = {name: option for name, option in declared_options(cls).items() if name not in seen}
        if own:
            family = cls.__module__.rsplit(".", 1)[-1]
            group, options = groups.setdefault(family, (parser.add_argument_group(
                f"{family} options ({', '.join(n for n, c in models.items() if c.__module__ == cls.__module__)})"),
                {}))
            options.update(own)
            seen |= set(own)
    for group, options in groups.values():
        for name, option in options.items():
            takers = [n for n, c in models.items() if name in declared_options(c)]
            applies = "" if len(takers) == len(models) else f"[{', '.join(takers)}] "
            text = f"{applies}{option.help} {default_text(name, option, models)}".strip()
            flag = "--" + name.replace("_", "-")
            if option.flag:
                group.add_argument(flag, action="store_const", const=True, default=None, help=text)
            else:
                group.add_argument(flag, type=option.parse, choices=option.choices, default=None,
                                   metavar=option.metavar, help=text)
