"""The run folder: what training writes about a run (config.json, exports.json) and reading a run back.

A run is its folder: ``config.json`` (the options, the model's class and config, how to load the
data again, library versions), ``model.keras`` and what training, evaluation and export add. Evaluate
and export reload the model in Keras's safe mode and the data with the very arguments training used.
"""

from __future__ import annotations

import datetime
import inspect
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from keras_ae.errors import ConfigError, DataError, KerasAEError
from keras_ae.io import exclusive, read_json, write_json

EXPORTS = "exports.json"  # where each export of this run went


@dataclass
class Run:
    """A trained run: the folder, its config.json, the model and its data splits (same seed, same split)."""

    folder: Path
    config: dict
    model: object
    splits: object


# ---------------------------------------------------------------- the folder's state


def locked(folder):
    """The run folder's lock, held while a process trains, evaluates or exports the run (see io.exclusive).

    The lock file sits beside the folder (``.<name>.lock``), so it outlives an ``--overwrite`` that
    replaces the folder itself.
    """
    folder = Path(folder)
    return exclusive(folder.parent / f".{folder.name}.lock",
                     f"{folder}: another keras_ae process is training, evaluating or exporting this run; "
                     "wait for it to end")


def staging(folder) -> Path:
    """Where ``--overwrite`` trains the new run before it replaces ``folder`` (the old run stays whole until then)."""
    folder = Path(folder)
    return folder.parent / f".{folder.name}.new"


def _replaced(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.old"


def replace(folder, new) -> None:
    """Put the complete run folder ``new`` in the place of ``folder`` (two renames; see :func:`recover`).

    The ``worker-<i>`` folders of a multi-worker run belong to the workers of this same training (they
    write there themselves, see keras_ae.train.run): they move into ``new`` first.
    """
    folder, old = Path(folder), _replaced(Path(folder))
    for worker in folder.glob("worker-*"):
        if not (Path(new) / worker.name).exists():
            os.replace(worker, Path(new) / worker.name)
    shutil.rmtree(old, ignore_errors=True)
    os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


def recover(folder) -> None:
    """Finish a :func:`replace` that a kill interrupted (the caller holds the lock): the new run when it is
    complete, else the old one, is the run folder again."""
    folder = Path(folder)
    old, new = _replaced(folder), staging(folder)
    if old.is_dir() and not folder.exists():
        os.replace(new if (new / "model.keras").is_file() else old, folder)
    shutil.rmtree(old, ignore_errors=True)


def check_same_model(path, config: dict, model, hint: str) -> None:
    """A ConfigError naming what differs unless ``model`` is the model the run's config.json describes
    (its class, its ``--model`` name, every entry of its config but the name, and the data's shape)."""
    recorded = config.get("model_config") if isinstance(config.get("model_config"), dict) else {}
    current = model.get_config()
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    options = config.get("options") if isinstance(config.get("options"), dict) else {}
    differs = [f"{what} {old!r:.40} -> {new!r:.40}" for what, old, new in (
        ("model class", config.get("model_class"), type(model).__name__),
        ("--model", options.get("model"), registered_name(model)),
        ("data image_shape", as_json(data.get("image_shape")), list(model.image_shape)),
        ("data num_classes", data.get("num_classes") if model.num_classes else None, model.num_classes))
        if old != new]
    differs += [f"{key} {recorded.get(key)!r:.40} -> {current.get(key)!r:.40}"
                for key in sorted((set(recorded) | set(current)) - {"name"})
                if as_json(recorded.get(key)) != as_json(current.get(key))]
    if differs:
        raise ConfigError(f"{path} does not describe this model ({'; '.join(differs)}); {hint}")


def as_json(value):
    """A config or flag value as JSON gives it back (tuples become lists), so recorded and current compare."""
    import json

    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------- what a run folder says


def library_versions() -> dict:
    """The versions a run or an export was made with."""
    import importlib.metadata

    import keras
    import numpy as np
    import tensorflow as tf

    from keras_ae import __version__

    try:
        litert = importlib.metadata.version("ai-edge-litert")
    except importlib.metadata.PackageNotFoundError:
        litert = None
    return {"keras_ae": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "ai_edge_litert": litert}


def registered_name(model) -> str | None:
    """The ``--model`` name of a model's class, None for a class outside the registry."""
    from keras_ae.models import MODELS

    return next((name for name, cls in MODELS.items() if type(model) is cls), None)


def write_config(folder, model, splits, options: dict) -> None:
    """config.json of a run (atomically): everything needed to read the run back and to know what it is."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", {
        "options": {"model": registered_name(model), **options},
        "model_class": type(model).__name__, "model_config": model.get_config(),
        "architecture": model.architecture,
        "data": {"name": splits.name, "source": splits.source, "image_shape": splits.image_shape,
                 "num_classes": splits.num_classes, "load": splits.load_args,
                 "sizes": {s: len(splits.split(s)) for s in ("train", "validation", "test")},
                 "fingerprint": splits.fingerprint(), "skipped_files": {"count": len(splits.skipped),
                                                                        "first": list(splits.skipped[:20])}},
        "versions": library_versions(),
    })


def read_config(folder) -> dict:
    """``config.json`` of a run folder, or a clear error naming the file."""
    path = Path(folder) / "config.json"
    config = read_json(path, KerasAEError, f"is {folder} a run folder written by train.py?")
    if not isinstance(config, dict) or not isinstance(config.get("options"), dict):
        raise KerasAEError(f"{path}: not a keras_ae run config (no 'options' object)")
    return config


def load_data(folder, config: dict):
    """The run's data splits, loaded with the arguments training recorded in config.json."""
    from keras_ae import data

    path = Path(folder) / "config.json"
    how = config.get("data", {}).get("load") if isinstance(config.get("data"), dict) else None
    if not isinstance(how, dict) or not isinstance(how.get("name"), str):
        raise KerasAEError(f"{path}: no data.load entry (how to load the data again); train the run again")
    unknown = set(how) - set(inspect.signature(data.load).parameters)
    if unknown:
        raise KerasAEError(f"{path}: data.load has unknown entries {', '.join(sorted(unknown))}")
    splits = data.load(**how)
    check_same_data(path, config, splits)
    return splits


def check_same_data(path, config: dict, splits) -> None:
    """A DataError unless ``splits`` are the data the run's config.json says it was trained on."""
    recorded = config.get("data", {}).get("fingerprint") if isinstance(config.get("data"), dict) else None
    if not isinstance(recorded, dict):
        raise KerasAEError(f"{path}: no data fingerprint (which data trained this run); train the run again")
    current = splits.fingerprint()
    differs = [f"{key} {recorded.get(key)!r:.60} -> {current[key]!r:.60}" for key in ("source", "image_shape", "sizes")
               if recorded.get(key) != current[key]]
    differs += [f"{name} split membership" for name, digest in current["splits"].items()
                if (recorded.get("splits") or {}).get(name) != digest and not differs]
    if differs:
        raise DataError(f"{path}: the data is not the data this run was trained on ({'; '.join(differs)}); "
                        "give it the same files and options, or train a new run")


def load_run(folder, with_data: bool = True) -> Run:
    """Load the model of a run folder (Keras safe mode) and, unless told not to, its data splits."""
    import keras

    import keras_ae.models  # noqa: F401  (registers the model classes for loading)

    folder = Path(folder)
    config = read_config(folder)
    model_path = folder / "model.keras"
    if not model_path.is_file():
        raise KerasAEError(f"{model_path}: no trained model in this run folder (did training finish?)")
    try:
        model = keras.models.load_model(model_path)  # safe_mode=True: no arbitrary code from the file
    except Exception as error:  # Keras raises many types for a bad file; the user needs the file name
        raise KerasAEError(f"{model_path}: cannot load ({type(error).__name__}: {str(error)[:200]})") from None
    check_same_model(folder / "config.json", config, model, "the run folder was edited; train it again")
    return Run(folder, config, model, load_data(folder, config) if with_data else None)


def record_export(folder, model_dir, version: int) -> None:
    """Add an export of this run to its exports.json (where it went, which version, when)."""
    path = Path(folder) / EXPORTS
    exports = read_json(path, KerasAEError) if path.is_file() else []
    if not isinstance(exports, list):
        raise KerasAEError(f"{path}: not a list of exports")
    exports.append({"model_dir": str(Path(model_dir).resolve()), "version": version,
                    "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    write_json(path, exports)
