"""Sample images from an exported autoencoder, with its decoder alone.

    python -m keras_ae.generate runs/vae-conv-mnist/export/vae-conv-mnist --num 64 --out samples.png
    python -m keras_ae.generate EXPORT --backend tflite --variant int8 --label 3 --seed 1
    python -m keras_ae.generate EXPORT --codes codes.npy            # decode given codes, shape [N, latent]
    python -m keras_ae.generate EXPORT --interpolate a.npy b.npy --steps 8

EXPORT is a folder written by :mod:`keras_ae.export`. Codes are drawn as its ``metadata.json`` says
(the N(0, I) prior of a VAE, or the Gaussian fitted to the training codes of a plain autoencoder),
decoded by the exported decoder only (a TF Serving SavedModel, or a TFLite file run by
``ai_edge_litert``), and written as a PNG grid.

This module is the client side of an export: it needs numpy, matplotlib, and TensorFlow for the
``saved_model`` backend or ``ai_edge_litert`` for ``tflite`` -- never Keras nor the model code of
keras_ae. Every artifact is checked against its sha256 in ``metadata.json`` before it is loaded,
and every input is checked before it reaches a model (a TFLite model has no assertions of its own).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from keras_ae.errors import KerasAEError, exit_code
from keras_ae.plots import image_grid

FORMAT_VERSION = 1  # of metadata.json; a client refuses other versions
SIGNATURE = "serving_default"
BACKENDS = ("saved_model", "tflite")
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
MAIN_INPUT = {"encoder": "images", "decoder": "z"}
_REQUIRED_KEYS = ("name", "latent_dim", "image_shape", "num_classes", "sampling", "signatures", "artifacts")


class ClientError(KerasAEError, ValueError):
    """An export folder or an input to its models is unusable; the message names the problem."""


# ---------------------------------------------------------------- digests (shared with keras_ae.export)


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_artifact(path) -> dict:
    """sha256 and size in bytes of a file, or of a folder (a SavedModel) with an entry per file.

    A folder's sha256 is that of its manifest: one line ``<relative posix path>\\t<bytes>\\t<sha256>\\n``
    per regular file, sorted by path, so a renamed, added, removed or changed file changes it.
    """
    path = Path(path)
    if path.is_file():
        return {"sha256": file_sha256(path), "bytes": path.stat().st_size}
    files = {p.relative_to(path).as_posix(): describe_artifact(p) for p in sorted(path.rglob("*")) if p.is_file()}
    manifest = "".join(f"{name}\t{entry['bytes']}\t{entry['sha256']}\n" for name, entry in sorted(files.items()))
    return {"sha256": hashlib.sha256(manifest.encode()).hexdigest(),
            "bytes": sum(entry["bytes"] for entry in files.values()), "files": files}


# ---------------------------------------------------------------- metadata and codes


def read_metadata(export_dir) -> dict:
    """The checked ``metadata.json`` of an export folder."""
    path = Path(export_dir) / "metadata.json"
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ClientError(f"{path} not found: is {export_dir} a folder written by python -m keras_ae.export "
                          "(<root>/<name>)?") from None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad UTF-8 or JSON, an int of > 4300 digits
        raise ClientError(f"{path} is corrupt: {one_line(error)}; export the run again") from None
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else type(metadata).__name__
        raise ClientError(f"{path}: format_version {found!r}, this client reads {FORMAT_VERSION}")
    missing = [key for key in _REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ClientError(f"{path} lacks {', '.join(missing)}; export the run again")
    artifacts = metadata["artifacts"]
    if not isinstance(artifacts, dict) or not all(isinstance(entry, dict) for entry in artifacts.values()):
        raise ClientError(f"{path}: corrupt artifacts entry; export the run again")
    shape, classes = metadata["image_shape"], metadata["num_classes"]
    if not _positive_int(metadata["latent_dim"]):
        raise ClientError(f"{path}: latent_dim must be a positive integer, got {metadata['latent_dim']!r:.80}")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_positive_int(size) for size in shape)):
        raise ClientError(f"{path}: image_shape must be [H, W, C] of positive integers, got {shape!r:.80}")
    if classes is not None and not (_positive_int(classes) and classes >= 2):
        raise ClientError(f"{path}: num_classes must be null or an integer >= 2, got {classes!r:.80}")
    return metadata


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def sample_codes(metadata: dict, num: int, seed: int | None = 0) -> np.ndarray:
    """``num`` float32 codes from the distribution in ``metadata["sampling"]``, reproducible from ``seed``."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ClientError(f"number of codes must be an integer >= 1, got {num!r}")
    sampling, rng = metadata["sampling"], np.random.default_rng(seed)
    if not isinstance(sampling, dict) or sampling.get("prior") not in ("normal", "empirical_gaussian"):
        raise ClientError(f"metadata.json: unknown sampling {sampling!r:.80}; export the run again")
    try:
        mean = np.asarray(sampling["mean"], np.float64)
        if sampling["prior"] == "normal":
            codes = rng.normal(mean, np.asarray(sampling["std"], np.float64), size=(num, len(mean)))
        else:
            codes = rng.multivariate_normal(mean, np.asarray(sampling["covariance"], np.float64), size=num,
                                            check_valid="ignore")  # SVD: singular covariances (dead units) are fine
    except (KeyError, TypeError, ValueError) as error:
        raise ClientError(f"metadata.json: corrupt sampling entry ({one_line(error)}); export the run again") from None
    return codes.astype(np.float32)


def interpolate(start, end, steps: int) -> np.ndarray:
    """``steps`` codes on the straight line from ``start`` to ``end`` (both included)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ClientError(f"steps must be an integer >= 2, got {steps!r}")
    start, end = (_numbers(code, "interpolation end point").reshape(-1) for code in (start, end))
    if start.shape != end.shape:
        raise ClientError(f"interpolation end points differ in size: {start.size} and {end.size}")
    weights = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - weights) * start + weights * end).astype(np.float32)


# ---------------------------------------------------------------- the exported networks


def load_decoder(export_dir, backend: str = "saved_model", variant: str = "float32"):
    """``decode(z, labels=None) -> images`` (float32 [N, H, W, C] in [0, 1]) of the exported decoder."""
    metadata, run = _load(export_dir, "decoder", backend, variant)

    def decode(z, labels=None) -> np.ndarray:
        z = _checked_array(z, "codes z", (metadata["latent_dim"],))
        return run({"z": z, **_label_input(metadata, labels, len(z))})["images"]

    return decode


def load_encoder(export_dir, backend: str = "saved_model"):
    """``encode(images, labels=None) -> {head: codes}`` of the exported encoder (float32 only).

    The heads are ``z`` for plain autoencoders, ``z_mean`` and ``z_log_var`` for VAEs.
    """
    metadata, run = _load(export_dir, "encoder", backend, "float32")

    def encode(images, labels=None) -> dict:
        images = _checked_array(images, "images", tuple(metadata["image_shape"]), value_range=(0.0, 1.0))
        return run({"images": images, **_label_input(metadata, labels, len(images))})

    return encode


def _load(export_dir, network: str, backend: str, variant: str):
    """(metadata, run) for one artifact: ``run`` maps a dict of named inputs to a dict of named outputs."""
    if backend not in BACKENDS:
        raise ClientError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    metadata = read_metadata(export_dir)
    path = _verified_artifact(Path(export_dir), metadata, network, backend, variant)
    return metadata, (_saved_model_runner if backend == "saved_model" else _tflite_runner)(path)


def _verified_artifact(export_dir: Path, metadata: dict, network: str, backend: str, variant: str) -> Path:
    """The path of the asked artifact, after checking its sha256 against metadata.json."""
    found = [(name, entry) for name, entry in metadata["artifacts"].items()
             if (entry.get("kind"), entry.get("network"), entry.get("variant")) == (backend, network, variant)]
    if not found:
        available = sorted(f"{e.get('kind')}/{e.get('variant')}" for e in metadata["artifacts"].values()
                           if e.get("network") == network)
        raise ClientError(f"{export_dir} has no {backend} {network} of variant {variant!r}; "
                          f"it has: {', '.join(available) or 'none'}")
    (name, entry), = found
    path = export_dir / name
    if not path.exists():
        raise ClientError(f"{path} is missing; export the run again")
    actual = describe_artifact(path)["sha256"]
    if actual != entry.get("sha256"):
        raise ClientError(f"{path}: sha256 mismatch (metadata.json says {str(entry.get('sha256'))[:12]}..., "
                          f"the file is {actual[:12]}...): it changed after export; export the run again")
    return path


def _saved_model_runner(path: Path):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))

    def run(inputs: dict) -> dict:  # refers to ``loaded``, which keeps the signature's variables alive
        outputs = loaded.signatures[SIGNATURE](**{name: tf.constant(value) for name, value in inputs.items()})
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    return run


def _tflite_runner(path: Path):
    """Runs a TFLite file row by row: its batch is fixed at 1 (see :mod:`keras_ae.export`)."""
    from ai_edge_litert.interpreter import Interpreter

    # LiteRT's default is one thread; two cut the conv decoder's batch-1 latency from 0.25 to 0.15 ms here.
    runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner(SIGNATURE)

    def run(inputs: dict) -> dict:
        rows = [runner(**{name: value[i:i + 1] for name, value in inputs.items()})
                for i in range(len(next(iter(inputs.values()))))]
        return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}

    return run


# ---------------------------------------------------------------- input checks


def _numbers(value, what: str) -> np.ndarray:
    """``value`` as an array of real numbers, or a ClientError naming its dtype."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise ClientError(f"{what} must be real numbers (float32), got dtype {array.dtype}")
    return array


def _checked_array(value, what: str, shape: tuple, value_range=None) -> np.ndarray:
    """``value`` as float32 of shape [N, *shape] with N >= 1, finite (and within ``value_range``)."""
    array = _numbers(value, what)
    expected = f"[N, {', '.join(str(s) for s in shape)}]"
    if array.ndim != 1 + len(shape) or array.shape[1:] != shape or len(array) == 0:
        raise ClientError(f"{what} must have shape {expected} with N >= 1, got {list(array.shape)}")
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise ClientError(f"{what} must be finite: {bad} NaN or infinite values")
    if value_range and (array.min() < value_range[0] or array.max() > value_range[1]):
        raise ClientError(f"{what} must lie in [{value_range[0]}, {value_range[1]}], "
                          f"got values in [{array.min():.4g}, {array.max():.4g}]")
    return array.astype(np.float32)


def _label_input(metadata: dict, labels, count: int) -> dict:
    """``{"label": int32 [count]}`` for a conditional model, ``{}`` otherwise; ClientError on a misfit."""
    classes = metadata["num_classes"]
    if classes is None:
        if labels is not None:
            raise ClientError(f"model {metadata['name']!r} is not conditional: it takes no labels")
        return {}
    if labels is None:
        raise ClientError(f"model {metadata['name']!r} is conditional on {classes} classes: "
                          f"give one label in [0, {classes - 1}] per row")
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise ClientError(f"labels must be integers in [0, {classes - 1}], got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(count, array)
    if array.shape != (count,):
        raise ClientError(f"labels must have shape [{count}] (one per row), got {list(array.shape)}")
    if array.min() < 0 or array.max() >= classes:
        raise ClientError(f"labels must be in [0, {classes - 1}], got {sorted(set(array.tolist()))[:10]}")
    return {"label": array.astype(np.int32)}


# ---------------------------------------------------------------- the command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_ae.generate",
        description="Decode codes with an exported decoder (no Keras, no encoder) and write a PNG grid.")
    parser.add_argument("export_dir", metavar="EXPORT_DIR", help="folder written by python -m keras_ae.export")
    codes = parser.add_mutually_exclusive_group()
    codes.add_argument("--num", type=int, default=64, help="codes to sample as metadata.json says (default: 64)")
    codes.add_argument("--codes", metavar="NPY", help="decode these codes: a .npy of shape [N, latent_dim]")
    codes.add_argument("--interpolate", nargs=2, metavar=("A_NPY", "B_NPY"),
                       help="decode the straight line between two codes (.npy of latent_dim values each)")
    parser.add_argument("--steps", type=int, default=8, help="codes on the --interpolate line (default: 8)")
    parser.add_argument("--backend", choices=BACKENDS, default="saved_model",
                        help="which exported decoder runs (default: saved_model)")
    parser.add_argument("--variant", choices=VARIANTS, default="float32",
                        help="TFLite decoder: float32 (default), float16 weights, dynamic-range int8 or full int8")
    parser.add_argument("--label", type=int, default=None,
                        help="conditional models: the class of every image (default: class i %% K for image i)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled codes (default: 0)")
    parser.add_argument("--out", default="samples.png", help="PNG file to write (default: samples.png)")
    return parser


def _load_npy(path: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ClientError(f"cannot read codes from {path}: {one_line(error)}") from None


def _codes_and_columns(args, metadata: dict) -> tuple[np.ndarray, int]:
    """The codes the flags ask for, and the grid's column count for them."""
    if args.interpolate:
        return interpolate(*map(_load_npy, args.interpolate), args.steps), args.steps
    codes = _load_npy(args.codes) if args.codes else sample_codes(metadata, args.num, args.seed)
    conditional = metadata["num_classes"] and args.label is None
    return codes, metadata["num_classes"] if conditional else math.ceil(math.sqrt(len(codes)))


def generate(args: argparse.Namespace) -> Path:
    """Decode the codes the flags ask for and write the grid; return its path."""
    if args.backend == "saved_model" and args.variant != "float32":
        raise ClientError(f"--variant {args.variant} is a TFLite variant; add --backend tflite")
    metadata = read_metadata(args.export_dir)
    codes, columns = _codes_and_columns(args, metadata)
    count = len(np.atleast_2d(codes))
    labels = args.label
    if labels is None and metadata["num_classes"]:
        labels = np.arange(count) % metadata["num_classes"]
    images = load_decoder(args.export_dir, args.backend, args.variant)(codes, labels)
    title = f"{metadata['name']}: {args.backend} {args.variant}"
    if args.label is not None:
        title += f", label {args.label}"
    image_grid(images, args.out, columns, title=title)
    return Path(args.out)


def one_line(error: BaseException) -> str:
    """The first line of an error's message (user-facing errors are one line)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def main(argv=None) -> int:
    """Entry point; exit code 2 with one ``error:`` line for a user error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return exit_code(lambda: print(generate(args)))


if __name__ == "__main__":
    sys.exit(main())
