"""The export format, shared by its producer (:mod:`keras_ae.export`) and its clients (:mod:`keras_ae.generate`).

An export root (``export/`` by default) is a TF Serving model root shared by all runs; each model
name holds its numbered versions::

    <root>/<name>/encoder/<version>/    SavedModel (TF Serving base path: <root>/<name>/encoder)
    <root>/<name>/decoder/<version>/    SavedModel (TF Serving base path: <root>/<name>/decoder)
    <root>/<name>/<version>/            metadata.json and the TFLite files of that version

An autoregressive density -- a model without a code (the PixelCNN), or a prior that is a model of its
own (a PixelCNN over a VQ-VAE's code grid, beside its encoder and decoder) -- is one SavedModel,
``<root>/<name>/density/`` or ``<root>/<name>/prior/``, with the signatures ``log_prob`` (images ->
nats), ``sample`` (uniforms -> images) and ``complete`` (images, uniforms, start -> images), and one
TFLite file, ``<version>/density.tflite`` or ``<version>/prior.tflite``: one step of the sampler
(images, uniforms, position -> images with that element drawn), that a device calls once per
element. The uniforms come from :func:`uniforms` and a seed, so every backend draws the same images.
metadata.json lists the ``networks`` of its version and describes the ``code`` (shape, dtype,
levels) and the ``density`` (shape, levels, order); ``sampling`` describes the prior.

``metadata.json`` says what a client needs (shapes, pixel range, labels, the prior's description to
sample codes from, signatures) and lists every artifact of its version with its sha256; paths are
relative to ``<root>/<name>`` and never leave it. A version is complete once its ``metadata.json``
exists (it is renamed into place last); versions are never overwritten.

This module needs numpy only: clients read exports without Keras and without the model code.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from keras_ae.errors import InputError, KerasAEError, one_line
from keras_ae.io import confined, read_json

FORMAT_VERSION = 4  # of metadata.json; a client refuses others (2: keras_ae 0.3; 4: the encoder gives outlier_score)
SIGNATURE = "serving_default"
BACKENDS = ("saved_model", "tflite")
VARIANTS = ("float32", "float16", "dynamic_int8", "int8")
MAIN_INPUT = {"encoder": "images", "decoder": "z", "density": "images", "prior": "images"}
AUTOREGRESSIVE = "autoregressive"  # sampling.prior of a density drawn element by element (names its network)
METADATA = "metadata.json"
SERVING_CONFIG = "models.config"  # TF Serving --model_config_file of a model folder: both networks, one version
PRIORS = ("normal", "empirical_gaussian", "mixture")
REQUIRED_KEYS = ("name", "version", "networks", "code", "latent_dim", "image_shape", "num_classes", "density",
                 "sampling", "signatures", "artifacts")
NETWORK_SETS = (("encoder", "decoder"), ("encoder", "decoder", "prior"), ("density",))
DENSITY_INPUTS = {"log_prob": ("images",), "sample": ("uniforms",), "complete": ("images", "uniforms", "start"),
                  "step": ("images", "uniforms", "position")}  # the functions of a density's artifacts


class ArtifactError(KerasAEError, ValueError):
    """An export folder or one of its files is missing, corrupt or changed; the message names it."""


# ---------------------------------------------------------------- the layout


def saved_model_path(network: str, version: int) -> str:
    """Where a SavedModel goes, relative to the model's folder ``<root>/<name>``."""
    return f"{network}/{version}"


def tflite_path(network: str, variant: str, version: int) -> str:
    """Where a TFLite file goes, relative to ``<root>/<name>``."""
    return f"{version}/{network}.tflite" if variant == "float32" else f"{version}/{network}_{variant}.tflite"


def metadata_path(version: int) -> str:
    return f"{version}/{METADATA}"


def networks(metadata: dict) -> tuple[str, ...]:
    """The SavedModels of an export, as its metadata.json lists them: encoder and decoder of an autoencoder (and
    ``prior``, a prior that is a model of its own), or the ``density`` of a model without a code."""
    return tuple(metadata["networks"])


def versions(model_dir) -> list[int]:
    """Every version number used in ``model_dir``, complete or not, sorted."""
    model_dir = Path(model_dir)
    folders = [model_dir, *(model_dir / network for network in MAIN_INPUT)]
    return sorted({int(p.name) for folder in folders if folder.is_dir() for p in folder.iterdir()
                   if p.name.isdigit() and p.name == str(int(p.name))})


def complete_versions(model_dir) -> list[int]:
    """The versions whose metadata.json is in place, sorted."""
    return [v for v in versions(model_dir) if (Path(model_dir) / metadata_path(v)).is_file()]


def serving_config(model_dir, name: str, version: int, served=("encoder", "decoder")) -> str:
    """A TF Serving model config (text protobuf) serving ``<name>-<network>`` for the ``served`` networks
    (``<name>-encoder`` and ``<name>-decoder``, or ``<name>-density``) at ``version``.

    Each network has its own base path, so a server following "latest" in each could pair a new
    encoder with an old decoder while an export is being committed; this config pins both to one
    version and is replaced, atomically, after the version is complete.
    """
    entries = "".join(
        f"  config {{\n    name: \"{name}-{network}\"\n    base_path: \"{Path(model_dir).resolve() / network}\"\n"
        f"    model_platform: \"tensorflow\"\n    model_version_policy {{ specific {{ versions: {version} }} }}\n  }}\n"
        for network in served)
    return f"model_config_list {{\n{entries}}}\n"


# ---------------------------------------------------------------- digests


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


# ---------------------------------------------------------------- reading an export


def model_folder(export_dir) -> tuple[Path, int | None]:
    """(``<root>/<name>``, version) for a model folder or one of its version folders (version None: latest)."""
    path = Path(export_dir)
    if path.name.isdigit() and (path / METADATA).is_file():
        return path.parent, int(path.name)
    return path, None


def read_metadata(export_dir, version: int | None = None) -> dict:
    """The checked metadata.json of one version (the latest complete one unless ``version`` is given).

    ``export_dir`` is a model folder ``<root>/<name>`` or one of its version folders ``<root>/<name>/<v>``.
    """
    model_dir, given = model_folder(export_dir)
    version = given if version is None else version
    if version is None:
        found = complete_versions(model_dir)
        if not found:
            raise ArtifactError(f"{model_dir}: no exported version (no <version>/{METADATA}); is it a folder "
                                "written by python -m keras_ae.export (<root>/<name>)?")
        version = found[-1]
    path = model_dir / metadata_path(version)
    metadata = read_json(path, ArtifactError, "export the run again")
    if not isinstance(metadata, dict) or metadata.get("format_version") != FORMAT_VERSION:
        found = metadata.get("format_version") if isinstance(metadata, dict) else type(metadata).__name__
        raise ArtifactError(f"{path}: format_version {found!r:.40}, this client reads {FORMAT_VERSION}: "
                            "export the run again")
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ArtifactError(f"{path} lacks {', '.join(missing)}; export the run again")
    artifacts = metadata["artifacts"]
    if not isinstance(artifacts, dict) or not all(isinstance(entry, dict) for entry in artifacts.values()):
        raise ArtifactError(f"{path}: corrupt artifacts entry; export the run again")
    shape, classes = metadata["image_shape"], metadata["num_classes"]
    if metadata["version"] != version:
        raise ArtifactError(f"{path}: says version {metadata['version']!r:.40}, but it is the metadata of version "
                            f"{version}")
    if not isinstance(metadata["networks"], list) or tuple(metadata["networks"]) not in NETWORK_SETS:
        raise ArtifactError(f"{path}: networks must be one of {[list(n) for n in NETWORK_SETS]}, got "
                            f"{metadata['networks']!r:.80}; export the run again")
    _check_code(metadata, path)
    for network in set(networks(metadata)) & {"density", "prior"}:
        _check_density(density_of(metadata, network), f"{path}: the {network}'s density")
    if "prior" in networks(metadata):  # the prior draws codes the decoder takes
        density, code = density_of(metadata, "prior"), metadata["code"]
        if math.prod(density["shape"]) != math.prod(code["shape"]) or density["levels"] != code["levels"]:
            raise ArtifactError(f"{path}: the prior draws codes of shape {density['shape']} with {density['levels']} "
                                f"levels, but the decoder takes {code['shape']} with {code['levels']}; export the run "
                                "again")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_positive_int(size) for size in shape)):
        raise ArtifactError(f"{path}: image_shape must be [H, W, C] of positive integers, got {shape!r:.80}")
    if classes is not None and not (_positive_int(classes) and classes >= 2):
        raise ArtifactError(f"{path}: num_classes must be null or an integer >= 2, got {classes!r:.80}")
    return {**metadata, "model_dir": str(model_dir)}


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _shape(value) -> bool:
    return isinstance(value, list) and len(value) >= 1 and all(_positive_int(size) for size in value)


def _check_code(metadata: dict, path) -> None:
    """An ArtifactError unless ``code`` (and ``latent_dim``) describe the decoder's input, or are null for a density."""
    code, latent_dim = metadata["code"], metadata["latent_dim"]
    if "decoder" not in networks(metadata):
        if code is not None or latent_dim is not None:
            raise ArtifactError(f"{path}: a density has no code, but code is {code!r:.80}")
        return
    if not (isinstance(code, dict) and _shape(code.get("shape")) and code.get("dtype") in ("float32", "int32")
            and (code.get("levels") is None) == (code["dtype"] == "float32")
            and (code.get("levels") is None or _positive_int(code["levels"]) and code["levels"] >= 2)):
        raise ArtifactError(f"{path}: code must give shape, dtype (float32, or int32 with levels >= 2), got "
                            f"{code!r:.120}; export the run again")
    flat = len(code["shape"]) == 1 and code["dtype"] == "float32"
    if latent_dim != (code["shape"][0] if flat else None):
        raise ArtifactError(f"{path}: latent_dim {latent_dim!r:.40} disagrees with the code's shape {code['shape']}")


def _check_density(density, what: str) -> None:
    if not (isinstance(density, dict) and _shape(density.get("shape")) and len(density["shape"]) == 3
            and _positive_int(density.get("levels")) and density["levels"] >= 2):
        raise ArtifactError(f"{what} must give shape [H, W, C] and levels >= 2, got {density!r:.120}; export the run "
                            "again")


def density_of(metadata: dict, network: str) -> dict:
    """The density description (shape, levels, order) of an export's ``density`` or ``prior`` network."""
    return metadata["density"] if network == "density" else (metadata["sampling"] or {}).get("density")


def verified_artifact(metadata: dict, network: str, backend: str, variant: str) -> Path:
    """The path of the asked artifact of a version, inside its model folder, after checking its sha256."""
    model_dir = Path(metadata["model_dir"])
    found = [(name, entry) for name, entry in metadata["artifacts"].items()
             if (entry.get("kind"), entry.get("network"), entry.get("variant")) == (backend, network, variant)]
    if not found:
        available = sorted(f"{e.get('kind')}/{e.get('variant')}" for e in metadata["artifacts"].values()
                           if e.get("network") == network)
        raise ArtifactError(f"{model_dir} version {metadata['version']} has no {backend} {network} of variant "
                            f"{variant!r}; it has: {', '.join(available) or 'none'}")
    if len(found) > 1:
        raise ArtifactError(f"{model_dir / metadata_path(metadata['version'])}: {len(found)} entries for the "
                            f"{backend} {network} {variant}; export the run again")
    (name, entry), = found
    return _checked_file(metadata, name, entry)


def _checked_file(metadata: dict, name: str, entry: dict) -> Path:
    """The path of artifact ``name`` of a version, inside its model folder, after checking its sha256."""
    model_dir = Path(metadata["model_dir"])
    try:
        path = confined(model_dir, name, model_dir / metadata_path(metadata["version"]))
    except KerasAEError as error:
        raise ArtifactError(str(error)) from None
    if not path.exists():
        raise ArtifactError(f"{model_dir / name} is missing; export the run again")
    actual = describe_artifact(path)["sha256"]
    if actual != entry.get("sha256"):
        raise ArtifactError(f"{model_dir / name}: sha256 mismatch (metadata.json says "
                            f"{str(entry.get('sha256'))[:12]}..., the file is {actual[:12]}...): it changed after "
                            "export; export the run again")
    return path


def read_directions(metadata: dict):
    """The code directions of a version (:class:`keras_ae.directions.Directions`), after checking their sha256;
    an ArtifactError saying why when it has none."""
    from keras_ae import directions

    where = f"{metadata['model_dir']} version {metadata['version']}"
    if metadata["latent_dim"] is None:
        code = metadata["code"]
        raise ArtifactError(f"{where}: code directions do not apply to {metadata.get('model')}: they take flat "
                            "real-valued codes, and it has " + ("none (a density)" if code is None else
                                                                f"{code['dtype']} codes of shape {code['shape']}"))
    described = metadata.get("directions")
    name = f"{metadata['version']}/{directions.FILE}"
    if not isinstance(described, dict) or name not in metadata["artifacts"]:
        raise ArtifactError(f"{where} has no code directions (exported with --no-directions, or by keras_ae "
                            "0.3); export the run again")
    path = _checked_file(metadata, name, metadata["artifacts"][name])
    try:
        return directions.Directions.from_file(path, described, metadata["latent_dim"])
    except InputError as error:
        raise ArtifactError(str(error)) from None


def check_signature(metadata: dict, network: str, inputs: dict, path, function: str = "log_prob") -> None:
    """An ArtifactError unless a loaded artifact takes the inputs metadata.json promises (``inputs``: name ->
    shape, -1 or the fixed batch first; ``function``: which function of a density's artifact): an edited code,
    image_shape, density or num_classes is caught here."""
    if network in ("density", "prior"):
        shape = list(density_of(metadata, network)["shape"])
        expected = {name: [] if name in ("start", "position") else shape for name in DENSITY_INPUTS[function]}
    else:
        expected = {"z": list(metadata["code"]["shape"])} if network == "decoder" else \
            {"images": list(metadata["image_shape"])}
    expected.update({"label": []} if metadata["num_classes"] else {})
    scalars = [name for name in inputs if name in ("start", "position")]  # scalars have no batch dimension
    found = {name: list(dims) if name in scalars else list(dims)[1:] for name, dims in inputs.items()}
    if found != expected:
        raise ArtifactError(f"{path}: takes {found}, but metadata.json says {expected} (latent_dim, image_shape, "
                            "num_classes); export the run again")


# ---------------------------------------------------------------- codes and inputs


def sample_codes(sampling: dict, num: int, seed: int | None = 0) -> np.ndarray:
    """``num`` float32 codes from a prior's description (metadata.json's ``sampling``), reproducible from ``seed``.

    The one sampler of keras_ae: a model's prior (``model.prior.sample``) and an export's client both
    draw through it, so they give the same codes for the same seed.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise InputError(f"number of codes must be an integer >= 1, got {num!r}")
    if isinstance(sampling, dict) and sampling.get("prior") == AUTOREGRESSIVE:
        raise InputError(f"this prior is a model of its own: its {sampling.get('network')!r} artifact samples it "
                         "(keras_ae.generate.load_prior)")
    if not isinstance(sampling, dict) or sampling.get("prior") not in PRIORS:
        raise ArtifactError(f"metadata.json: unknown sampling {sampling!r:.80}; export the run again")
    rng = np.random.default_rng(seed)
    try:
        if sampling["prior"] == "normal":
            mean = np.asarray(sampling["mean"], np.float64)
            codes = rng.normal(mean, np.asarray(sampling["std"], np.float64), size=(int(num), len(mean)))
        elif sampling["prior"] == "mixture":  # a component per code by its weight, then its Gaussian
            weights = np.asarray(sampling["weights"], np.float64)
            picks = rng.choice(len(weights), size=int(num), p=weights / weights.sum())
            codes = rng.normal(np.asarray(sampling["means"], np.float64)[picks],
                               np.asarray(sampling["std"], np.float64)[picks])
        else:
            mean = np.asarray(sampling["mean"], np.float64)
            codes = rng.multivariate_normal(mean, np.asarray(sampling["covariance"], np.float64), size=int(num),
                                            check_valid="ignore")  # SVD: singular covariances (dead units) are fine
        with np.errstate(over="ignore", invalid="ignore"):
            codes = np.asarray(codes, np.float64).astype(np.float32)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ArtifactError(f"metadata.json: corrupt sampling entry ({one_line(error)}); export the run again") \
            from None
    if codes.ndim != 2 or not np.isfinite(codes).all():
        raise ArtifactError("metadata.json: its sampling entry gives no finite float32 codes; export the run again")
    return codes


def uniforms(seed: int | None, count: int, shape) -> np.ndarray:
    """float32 uniforms in [0, 1), one per element of ``count`` arrays of ``shape``: the random numbers of the
    one autoregressive sampler (:mod:`keras_ae.autoregressive`), drawn the same way by a model and by every
    client of its export. The rows of a smaller count are the first rows of a larger one."""
    return np.random.default_rng(seed).random((int(count), int(np.prod(shape))), dtype=np.float32).reshape(
        int(count), *shape)


def check_codes(value, code: dict) -> np.ndarray:
    """Codes for a decoder whose code metadata.json describes: finite float32, or int32 indices in ``range(levels)``."""
    if code["levels"] is None:
        return check_array(value, "codes z", tuple(code["shape"]))
    array = np.asarray(value)
    shape = tuple(code["shape"])
    if array.dtype.kind not in "iu":
        raise InputError(f"codes z must be integer codebook indices, got dtype {array.dtype}")
    if array.ndim != 1 + len(shape) or array.shape[1:] != shape or len(array) == 0:
        raise InputError(f"codes z must have shape [N, {', '.join(map(str, shape))}] with N >= 1, got "
                         f"{list(array.shape)}")
    if array.min() < 0 or array.max() >= code["levels"]:
        raise InputError(f"codes z must be indices in [0, {code['levels'] - 1}], got values in [{array.min()}, "
                         f"{array.max()}]")
    return array.astype(np.int32)


def check_array(value, what: str, shape: tuple, value_range=None) -> np.ndarray:
    """``value`` as float32 of shape [N, *shape] with N >= 1, finite after the cast (and within ``value_range``)."""
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise InputError(f"{what} must be real numbers (float32), got dtype {array.dtype}")
    expected = f"[N, {', '.join(str(s) for s in shape)}]"
    if array.ndim != 1 + len(shape) or array.shape[1:] != tuple(shape) or len(array) == 0:
        raise InputError(f"{what} must have shape {expected} with N >= 1, got {list(array.shape)}")
    with np.errstate(over="ignore"):  # a finite float64 beyond float32's range becomes inf: refused below
        array = array.astype(np.float32)
    bad = np.count_nonzero(~np.isfinite(array))
    if bad:
        raise InputError(f"{what} must be finite float32 numbers: {bad} NaN, infinite or out-of-range values")
    if value_range and (array.min() < value_range[0] or array.max() > value_range[1]):
        raise InputError(f"{what} must lie in [{value_range[0]}, {value_range[1]}], "
                         f"got values in [{array.min():.4g}, {array.max():.4g}]")
    return array


def check_labels(labels, count: int, num_classes: int | None, model: str) -> np.ndarray | None:
    """int32 labels [count] for a conditional model (a single label is repeated), None for another one.

    The one label check of keras_ae: models (``sample``, ``decode``) and export clients use it.
    """
    if num_classes is None:
        if labels is not None:
            raise InputError(f"model {model!r} is not conditional: it takes no labels")
        return None
    if labels is None:
        raise InputError(f"model {model!r} is conditional on {num_classes} classes: "
                         f"give one label in [0, {num_classes - 1}] per row")
    array = np.asarray(labels)
    if array.dtype.kind not in "iu":
        raise InputError(f"labels must be integers in [0, {num_classes - 1}], got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(count, array)
    if array.shape != (count,):
        raise InputError(f"labels must have shape [{count}] (one per row), got {list(array.shape)}")
    if array.min() < 0 or array.max() >= num_classes:
        raise InputError(f"labels must be in [0, {num_classes - 1}], got {sorted(set(array.tolist()))[:10]}")
    return array.astype(np.int32)
