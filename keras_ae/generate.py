"""Sample images from an exported autoencoder, with its decoder alone (or from an exported PixelCNN).

    python -m keras_ae.generate export/vae-conv-mnist --num 64 --out samples.png
    python -m keras_ae.generate EXPORT --backend tflite --variant int8 --label 3 --seed 1
    python -m keras_ae.generate EXPORT --codes codes.npy            # decode given codes, shape [N, latent]
    python -m keras_ae.generate EXPORT --interpolate a.npy b.npy --steps 8
    python -m keras_ae.generate EXPORT --average 7                  # the mean code of class 7, decoded
    python -m keras_ae.generate EXPORT --codes z.npy --add Smiling=1.5 --add thicker=-1   # z + k s
    python -m keras_ae.generate EXPORT --average all --walk main1 --steps 8               # z - 3 s .. z + 3 s

EXPORT is a model folder ``<root>/<name>`` written by :mod:`keras_ae.export` (its latest version, or
``--version N``) or one version's folder ``<root>/<name>/<N>``. Codes are drawn from the model's prior
as its ``metadata.json`` describes it (the N(0, I) of a VAE, or the Gaussian fitted to the training codes
of a plain autoencoder) -- or, for a prior that is a model of its own (a VQ-VAE's PixelCNN over its code
grid), by that prior's exported artifact -- or edited along the export's code directions
(:mod:`keras_ae.directions`: class means, attribute vectors, main directions) -- decoded by the exported
decoder only (a TF Serving
SavedModel, or a TFLite file run by ``ai_edge_litert``), and written as a PNG grid. An exported density
(PixelCNN) is sampled pixel by pixel: by its SavedModel's ``sample`` signature, or on a device by its
TFLite step file (``--backend tflite``), one call per pixel; both draw the same images for a seed, the
same as the Keras model, and the time per image is printed.

This module is the client side of an export (the format is :mod:`keras_ae.serving`): it needs numpy,
matplotlib, and TensorFlow for the ``saved_model`` backend or ``ai_edge_litert`` for ``tflite`` -- never
Keras nor the model code of keras_ae. Every artifact is checked against its sha256 in ``metadata.json``
before it is loaded, and every input is checked before it reaches a model (a TFLite model has no
assertions of its own).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from keras_ae import latent, serving
from keras_ae.errors import InputError, exit_code, one_line
from keras_ae.plots import image_grid
from keras_ae.serving import BACKENDS, SIGNATURE, VARIANTS, ArtifactError

MAX_IMAGES = 10_000  # images in one grid (--num, --steps, --codes); 10,000 MNIST images make a 28 MB PNG


# ---------------------------------------------------------------- the exported networks


def load_decoder(export_dir, backend: str = "saved_model", variant: str = "float32", version: int | None = None):
    """``decode(z, labels=None) -> images`` (float32 [N, H, W, C] in [0, 1]) of the exported decoder."""
    metadata, run = _load(export_dir, "decoder", backend, variant, version)

    def decode(z, labels=None) -> np.ndarray:
        z = serving.check_codes(z, metadata["code"])
        return run({"z": z, **_label_input(metadata, labels, len(z))})["images"]

    return decode


def load_encoder(export_dir, backend: str = "saved_model", version: int | None = None):
    """``encode(images, labels=None) -> {head: codes}`` of the exported encoder (float32 only).

    The heads are ``z`` for plain autoencoders, ``z_mean`` and ``z_log_var`` for VAEs; ``outlier_score`` is
    each image's outlier score as the model's report computes it (metadata.json's ``outlier_score`` names it).
    """
    metadata, run = _load(export_dir, "encoder", backend, "float32", version)

    def encode(images, labels=None) -> dict:
        images = serving.check_array(images, "images", tuple(metadata["image_shape"]), value_range=(0.0, 1.0))
        return run({"images": images, **_label_input(metadata, labels, len(images))})

    return encode


def load_density(export_dir, backend: str = "saved_model", version: int | None = None, network: str = "density"):
    """(``sample(num, labels=None, seed=0) -> images``, metadata) of an exported density (a PixelCNN; with
    ``network="prior"``, the prior of a VQ-VAE over its code grid, whose values are index / (K - 1)).

    ``saved_model`` runs the SavedModel's ``sample`` signature (the whole loop in one graph); ``tflite``
    calls the step file once per element and image: what a device without TensorFlow runs. Both take
    the uniforms of :func:`keras_ae.serving.uniforms` from ``seed``, so they draw the same images, and
    the same as the Keras model's ``sample``.
    """
    metadata = serving.read_metadata(export_dir, version)
    if network not in serving.networks(metadata):
        raise InputError(f"{metadata['model_dir']} has no {network} (it has {', '.join(serving.networks(metadata))})"
                         + ("; decode codes with load_decoder" if network == "density" else ""))
    shape = tuple(serving.density_of(metadata, network)["shape"])
    labelled = network == "density"  # (a prior over codes is not conditional)
    function = "sample" if backend == "saved_model" else "step"
    run = _load(export_dir, network, backend, "float32", metadata["version"], signature=function)[1]

    def sample(num, labels=None, seed=0) -> np.ndarray:
        label = _label_input(metadata, labels, num) if labelled else {}
        uniforms = serving.uniforms(seed, num, shape)
        if backend == "saved_model":
            return run({"uniforms": uniforms, **label})["images"]
        images = np.zeros_like(uniforms)
        for position in range(int(np.prod(shape))):  # the device path: one call per element
            images = run({"images": images, "uniforms": uniforms, "position": np.int32(position), **label})["images"]
        return images

    return sample, metadata


def load_completion(export_dir, backend: str = "saved_model", version: int | None = None):
    """``complete(images, start, labels=None, seed=0) -> images`` of an exported density: the elements from
    raster index ``start`` on drawn given those before (the SavedModel's ``complete`` signature, or the TFLite
    step file once per element), with the uniforms of :func:`keras_ae.serving.uniforms` from ``seed``."""
    metadata = serving.read_metadata(export_dir, version)
    if "density" not in serving.networks(metadata):
        raise InputError(f"{metadata['model_dir']} is not a density (it has {', '.join(serving.networks(metadata))})")
    shape, levels = tuple(metadata["density"]["shape"]), metadata["density"]["levels"]
    signature = "complete" if backend == "saved_model" else "step"
    run = _load(export_dir, "density", backend, "float32", metadata["version"], signature=signature)[1]

    def complete(images, start: int, labels=None, seed=0) -> np.ndarray:
        images = serving.check_array(images, "images", shape, value_range=(0.0, 1.0))
        label, uniforms = _label_input(metadata, labels, len(images)), serving.uniforms(seed, len(images), shape)
        if backend == "saved_model":
            return run({"images": images, "uniforms": uniforms, "start": np.int32(start), **label})["images"]
        # what the model observes (as the SavedModel's density.observed): binary pixels, or the levels
        values = ((images >= 0.5) if levels == 2 else np.round(images * (levels - 1)) / (levels - 1)).astype(np.float32)
        for position in range(int(start), int(np.prod(shape))):
            values = run({"images": values, "uniforms": uniforms, "position": np.int32(position), **label})["images"]
        return values

    return complete


def load_prior(export_dir, backend: str = "saved_model", version: int | None = None):
    """``sample(num, seed=0) -> codes`` of an export whose prior is a model of its own (a VQ-VAE's PixelCNN
    prior): codebook indices [num, *code shape], drawn by its ``prior`` artifact."""
    sample, metadata = load_density(export_dir, backend, version, network="prior")
    levels, shape = metadata["code"]["levels"], tuple(metadata["code"]["shape"])

    def codes(num, seed=0) -> np.ndarray:
        return np.rint(sample(num, None, seed) * (levels - 1)).astype(np.int32).reshape(num, *shape)

    return codes


def _label_input(metadata: dict, labels, count: int) -> dict:
    """``{"label": int32 [count]}`` for a conditional model, ``{}`` otherwise; InputError on a misfit."""
    labels = serving.check_labels(labels, count, metadata["num_classes"], metadata["name"])
    return {} if labels is None else {"label": labels}


def _load(export_dir, network: str, backend: str, variant: str, version: int | None, signature: str = SIGNATURE):
    """(metadata, run) for one artifact: ``run`` maps a dict of named inputs to a dict of named outputs
    (through the SavedModel's ``signature``; a density's TFLite file is its ``step``)."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    metadata = serving.read_metadata(export_dir, version)
    path = serving.verified_artifact(metadata, network, backend, variant)
    try:
        run, inputs = _saved_model_runner(path, signature) if backend == "saved_model" else _tflite_runner(path)
    except Exception as error:  # a file that matches its sha256 but is no model (or another format's)
        raise ArtifactError(f"{path}: cannot load it as a {backend} ({one_line(error)[:160]}); export the run "
                            "again") from None
    serving.check_signature(metadata, network, inputs, path, "log_prob" if signature == SIGNATURE else signature)
    return metadata, run


def _saved_model_runner(path: Path, name: str = SIGNATURE):
    """(run, {input name: shape}) of one signature of a SavedModel."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures[name]

    def run(inputs: dict) -> dict:  # ``signature`` keeps the loaded variables alive
        try:
            outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
        except tf.errors.InvalidArgumentError as error:  # an input the model's own assertions reject
            raise InputError(f"{path}: the model refused its input ({one_line(error)[:160]})") from None
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    specs = signature.structured_input_signature[1]
    return run, {name: [-1 if d is None else int(d) for d in spec.shape] for name, spec in specs.items()}


def _tflite_runner(path: Path):
    """(run, {input name: shape}) of a TFLite file; ``run`` feeds it row by row: its batch is fixed at 1
    (see :mod:`keras_ae.export`)."""
    from ai_edge_litert.interpreter import Interpreter

    # LiteRT's default is one thread; one per core decodes faster (BENCHMARKS.md, "Decoding").
    runner = Interpreter(model_path=str(path), num_threads=os.cpu_count()).get_signature_runner(SIGNATURE)

    def run(inputs: dict) -> dict:  # (a scalar input, a density step's position, goes to every row)
        rows = [runner(**{name: value if np.ndim(value) == 0 else value[i:i + 1] for name, value in inputs.items()})
                for i in range(len(next(value for value in inputs.values() if np.ndim(value))))]
        return {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}

    return run, {name: [int(d) for d in details["shape"]] for name, details in runner.get_input_details().items()}


# ---------------------------------------------------------------- the command line


def build_parser(prog: str = "python -m keras_ae.generate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Sample images from an export without Keras or the encoder: decode codes (drawn from its prior, "
                    "or given) with its decoder, or draw a density's images pixel by pixel; write a PNG grid.")
    parser.add_argument("export_dir", metavar="EXPORT", help="model folder <root>/<name> written by python -m "
                                                             "keras_ae.export, or one of its version folders")
    parser.add_argument("--version", type=int, default=None, help="which version (default: the latest)")
    codes = parser.add_mutually_exclusive_group()
    codes.add_argument("--num", type=int, default=64, help="codes to sample as metadata.json says (default: 64)")
    codes.add_argument("--codes", metavar="NPY", help="decode these codes: a .npy of shape [N, *code shape] "
                                                      "(metadata.json's code)")
    codes.add_argument("--interpolate", nargs=2, metavar=("A_NPY", "B_NPY"),
                       help="decode the straight line between two codes (.npy of latent_dim values each)")
    codes.add_argument("--average", metavar="CLASS", help="decode the mean test code of a class (or of 'all'), from "
                                                          "the export's code directions")
    parser.add_argument("--add", action="append", default=[], metavar="NAME=K",
                        help="add K times the export's direction NAME to every code (z + K s; repeatable), e.g. "
                             "Smiling=1.5, thicker=-1, main1=2")
    parser.add_argument("--walk", metavar="NAME", help="decode each code walked along direction NAME: --steps codes "
                                                       "z + k s, k from -3 to 3 (one row per code)")
    parser.add_argument("--steps", type=int, default=8, help="codes on the --interpolate line or the --walk "
                                                             "(default: 8)")
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
        raise InputError(f"cannot read codes from {path}: {one_line(error)}") from None


def _codes_and_columns(args, metadata: dict) -> tuple[np.ndarray, int]:
    """The codes the flags ask for, and the grid's column count for them."""
    if args.interpolate:
        if metadata["latent_dim"] is None:
            raise InputError(f"{metadata['model_dir']}: --interpolate takes flat real-valued codes; this code is "
                             f"{metadata['code']['dtype']} of shape {metadata['code']['shape']}")
        return latent.interpolate(*map(_load_npy, args.interpolate), args.steps), args.steps
    if args.codes:
        codes = _load_npy(args.codes)
    elif "prior" in serving.networks(metadata):  # a prior that is a model of its own samples the codes
        sample = load_prior(args.export_dir, args.backend, metadata["version"])
        start = _announce(args, metadata, "prior")
        codes = sample(args.num, args.seed)
        seconds = time.monotonic() - start
        print(f"sampled {args.num} codes in {seconds:.1f} s ({seconds / args.num:.3f} s per image)", file=sys.stderr)
    else:
        codes = serving.sample_codes(metadata["sampling"], args.num, args.seed)
    conditional = metadata["num_classes"] and args.label is None
    return codes, metadata["num_classes"] if conditional else math.ceil(math.sqrt(len(codes)))


def _edits(args) -> bool:
    return bool(args.average is not None or args.add or args.walk)


def _edited(args, metadata: dict) -> tuple[np.ndarray, int]:
    """The codes the flags ask for, edited along the export's code directions (--average, --add, --walk)."""
    from keras_ae import directions

    additions = [directions.parse_addition(text) for text in args.add]
    found = serving.read_directions(metadata)
    if args.average is not None:
        codes, columns = found.average(args.average)[None], 1
    else:
        codes, columns = _codes_and_columns(args, metadata)
    codes = found.edited(serving.check_codes(codes, metadata["code"]), additions)
    if args.walk:
        return found.walk(codes, args.walk, args.steps), args.steps
    return codes, columns if len(codes) > 1 else 1


def generate(args: argparse.Namespace) -> Path:
    """Decode the codes the flags ask for and write the grid; return its path."""
    if args.backend == "saved_model" and args.variant != "float32":
        raise InputError(f"--variant {args.variant} is a TFLite variant; add --backend tflite")
    if Path(args.out).is_dir():
        raise InputError(f"--out {args.out} is a folder; give the PNG file to write, such as "
                         f"{Path(args.out) / 'samples.png'}")
    for flag, value in (("--num", args.num), ("--steps", args.steps)):
        if not 1 <= value <= MAX_IMAGES:
            raise InputError(f"{flag} must be in [1, {MAX_IMAGES}] (images in one grid), got {value}")
    metadata = serving.read_metadata(args.export_dir, args.version)
    if args.label is not None:  # (before any sampling: a wrong label is refused at once)
        serving.check_labels(args.label, 1, metadata["num_classes"], metadata["name"])
    if serving.networks(metadata) == ("density",):
        return _generate_density(args, metadata)
    codes, columns = _edited(args, metadata) if _edits(args) else _codes_and_columns(args, metadata)
    count = len(np.atleast_2d(codes))
    if count > MAX_IMAGES:
        raise InputError(f"--codes holds {count} codes; one grid takes at most {MAX_IMAGES}")
    labels = args.label
    if labels is None and metadata["num_classes"]:
        labels = (np.full(count, int(args.average)) if str(args.average).isdigit() else
                  np.arange(count) % metadata["num_classes"])
    images = load_decoder(args.export_dir, args.backend, args.variant, metadata["version"])(codes, labels)
    title = f"{metadata['name']} v{metadata['version']}: {args.backend} {args.variant}"
    if args.label is not None:
        title += f", label {args.label}"
    if _edits(args):
        title += "".join([f", average {args.average}" * (args.average is not None), *(f", + {t}" for t in args.add),
                          f", walk {args.walk} k = -3..3" * bool(args.walk)])
    # column c: class c
    by_class = metadata["num_classes"] and args.label is None and not (args.interpolate or _edits(args))
    image_grid(images, args.out, columns, title=title,
               column_titles=[f"y = {c}" for c in range(columns)] if by_class else None)
    return Path(args.out)


def _announce(args: argparse.Namespace, metadata: dict, network: str) -> float:
    """Say how many network passes the sampling of ``network`` takes before it starts; return the start time."""
    passes = int(np.prod(serving.density_of(metadata, network)["shape"]))
    what = "images pixel by pixel" if network == "density" else "codes element by element from the prior"
    print(f"sampling {args.num} {what} ({passes} network passes{' per image' * (args.backend == 'tflite')}) ...",
          file=sys.stderr)
    return time.monotonic()


def _generate_density(args: argparse.Namespace, metadata: dict) -> Path:
    """New images of an exported density, pixel by pixel (the time per image is printed), as a grid."""
    if args.codes or args.interpolate or _edits(args):
        raise InputError(f"{metadata['model_dir']} is a density without codes ({metadata['model']}): it takes "
                         "no --codes, --interpolate, --average, --add or --walk, only "
                         f"--num{', --label' * bool(metadata['num_classes'])} "
                         "and --seed")
    if args.variant != "float32":
        raise InputError(f"{metadata['model_dir']}: a density's TFLite file is float32 only")
    classes = metadata["num_classes"]
    labels = args.label if args.label is not None or not classes else np.arange(args.num) % classes
    sample, _ = load_density(args.export_dir, args.backend, metadata["version"])
    start = _announce(args, metadata, "density")
    images = sample(args.num, labels, args.seed)
    seconds = time.monotonic() - start
    print(f"sampled {args.num} images pixel by pixel in {seconds:.1f} s ({seconds / args.num:.3f} s per image)",
          file=sys.stderr)
    columns = classes if classes and args.label is None else math.ceil(math.sqrt(args.num))
    title = f"{metadata['name']} v{metadata['version']}: {args.backend}, drawn pixel by pixel"
    image_grid(images, args.out, columns, title=title + (f", label {args.label}" if args.label is not None else ""),
               column_titles=[f"y = {c}" for c in range(columns)] if classes and args.label is None else None)
    return Path(args.out)


def main(argv=None, prog: str = "python -m keras_ae.generate") -> int:
    """Entry point; exit code 2 with one ``error:`` line for a user error."""
    from keras_ae import console

    console.command_started()
    args = build_parser(prog).parse_args(argv)
    return exit_code(lambda: print(generate(args)))


if __name__ == "__main__":
    sys.exit(main())
