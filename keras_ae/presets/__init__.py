"""Presets: named, versioned flag files that reproduce a figure of the README with one command.

Each ``<name>.toml`` holds train.py flags (``flag = value``, as any ``--config`` file) and a ``[preset]`` table
that says what it reproduces: ``row`` (the README table and row), ``figure`` (what it reached here),
``minutes`` (the wall time of that run here) and ``measured`` (when, and on what). ``train.py --config NAME``
trains one; ``train.py --list-presets`` lists them.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from keras_ae.errors import ConfigError

FOLDER = Path(__file__).parent
ABOUT = ("row", "figure", "minutes", "measured")  # the keys of a preset's [preset] table
PROTOCOL_DATASETS = ("binarized_mnist", "mnist60k")  # the data of the literature's protocols


def names() -> list[str]:
    return sorted(path.stem for path in FOLDER.glob("*.toml"))


def path_of(name: str) -> Path:
    """The file of preset ``name``; ConfigError listing the known presets for an unknown one."""
    if name not in names():
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(names())} (train.py --list-presets)")
    return FOLDER / f"{name}.toml"


def about(name: str) -> dict:
    """The [preset] table of ``name``: what it reproduces, the figure and the minutes it took here."""
    path = path_of(name)
    table = tomllib.loads(path.read_text()).get("preset")
    if not isinstance(table, dict) or set(table) != set(ABOUT):
        raise ConfigError(f"{path}: a preset needs a [preset] table of exactly {', '.join(ABOUT)}")
    return table


def listing() -> str:
    """What ``train.py --list-presets`` prints: each preset, the figure it reached here, its time and its row."""
    lines = []
    for name in names():
        table = about(name)
        lines.append(f"{name}\n    reached: {table['figure']} in {table['minutes']:g} min ({table['measured']})\n"
                     f"    reproduces: {table['row']}\n    run: python train.py --config {name}")
    return "\n".join(lines)


def on_protocol(model: str, dataset: str) -> list[str]:
    """The presets that train ``model`` on a dataset of the literature's protocol other than ``dataset``:
    what a report on other data points to for figures that sit beside the papers'."""
    found = []
    for name in names():
        flags = tomllib.loads(FOLDER.joinpath(f"{name}.toml").read_text())
        if flags.get("model") == model and flags.get("dataset") in PROTOCOL_DATASETS and flags["dataset"] != dataset:
            found.append(name)
    return found
