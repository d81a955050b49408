"""Export a trained run for serving: TF Serving SavedModels, TFLite decoders and a metadata.json.

    python -m keras_ae.export runs/vae-conv-mnist [--out EXPORT_ROOT] [--version N] [--name NAME]

writes ``<root>/<name>/`` (root: ``RUN_DIR/export``, name: the run folder's name)::

    encoder/<version>/              SavedModel, signature serving_default:
                                    images float32 [-1, H, W, C] in [0, 1] (+ label int32 [-1])
                                    -> z, or z_mean and z_log_var (VAEs)
    decoder/<version>/              SavedModel, serving_default: z float32 [-1, latent] (+ label int32 [-1])
                                    -> images float32 [-1, H, W, C] in [0, 1]
    decoder.tflite                  float32, one code per call: z [1, latent] (+ label [1])
    decoder_float16.tflite          float16 weights
    decoder_dynamic_int8.tflite     int8 weights, float activations (dynamic range)
    decoder_int8.tflite             int8 weights and activations; float32 input and output tensors
    encoder.tflite                  float32, one image per call
    metadata.json                   what a client needs: shapes, how to sample codes, signatures, digests

Labels of a conditional model are int32 class ids; the one-hot encoding and the sigmoid of the
decoder's logits happen inside every artifact. The SavedModel signatures assert their inputs (finite
codes, pixels in [0, 1], labels in range, one label per row) and fail with a message saying so;
TFLite has no assertion op, so :mod:`keras_ae.generate` checks inputs before they reach a model.

TFLite files have a fixed batch of 1 (the on-device case; :mod:`keras_ae.generate` feeds longer
batches row by row): with every shape static, XNNPACK runs the whole graph, while a dynamic batch
leaves the transposed convolutions to TFLite's own, slower kernels (conv decoder of the
keras-io VAE, batch 1: 0.15 ms instead of 0.37 ms, BENCHMARKS.md).

Every artifact's sha256 and size are in metadata.json; a SavedModel folder's sha256 is that of a
manifest of its files (see :func:`keras_ae.generate.describe_artifact`), each file also listed.
metadata.json and the .tflite files describe the latest export; older SavedModel versions stay.

The export is atomic: everything is built in a hidden ``<root>/<name>/.tmp-*`` folder (outside the
``encoder/`` and ``decoder/`` base paths a model server watches), then renamed into place version
folders first and metadata.json last, so a server never sees a half-written version and a failed
export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_ae import __version__
from keras_ae.errors import DataError, KerasAEError, exit_code
from keras_ae.evaluate import codes as encode_all
from keras_ae.generate import FORMAT_VERSION, MAIN_INPUT, SIGNATURE, VARIANTS, describe_artifact, one_line
from keras_ae.io import write_json
from keras_ae.latent import gaussian_fit

CALIBRATION_CODES = 512  # codes (and labels) that calibrate the activations of the full-int8 decoder
TFLITE_BATCH = 1
VAE_HEADS = ("z_mean", "z_log_var")
CONFIG_KEYS = {"options": dict, "model_class": str, "data": dict, "versions": dict}  # what export reads
QUANTIZATION = {
    "float32": "none",
    "float16": "float16 weights, float32 computation",
    "dynamic_int8": "int8 weights, activations quantized on the fly (dynamic range)",
    "int8": "int8 weights and activations, calibrated on codes; float32 input and output tensors",
}


class ExportError(KerasAEError):
    """A run folder cannot be exported, or the export would overwrite an existing version."""


def export_run(run_dir, out_dir=None, version: int | None = None, name: str | None = None,
               quantize: bool = True) -> Path:
    """Export the run in ``run_dir`` to ``<out_dir>/<name>/`` (see the module docstring); return that folder.

    ``version=None`` takes the next free version number (1 for a first export), so re-exporting a
    retrained run adds a version a model server picks up. ``quantize=False`` writes only the float32
    TFLite decoder and encoder.
    """
    run_dir = Path(run_dir)
    name = name or run_dir.resolve().name
    if version is None:
        version = 1 + max(_versions(Path(out_dir or run_dir / "export") / name), default=0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"version must be an integer >= 1, got {version!r}")
    if not name or name.startswith(".") or Path(name).name != name:
        raise ExportError(f"export name must be a plain folder name, got {name!r}")
    export_dir = Path(out_dir or run_dir / "export") / name
    _check_version_is_new(export_dir, version)
    model, config, results, train_split = _read_run(run_dir)
    sampling, calibration = _code_distribution(model, train_split)

    export_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=export_dir))
    try:
        signatures = _write_artifacts(model, staging, version, calibration, quantize)
        artifacts = {rel: {**_artifact_kind(rel), **describe_artifact(staging / rel)}
                     for rel in _staged(staging, version)}
        write_json(staging / "metadata.json",
                   _metadata(model, config, results, name, version, sampling, signatures, artifacts))
        for rel in [*artifacts, "metadata.json"]:
            (export_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, export_dir / rel)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir


# ---------------------------------------------------------------- the run folder


def _versions(export_dir: Path) -> list[int]:
    """The SavedModel version numbers already in an export folder (encoder or decoder)."""
    return [int(p.name) for network in MAIN_INPUT for p in (export_dir / network).glob("*") if p.name.isdigit()]


def _check_version_is_new(export_dir: Path, version: int) -> None:
    taken = [path for path in (export_dir / network / str(version) for network in MAIN_INPUT) if path.exists()]
    if taken:
        raise ExportError(f"{taken[0]} already exists and is never overwritten; "
                          f"export with --version {max(_versions(export_dir)) + 1}")


def _read_run(run_dir: Path):
    """(model, config, results or None, training split or None) of a finished run; ExportError naming the file.

    The training split is reloaded (as config.json says) only for plain autoencoders, whose code
    distribution is fitted on it.
    """
    from keras_ae.models import Autoencoder, model_class
    from keras_ae.runs import load_run, read_config

    try:
        config = read_config(run_dir)
        _check_config(config, run_dir / "config.json")
        run = load_run(run_dir, with_data=model_class(config["options"].get("model")).heads != VAE_HEADS)
    except DataError as error:
        raise ExportError(f"cannot reload the training split of {run_dir} (the code distribution of a plain "
                          f"autoencoder is fitted on it): {one_line(error)}") from None
    except KerasAEError as error:
        raise ExportError(one_line(error)) from None
    if not isinstance(run.model, Autoencoder):
        raise ExportError(f"{run_dir / 'model.keras'} holds a {type(run.model).__name__}, not a keras_ae autoencoder")
    if run.splits is not None and run.splits.image_shape != run.model.spec.input_shape:
        raise ExportError(f"the training split of {run_dir} now has images of shape {run.splits.image_shape}, "
                          f"the model takes {run.model.spec.input_shape}")
    train_split = None if run.splits is None else run.splits.arrays("train")
    return run.model, config, _read_results(run_dir / "results.json"), train_split


def _check_config(config: dict, path: Path) -> None:
    """An ExportError unless ``config`` has what export reads and comes from this major version of keras_ae."""
    missing = [key for key, kind in CONFIG_KEYS.items() if not isinstance(config.get(key), kind)]
    if missing:
        raise ExportError(f"{path} is corrupt: it lacks {', '.join(missing)}")
    trained = str(config["versions"].get("keras_ae"))
    if trained.split(".")[0] != __version__.split(".")[0]:
        raise ExportError(f"{path} says keras_ae {trained}; this is keras_ae {__version__} "
                          "(another major version): export it with the keras_ae that trained it")


def _read_results(path: Path) -> dict | None:
    """The run's test metrics (results.json), or None when training wrote none."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as error:  # ValueError: bad UTF-8 or JSON, an int of > 4300 digits
        raise ExportError(f"{path} is corrupt: {one_line(error)}") from None


def _code_distribution(model, train_split) -> tuple[dict, dict]:
    """How clients sample codes (metadata's ``sampling``), and calibration inputs for the int8 decoder.

    VAEs sample their N(0, I) prior. A plain autoencoder has no prior: clients sample the Gaussian
    fitted to the codes of its training split, and the int8 decoder is calibrated on those codes.
    """
    rng = np.random.default_rng(0)
    latent = model.spec.latent_dim
    if tuple(model.heads) == VAE_HEADS:
        sampling = {"prior": "normal", "mean": [0.0] * latent, "std": [1.0] * latent}
        codes = rng.standard_normal((CALIBRATION_CODES, latent)).astype(np.float32)
    else:
        train_codes = encode_all(model, *train_split)
        mean, covariance = gaussian_fit(train_codes)
        sampling = {"prior": "empirical_gaussian", "mean": mean.tolist(), "covariance": covariance.tolist(),
                    "fitted_on": f"codes of the {len(train_codes)} images of the training split"}
        codes = train_codes[rng.permutation(len(train_codes))[:CALIBRATION_CODES]].astype(np.float32)
    calibration = {"z": codes}
    if model.num_classes:
        calibration["label"] = rng.integers(0, model.num_classes, len(codes)).astype(np.int32)
    return sampling, calibration


# ---------------------------------------------------------------- serving functions and artifacts


def serving_module(model, network: str, checked: bool, batch: int | None = None):
    """(tf.Module, concrete function) serving ``model.encoder`` or ``model.decoder`` with named tensors.

    Inputs: ``images`` [-1, H, W, C] (encoder) or ``z`` [-1, latent] (decoder), plus ``label`` int32
    [-1] for a conditional model (one-hot inside). Outputs: the encoder's heads, or the decoder's
    ``images`` = sigmoid(logits). ``checked`` adds assertions on the inputs (for SavedModels);
    ``batch`` fixes the batch size (None: any).
    """
    import tensorflow as tf

    main = MAIN_INPUT[network]
    net, classes = float32_network(getattr(model, network)), model.num_classes
    shape = model.spec.input_shape if network == "encoder" else (model.spec.latent_dim,)
    specs = {main: tf.TensorSpec((batch, *shape), tf.float32, name=main)}
    if classes:
        specs["label"] = tf.TensorSpec((batch,), tf.int32, name="label")

    def serve(**inputs):
        if checked:
            inputs = _asserted(inputs, main, classes)
        x = [inputs[main], tf.one_hot(inputs["label"], classes)] if classes else inputs[main]
        outputs = net(x, training=False)
        if network == "encoder":
            return {head: tf.cast(value, tf.float32) for head, value in outputs.items()}
        return {"images": tf.sigmoid(tf.cast(outputs, tf.float32))}

    module = tf.Module()
    # The raw tf.Variables, not their Keras wrappers: the TFLite converter freezes only these.
    module.network_variables = [variable.value for variable in net.variables]
    module.serve = tf.function(serve, autograph=False)
    return module, module.serve.get_concrete_function(**specs)


def float32_network(net):
    """``net`` itself when it computes in float32, else a float32 copy with the same weights.

    A model trained under a mixed-precision policy computes in float16 or bfloat16; TFLite has no
    bfloat16 kernels and servers expect float32, so exports always compute in float32 (its variables
    were float32 all along, so nothing is lost).
    """
    import keras

    if all(layer.dtype_policy.compute_dtype == "float32" for layer in net.layers):
        return net

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(net, clone_function=float32_layer)
    copy.set_weights(net.get_weights())
    return copy


def _asserted(inputs: dict, main: str, classes: int | None) -> dict:
    """``inputs`` behind assertions that reject invalid values with a message naming the input."""
    import tensorflow as tf

    x = inputs[main]
    if main == "images":
        checks = [(tf.reduce_all((x >= 0.0) & (x <= 1.0)), "images must hold pixels in [0, 1] (no NaN)")]
    else:
        checks = [(tf.reduce_all(tf.math.is_finite(x)), "z must hold finite numbers (no NaN or inf)")]
    if classes:
        label = inputs["label"]
        checks += [(tf.reduce_all((label >= 0) & (label < classes)), f"label must be a class id in [0, {classes - 1}]"),
                   (tf.equal(tf.size(label), tf.shape(x)[0]), f"label needs one entry per row of {main}")]
    asserts = [tf.debugging.Assert(ok, [message]) for ok, message in checks]
    with tf.control_dependencies(asserts):
        return {key: tf.identity(value) for key, value in inputs.items()}


def _write_artifacts(model, staging: Path, version: int, calibration: dict, quantize: bool) -> dict:
    """SavedModels and TFLite files of both networks under ``staging``; return their signatures."""
    import tensorflow as tf

    signatures = {}
    for network in MAIN_INPUT:
        module, function = serving_module(model, network, checked=True)
        tf.saved_model.save(module, str(staging / network / str(version)), signatures={SIGNATURE: function})
        signatures[network] = _describe_signature(function)
        variants = VARIANTS if network == "decoder" and quantize else ("float32",)
        module, function = serving_module(model, network, checked=False, batch=TFLITE_BATCH)
        for variant in variants:
            (staging / _tflite_name(network, variant)).write_bytes(_tflite(module, function, variant, calibration))
    return signatures


def _tflite(module, function, variant: str, calibration: dict) -> bytes:
    """The TFLite flatbuffer of ``function`` (builtin ops only) in one of VARIANTS."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.representative_dataset = lambda: (
            {key: value[i:i + TFLITE_BATCH] for key, value in calibration.items()}
            for i in range(0, len(calibration["z"]), TFLITE_BATCH))
        # inference_input_type / inference_output_type stay float32: clients feed float codes.
    with warnings.catch_warnings():  # the calibrator runs the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
        return converter.convert()


def _tflite_name(network: str, variant: str) -> str:
    return f"{network}.tflite" if variant == "float32" else f"{network}_{variant}.tflite"


def _staged(staging: Path, version: int) -> list[str]:
    """The staged artifacts (relative paths) in commit order: version folders first, then the TFLite files."""
    return [f"{network}/{version}" for network in MAIN_INPUT] + sorted(p.name for p in staging.glob("*.tflite"))


def _artifact_kind(rel: str) -> dict:
    """What metadata.json says an artifact is, from its relative path."""
    if rel.endswith(".tflite"):
        network, _, variant = rel.removesuffix(".tflite").partition("_")
        variant = variant or "float32"
        return {"kind": "tflite", "network": network, "variant": variant, "quantization": QUANTIZATION[variant]}
    return {"kind": "saved_model", "network": rel.split("/")[0], "variant": "float32", "signature": SIGNATURE}


def _describe_signature(function) -> dict:
    def tensors(structure: dict) -> dict:
        return {key: {"dtype": value.dtype.name, "shape": [-1 if d is None else int(d) for d in value.shape]}
                for key, value in sorted(structure.items())}

    return {"name": SIGNATURE, "inputs": tensors(function.structured_input_signature[1]),
            "outputs": tensors(function.structured_outputs)}


def _metadata(model, config, results, name, version, sampling, signatures, artifacts) -> dict:
    import keras
    import tensorflow as tf

    classes = model.num_classes
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": config["options"].get("model"),
        "model_class": config["model_class"],
        "model_config": model.get_config(),
        "latent_dim": model.spec.latent_dim,
        "image_shape": list(model.spec.input_shape),
        "pixel_range": [0.0, 1.0],
        "num_classes": classes,
        "labels": None if classes is None else list(range(classes)),
        "sampling": sampling,
        "dataset": config["data"],
        "metrics": results,
        "versions": {"keras_ae": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__, "ai_edge_litert": _installed("ai-edge-litert")},
        "trained_with": config["versions"],
        "signatures": signatures,
        "digest": "sha256 of each file; a SavedModel folder's sha256 is that of the manifest of its files, "
                  "one line '<relative path>\\t<bytes>\\t<sha256>\\n' per file sorted by path",
        "artifacts": artifacts,
    }


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------- the command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m keras_ae.export",
        description="Export a trained run: TF Serving SavedModels, TFLite decoders, metadata.json.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by train.py")
    parser.add_argument("--out", default=None, help="export root (default: RUN_DIR/export)")
    parser.add_argument("--version", type=int, default=None,
                        help="SavedModel version folder to create (default: the next free number, 1 at first)")
    parser.add_argument("--name", default=None, help="model name under the root (default: the run folder's name)")
    parser.add_argument("--no-quantize", action="store_true", help="write only the float32 TFLite files")
    return parser


def main(argv=None) -> int:
    """Entry point; exit code 2 with one ``error:`` line for a user error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    return exit_code(lambda: print(export_run(args.run_dir, args.out, args.version, args.name,
                                              quantize=not args.no_quantize)))


if __name__ == "__main__":
    sys.exit(main())
