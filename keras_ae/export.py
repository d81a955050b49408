"""Export a trained model for serving: TF Serving SavedModels, TFLite files and a metadata.json per version.

    python -m keras_ae.export runs/vae-conv-mnist [--out export] [--name NAME] [--version N]

writes version N (default: the next free one) of ``<out>/<name>/`` (out: ``export``, name: the run
folder's name), in the layout of :mod:`keras_ae.serving`::

    encoder/<N>/                    SavedModel, signature serving_default:
                                    images float32 [-1, H, W, C] in [0, 1] (+ label int32 [-1])
                                    -> z, or z_mean and z_log_var (VAEs), and outlier_score
                                    [-1], the report's per-image outlier score
    decoder/<N>/                    SavedModel, serving_default: z float32 [-1, latent] (+ label int32 [-1])
                                    -> images float32 [-1, H, W, C] in [0, 1]
    <N>/decoder.tflite              float32, one code per call: z [1, latent] (+ label [1])
    <N>/decoder_float16.tflite      float16 weights
    <N>/decoder_dynamic_int8.tflite int8 weights, float activations (dynamic range)
    <N>/decoder_int8.tflite         int8 weights and activations; float32 input and output tensors
    <N>/encoder.tflite              float32, one image per call
    <N>/directions.npz              the code directions (class means, attribute vectors, main directions) that
                                    keras_ae.generate --average/--add/--walk applies (keras_ae.directions)
    <N>/metadata.json               what a client needs: shapes, the prior to sample codes from, signatures,
                                    digests of every artifact of version N

An autoregressive density -- a model without a code (a PixelCNN: ``density/<N>/`` instead of the two
networks) or a prior that is a model of its own (a VQ-VAE's: ``prior/<N>/`` beside them) -- exports a
SavedModel with the signatures ``log_prob`` (also serving_default: images -> nats per image, an outlier
score for a server), ``sample`` (uniforms -> images, the element-by-element loop in one graph) and
``complete``, and a TFLite file ``<N>/density.tflite`` or ``<N>/prior.tflite``, one step of that loop, that
:mod:`keras_ae.generate` calls once per element on a device (:func:`density_module`). The export reads
the density's declared interface only (``density``, ``density_logits``, ``log_prob``).

From Python, :func:`export_model` exports a model in memory (your own networks included) and
:func:`export_run` the model of a run folder; ``model.export(path)`` is Keras's own export of the whole
autoencoder (images -> reconstructions) as one SavedModel, without this layout.

Labels of a conditional model are int32 class ids; the one-hot encoding and the sigmoid of the
decoder's logits happen inside every artifact. The SavedModel signatures assert their inputs (finite
codes, pixels in [0, 1], labels in range, one label per row) and fail with a message saying so;
TFLite has no assertion op, so :mod:`keras_ae.generate` checks inputs before they reach a model.
TFLite files have a fixed batch of 1 (the on-device case): with every shape static, XNNPACK runs the
whole graph (the latencies are in BENCHMARKS.md); :mod:`keras_ae.generate` feeds longer batches row by row.

The codes that calibrate the full-int8 decoder are drawn from the model's prior, as a client draws them.
Every artifact's sha256 and size are in metadata.json; a SavedModel folder's sha256 is that of a
manifest of its files (see :func:`keras_ae.serving.describe_artifact`). The export is staged in a hidden
``<out>/<name>/.tmp-*`` folder, then renamed into place: the SavedModel versions first, the ``<N>/``
folder (TFLite files and metadata.json) last, so a version is complete once its metadata.json exists;
then ``models.config`` (a TF Serving model config pinning the encoder and the decoder to that version)
is replaced, so a server started with it pairs the networks of one version, the old or the new, never a
mix. One export at a time writes a model folder (an OS lock); each removes what a killed one left
(staging folders, SavedModels of a version without metadata.json). Nothing of a complete version is
ever overwritten.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from keras_ae import __version__, serving
from keras_ae.directions import FILE as DIRECTIONS
from keras_ae.errors import KerasAEError, exit_code, one_line
from keras_ae.io import atomic_path, exclusive, read_json, write_json
from keras_ae.serving import MAIN_INPUT, SIGNATURE, VARIANTS

log = logging.getLogger("keras_ae")
CALIBRATION_CODES = 512  # codes (and labels) that calibrate the activations of the full-int8 decoder
TFLITE_BATCH = 1
DEFAULT_ROOT = "export"
CONFIG_KEYS = {"options": dict, "model_class": str, "data": dict, "versions": dict}  # what export reads
QUANTIZATION = {
    "float32": "none",
    "float16": "float16 weights, float32 computation",
    "dynamic_int8": "int8 weights, activations quantized on the fly (dynamic range)",
    "int8": "int8 weights and activations, calibrated on codes of the prior; float32 input and output tensors",
}


class ExportError(KerasAEError):
    """A model or run folder cannot be exported, or the export would overwrite an existing version."""


def export_model(model, out_dir=DEFAULT_ROOT, name: str | None = None, version: int | None = None,
                 quantize: bool = True, about: dict | None = None, directions=None) -> Path:
    """Export ``model`` (any zoo model, in memory) as version ``version`` of ``<out_dir>/<name>``.

    ``version=None`` takes the next free version number (1 for a first export), so re-exporting a
    retrained model adds a version a model server picks up. ``quantize=False`` writes only the
    float32 TFLite decoder and encoder. ``about`` adds entries to metadata.json (export_run gives the
    run's dataset and test metrics). ``directions`` (:class:`keras_ae.directions.Directions`, which
    export_run computes from the run's test images) goes to ``<version>/directions.npz``. Returns the
    version's folder ``<out_dir>/<name>/<version>``.
    """
    from keras_ae.models import is_zoo_model

    if not is_zoo_model(model):
        raise ExportError(f"{type(model).__name__} is not a keras_ae model")
    if model.code is not None and not model.prior.fitted:
        raise ExportError(f"{model.name}'s prior is not fitted: call model.fit_prior(training images) after "
                          "training (keras_ae.train.train does)")
    name = name or model.name
    if not name or name.startswith(".") or Path(name).name != name:
        raise ExportError(f"export name must be a plain folder name, got {name!r}")
    if isinstance(version, bool) or not (version is None or isinstance(version, int) and version >= 1):
        raise ExportError(f"version must be an integer >= 1, got {version!r}")
    model_dir = Path(out_dir) / name
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ExportError(f"export root {out_dir} is a file, not a folder")
    with exclusive(model_dir / ".lock", f"{model_dir}: another keras_ae process is exporting to it; wait for it "
                                        "to end"):
        _remove_unfinished(model_dir)
        if version is None:
            version = 1 + max(serving.versions(model_dir), default=0)
        taken = [model_dir / rel for rel in _commit_order(version) if (model_dir / rel).exists()]
        if taken:
            raise ExportError(f"{taken[0]} already exists and is never overwritten; "
                              f"export with --version {max(serving.versions(model_dir)) + 1}")
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=model_dir))
        try:
            signatures = {}
            if model.code is not None:
                signatures.update(_write_artifacts(model, staging, version, _calibration(model), quantize))
            for network, density in _densities(model).items():
                signatures.update(_write_density_artifacts(density, network, staging, version))
            if directions is not None:
                (staging / str(version)).mkdir(exist_ok=True)
                (staging / str(version) / DIRECTIONS).write_bytes(directions.to_bytes())
            artifacts = {rel: {**_artifact_kind(rel, version), **serving.describe_artifact(staging / rel)}
                         for rel in _staged(staging, version)}
            write_json(staging / serving.metadata_path(version),
                       _metadata(model, name, version, signatures, artifacts, about or {}, directions))
            for rel in _commit_order(version, _served(model)):
                (model_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / rel, model_dir / rel)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        with atomic_path(model_dir / serving.SERVING_CONFIG) as tmp:
            Path(tmp).write_text(serving.serving_config(model_dir, name, version, _served(model)))
    return model_dir / str(version)


def _remove_unfinished(model_dir: Path) -> None:
    """Remove what a killed export left (the caller holds the export lock, so no export is running):
    staging folders, and the SavedModels of a version whose metadata.json never arrived."""
    for stale in model_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    complete = set(serving.complete_versions(model_dir))
    for version in set(serving.versions(model_dir)) - complete:
        for rel in _commit_order(version):
            shutil.rmtree(model_dir / rel, ignore_errors=True)


def export_run(run_dir, out_dir=DEFAULT_ROOT, version: int | None = None, name: str | None = None,
               quantize: bool = True, with_directions: bool = True) -> Path:
    """Export the model of a run folder (see :func:`export_model`; name: the run folder's name) and
    record where it went in the run's exports.json. Returns the version's folder.

    A model with flat real-valued codes exports its code directions too, computed from the run's test
    images (so its data must load); ``with_directions=False`` leaves them out."""
    from keras_ae import runs

    run_dir = Path(run_dir)
    with runs.locked(run_dir):
        try:
            config = runs.read_config(run_dir)
            _check_config(config, run_dir / "config.json")
            run = runs.load_run(run_dir, with_data=False)
        except ExportError:
            raise
        except KerasAEError as error:
            raise ExportError(one_line(error)) from None
        found = _directions(run) if with_directions and run.model.code is not None and run.model.code.flat else None
        results_path = run_dir / "results.json"
        about = {"model": config["options"].get("model"), "dataset": config["data"],
                 "trained_with": config["versions"],
                 "metrics": read_json(results_path, ExportError) if results_path.is_file() else None}
        version_dir = export_model(run.model, out_dir, name or run_dir.resolve().name, version, quantize, about, found)
        runs.record_export(run_dir, version_dir.parent, int(version_dir.name))
    return version_dir


def _directions(run):
    """The code directions of a run's model, from its test images (the run's data loaded again)."""
    from keras_ae import directions, runs

    log.info("exporting: the code directions, from the test images ...")
    try:
        return directions.of_run(runs.Run(run.folder, run.config, run.model, runs.load_data(run.folder, run.config)))
    except KerasAEError as error:
        raise ExportError(f"{one_line(error)} (the code directions need the run's test images; export with "
                          "--no-directions to leave them out)") from None


def _densities(model) -> dict:
    """The autoregressive densities of ``model``'s export by network name: the model itself when it is one
    (``density``), or its prior when that is a model of its own (``prior``, sampled before decoding)."""
    if model.code is None:
        return {"density": model}
    return {} if model.prior.density_model is None else {"prior": model.prior.density_model}


def _served(model) -> tuple[str, ...]:
    """The SavedModels of ``model``'s export: encoder and decoder (and a prior that is a model), or a density."""
    return (("encoder", "decoder") if model.code is not None else ()) + tuple(_densities(model))


def _commit_order(version: int, networks=tuple(MAIN_INPUT)) -> list[str]:
    """What an export renames into place, in order: the SavedModels, then the version folder with metadata.json."""
    return [serving.saved_model_path(network, version) for network in networks] + [str(version)]


def _check_config(config: dict, path: Path) -> None:
    """An ExportError unless ``config`` has what export reads and comes from this format of keras_ae."""
    missing = [key for key, kind in CONFIG_KEYS.items() if not isinstance(config.get(key), kind)]
    if missing:
        raise ExportError(f"{path} is corrupt: it lacks {', '.join(missing)}")
    trained = str(config["versions"].get("keras_ae"))
    if _series(trained) != _series(__version__):
        raise ExportError(f"{path} says keras_ae {trained}; this is keras_ae {__version__}, which reads other "
                          "run folders: export it with the keras_ae that trained it")


def _series(version: str) -> tuple:
    """The part of a version that changes when run folders change: major, or major.minor before 1.0."""
    parts = version.split(".")
    return tuple(parts[:2]) if parts[0] == "0" else tuple(parts[:1])


def _calibration(model) -> dict:
    """Inputs that calibrate the full-int8 decoder: codes from the model's prior (and random labels)."""
    codes = model.prior.sample(CALIBRATION_CODES, seed=0)
    calibration = {"z": codes}
    if model.num_classes:
        calibration["label"] = np.random.default_rng(0).integers(0, model.num_classes, len(codes)).astype(np.int32)
    return calibration


# ---------------------------------------------------------------- serving functions and artifacts


def serving_module(model, network: str, checked: bool, batch: int | None = None):
    """(tf.Module, concrete function) serving ``model``'s encoder or decoder with named tensors.

    Inputs: ``images`` [-1, H, W, C] (encoder) or ``z`` [-1, latent] (decoder), plus ``label`` int32
    [-1] for a conditional model (one-hot inside). Outputs: the encoder's heads and ``outlier_score``
    [-1], the model's own per-image score as its report computes it (``model.outlier_score``), or the
    decoder's ``images`` = sigmoid(logits). ``checked`` adds assertions on the inputs (for SavedModels);
    ``batch`` fixes the batch size (None: any).
    """
    import tensorflow as tf

    main, classes = MAIN_INPUT[network], model.num_classes
    shape, dtype = (model.image_shape, tf.float32) if network == "encoder" else (model.code.shape, model.code.dtype)
    specs = {main: tf.TensorSpec((batch, *shape), dtype, name=main)}
    if classes:
        specs["label"] = tf.TensorSpec((batch,), tf.int32, name="label")

    def serve(**inputs):
        if checked:
            inputs = _asserted(inputs, main, classes, model.code.levels)
        x, labels = inputs[main], inputs.get("label")
        if network == "encoder":
            return {**model.encode_heads(x, labels), "outlier_score": model.outlier_score(x, labels)}
        return {"images": model.decode(x, labels)}

    module = tf.Module()
    # The raw tf.Variables, not their Keras wrappers: the TFLite converter freezes only these. The encoder's
    # outlier score may use every part of the model (a VAE's decoder and prior); the decoder, only its own.
    used = model.weights if network == "encoder" else [*model.decoder.weights, *model.code_variables]
    module.network_variables = [variable.value for variable in used]
    module.serve = tf.function(serve, autograph=False)
    with computing_in_float32(model):
        return module, module.serve.get_concrete_function(**specs)


@contextlib.contextmanager
def computing_in_float32(model):
    """Inside, every layer of ``model`` computes in float32, as an export traces it whatever the training
    policy: a model trained under mixed precision computes in float16 or bfloat16, TFLite has no bfloat16
    kernels and servers expect float32. Its variables were float32 all along, so nothing is lost."""
    changed = [(layer, layer.dtype_policy) for layer in model._flatten_layers(include_self=True)
               if layer.dtype_policy.compute_dtype != "float32"]
    for layer, _ in changed:
        layer.dtype_policy = "float32"
    try:
        yield model
    finally:
        for layer, policy in changed:
            layer.dtype_policy = policy


def _asserted(inputs: dict, main: str, classes: int | None, levels: int | None = None) -> dict:
    """``inputs`` behind assertions that reject invalid values with a message naming the input (``levels``:
    codes ``z`` are indices in ``range(levels)``)."""
    import tensorflow as tf

    x = inputs[main]
    if main == "images":
        checks = [(tf.reduce_all((x >= 0.0) & (x <= 1.0)), "images must hold pixels in [0, 1] (no NaN)")]
    elif main == "uniforms":
        checks = [(tf.reduce_all((x >= 0.0) & (x <= 1.0)), "uniforms must lie in [0, 1] (no NaN)")]
    elif levels is not None:
        checks = [(tf.reduce_all((x >= 0) & (x < levels)), f"z must hold codebook indices in [0, {levels - 1}]")]
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
    for network in ("encoder", "decoder"):
        log.info("exporting: %s SavedModel ...", network)
        module, function = serving_module(model, network, checked=True)
        tf.saved_model.save(module, str(staging / serving.saved_model_path(network, version)),
                            signatures={SIGNATURE: function})
        signatures[network] = _describe_signature(function)
        variants = VARIANTS if network == "decoder" and quantize else ("float32",)
        module, function = serving_module(model, network, checked=False, batch=TFLITE_BATCH)
        for variant in variants:
            log.info("exporting: %s TFLite %s ...", network, variant)
            path = staging / serving.tflite_path(network, variant, version)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_tflite(module, function, variant, calibration))
    return signatures


def density_module(density, checked: bool, batch: int | None = None):
    """(tf.Module, {signature name: concrete function}) serving an autoregressive density (a PixelCNN, or a
    prior over a code grid) through its declared interface (``density``, ``log_prob``, ``density_logits``):

    - ``log_prob``: ``images`` [-1, H, W, C] in [0, 1] (+ ``label``) -> ``log_prob`` [-1], nats per image
      (of the elements the model observes: thresholded at 0.5 for a binary density);
    - ``sample``: ``uniforms`` [-1, H, W, C] in [0, 1) (+ ``label``) -> ``images``, drawn element by element
      in one graph by the one sampler (:mod:`keras_ae.autoregressive`; :func:`keras_ae.serving.uniforms`
      draws the uniforms from a seed);
    - ``complete``: ``images``, ``uniforms`` and ``start`` (a raster index) -> ``images`` whose elements from
      ``start`` on are drawn given those before;
    - ``step``: the same with ``position``: one element drawn (the TFLite file a device calls once per element).
    """
    import tensorflow as tf

    from keras_ae import autoregressive

    classes, spec = density.num_classes, density.density

    def logits_fn(label):
        return lambda values: density.density_logits(values, label)

    def checked_inputs(inputs, main="images"):
        return _asserted(inputs, main, classes) if checked else inputs

    def log_prob(**inputs):
        inputs = checked_inputs(inputs)
        return {"log_prob": density.log_prob(inputs["images"], inputs.get("label"))}

    def sample(**inputs):
        inputs = checked_inputs(inputs, "uniforms")
        zeros = tf.zeros_like(inputs["uniforms"])
        return {"images": autoregressive.fill(logits_fn(inputs.get("label")), spec, zeros, inputs["uniforms"], 0)}

    def complete(**inputs):
        start = inputs.pop("start")
        inputs = checked_inputs(inputs)
        values = density.observed(inputs["images"])
        return {"images": autoregressive.fill(logits_fn(inputs.get("label")), spec, values, inputs["uniforms"], start)}

    def step(**inputs):
        position = inputs.pop("position")
        values = autoregressive.step(logits_fn(inputs.get("label")), spec, inputs["images"], inputs["uniforms"],
                                     position)
        return {"images": values}

    def specs(*names, **scalars):
        found = {name: tf.TensorSpec((batch, *spec.shape), tf.float32, name=name) for name in names}
        found.update({name: tf.TensorSpec((), tf.int32, name=name) for name in scalars})
        if classes:
            found["label"] = tf.TensorSpec((batch,), tf.int32, name="label")
        return found

    module = tf.Module()
    module.network_variables = [variable.value for variable in density.variables]
    functions = {"log_prob": (log_prob, specs("images")), "sample": (sample, specs("uniforms")),
                 "complete": (complete, specs("images", "uniforms", start=True)),
                 "step": (step, specs("images", "uniforms", position=True))}
    concrete = {}
    with computing_in_float32(density):
        for name, (function, signature) in functions.items():
            setattr(module, name, tf.function(function, autograph=False))
            concrete[name] = getattr(module, name).get_concrete_function(**signature)
    return module, concrete


def _write_density_artifacts(density, network: str, staging: Path, version: int) -> dict:
    """The SavedModel of a density (log_prob, also its serving_default, sample and complete) and its float32
    TFLite step file under ``staging``, as ``network``; return their signatures."""
    import tensorflow as tf

    log.info("exporting: %s SavedModel (log_prob, sample, complete) ...", network)
    module, served = density_module(density, checked=True)
    names = ("log_prob", "sample", "complete")
    tf.saved_model.save(module, str(staging / serving.saved_model_path(network, version)),
                        signatures={SIGNATURE: served["log_prob"], **{name: served[name] for name in names}})
    log.info("exporting: %s TFLite step, float32 ...", network)
    module, functions = density_module(density, checked=False, batch=TFLITE_BATCH)
    path = staging / serving.tflite_path(network, "float32", version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_tflite(module, functions["step"], "float32", {}))
    return {network: {name: _describe_signature(served[name], name) for name in names},
            f"{network}_step": _describe_signature(functions["step"])}


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


def _staged(staging: Path, version: int) -> list[str]:
    """The staged artifacts (paths relative to the model folder): the SavedModels, then the TFLite files."""
    return ([serving.saved_model_path(network, version) for network in MAIN_INPUT
             if (staging / serving.saved_model_path(network, version)).is_dir()]
            + sorted(f"{version}/{p.name}" for p in (staging / str(version)).glob("*.tflite"))
            + [f"{version}/{DIRECTIONS}"] * (staging / str(version) / DIRECTIONS).is_file())


def _artifact_kind(rel: str, version: int) -> dict:
    """What metadata.json says an artifact is, from its path relative to the model folder."""
    if rel.endswith(DIRECTIONS):
        return {"kind": "directions"}
    if rel.endswith(".tflite"):
        stem = Path(rel).name.removesuffix(".tflite")  # <network>[_<variant>]
        network, variant = next(((stem[:-len(v) - 1], v) for v in VARIANTS if stem.endswith(f"_{v}")),
                                (stem, "float32"))
        return {"kind": "tflite", "network": network, "variant": variant, "quantization": QUANTIZATION[variant],
                "batch": TFLITE_BATCH}  # one row per call: every shape is static (XNNPACK cannot resize it)
    return {"kind": "saved_model", "network": rel.split("/")[0], "variant": "float32", "signature": SIGNATURE}


def _describe_signature(function, name: str = SIGNATURE) -> dict:
    def tensors(structure: dict) -> dict:
        return {key: {"dtype": value.dtype.name, "shape": [-1 if d is None else int(d) for d in value.shape]}
                for key, value in sorted(structure.items())}

    return {"name": name, "inputs": tensors(function.structured_input_signature[1]),
            "outputs": tensors(function.structured_outputs)}


def _metadata(model, name: str, version: int, signatures: dict, artifacts: dict, about: dict, directions) -> dict:
    from keras_ae.runs import library_versions, registered_name

    classes = model.num_classes
    return {
        "format_version": serving.FORMAT_VERSION,
        "name": name,
        "version": version,
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": registered_name(model),
        "model_class": type(model).__name__,
        "architecture": model.architecture,
        "model_config": model.get_config(),
        "networks": list(_served(model)),
        "code": None if model.code is None else model.code.describe(),
        "latent_dim": model.code.size if model.code is not None and model.code.flat else None,
        "image_shape": list(model.image_shape),
        "pixel_range": [0.0, 1.0],
        "num_classes": classes,
        "labels": None if classes is None else list(range(classes)),
        "density": None if model.density is None else model.density.describe(),
        "outlier_score": model.outlier_score_name,  # the encoder's outlier_score, or -log_prob of a density
        "directions": None if directions is None else directions.describe(),
        "sampling": {"prior": serving.AUTOREGRESSIVE, "network": "density"} if model.code is None else
        model.prior.describe(),
        "dataset": None,
        "metrics": None,
        "trained_with": None,
        **about,
        "versions": library_versions(),
        "signatures": signatures,
        "digest": "sha256 of each file; a SavedModel folder's sha256 is that of the manifest of its files, "
                  "one line '<relative path>\\t<bytes>\\t<sha256>\\n' per file sorted by path",
        "artifacts": artifacts,
    }


# ---------------------------------------------------------------- the command line


def build_parser(prog: str = "python -m keras_ae.export") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export a trained run: TF Serving SavedModels, TFLite files, metadata.json, as a new version.")
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by train.py")
    parser.add_argument("--out", default=DEFAULT_ROOT, help=f"export root, a TF Serving model root shared by all "
                                                            f"runs (default: {DEFAULT_ROOT})")
    parser.add_argument("--name", default=None, help="model name under the root (default: the run folder's name)")
    parser.add_argument("--version", type=int, default=None,
                        help="version to create (default: the next free number, 1 at first)")
    parser.add_argument("--no-quantize", action="store_true", help="write only the float32 TFLite files")
    parser.add_argument("--no-directions", action="store_true",
                        help="leave out the code directions (computed from the run's test images, so its data "
                             "must load)")
    return parser


def main(argv=None, prog: str = "python -m keras_ae.export") -> int:
    """Entry point; prints the new version's folder; exit code 2 with one ``error:`` line for a user error."""
    from keras_ae import console

    console.command_started()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser(prog).parse_args(argv)
    def export():
        print(export_run(args.run_dir, args.out, args.version, args.name, quantize=not args.no_quantize,
                         with_directions=not args.no_directions))
        console.save_native_log(args.run_dir)

    return exit_code(export)


if __name__ == "__main__":
    sys.exit(main())
