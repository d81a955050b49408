"""Reading a run folder back: its config, its trained model and the very data splits it was trained on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from keras_ae.errors import KerasAEError

_DATA_OPTIONS = {"dataset": str, "data_dir": (str, type(None)), "image_size": (list, type(None))}  # JSON types


@dataclass
class Run:
    """A trained run: the folder, its config.json, the model and its data splits (same seed, same split)."""

    folder: Path
    config: dict
    model: object
    splits: object


def read_config(folder) -> dict:
    """``config.json`` of a run folder, or a clear error naming the file."""
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        raise KerasAEError(f"{path}: not found; is {folder} a run folder written by train.py?") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad UTF-8 or JSON, an int of > 4300 digits
        raise KerasAEError(f"{path}: unreadable ({error})") from None
    if not isinstance(config, dict) or not isinstance(config.get("options"), dict):
        raise KerasAEError(f"{path}: not a keras_ae run config (no 'options' object)")
    return config


def load_run(folder, with_data: bool = True) -> Run:
    """Load the model of a run folder (Keras safe mode) and, unless told not to, its data splits."""
    import keras

    import keras_ae.models  # noqa: F401  (registers the model classes for loading)
    from keras_ae import data

    folder = Path(folder)
    config = read_config(folder)
    model_path = folder / "model.keras"
    if not model_path.is_file():
        raise KerasAEError(f"{model_path}: no trained model in this run folder (did training finish?)")
    try:
        model = keras.models.load_model(model_path)  # safe_mode=True: no arbitrary code from the file
    except Exception as error:  # Keras raises many types for a bad file; the user needs the file name
        raise KerasAEError(f"{model_path}: cannot load ({type(error).__name__}: {str(error)[:200]})") from None
    splits = None
    if with_data:
        options = config["options"]
        # data.load checks the values; JSON of another type would fail before it, with a KeyError or TypeError.
        wrong = [key for key, types in _DATA_OPTIONS.items() if not isinstance(options.get(key), types)]
        if wrong:
            raise KerasAEError(f"{folder / 'config.json'}: options {', '.join(wrong)} of the wrong type (want a "
                               "dataset name, data_dir a string or null, image_size a [height, width] list or null)")
        image_size = options.get("image_size")
        splits = data.load(options["dataset"], data_dir=options.get("data_dir"),
                           validation_fraction=options.get("validation_fraction", 0.1), seed=options.get("seed", 0),
                           image_size=None if image_size is None else tuple(image_size), limit=options.get("limit"),
                           download=not options.get("no_download", False))
    return Run(folder, config, model, splits)
