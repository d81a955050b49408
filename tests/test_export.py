"""Export and serving end to end: every model of the zoo exported, reloaded without Keras, sampled.

Tiny models on the bundled digits, trained once per module (one epoch); the exported artifacts are
compared with the Keras model they came from, in a fresh process that cannot import Keras.
"""

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from PIL import Image

from keras_ae import data, export, generate, latent, serving
from keras_ae.errors import InputError
from keras_ae.models import MODELS

LATENT = 8  # the code size of every autoencoder's test_options
CONDITIONAL = {"cvae"}
pytestmark = pytest.mark.slow  # every test here uses models trained by a module fixture

TFLITE = [f"1/decoder{'' if v == 'float32' else '_' + v}.tflite" for v in serving.VARIANTS] + ["1/encoder.tflite"]

# Runs first in the child process: `import keras`, keras_ae.models / train / data / export all fail there.
BLOCK_MODEL_CODE = textwrap.dedent('''
    import importlib.abc, importlib.machinery, sys

    class Blocked(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        """A spec for every blocked name (TensorFlow's find_spec("keras") still answers), no module."""
        blocked = ("keras_ae.models", "keras_ae.train", "keras_ae.data", "keras_ae.export")

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "keras" or name.startswith(self.blocked):
                return importlib.machinery.ModuleSpec(name, self)
            return None

        def create_module(self, spec):
            raise ImportError(f"{spec.name} is blocked in this client process")

        def exec_module(self, module):
            raise ImportError(f"{module.__name__} is blocked in this client process")

    sys.meta_path.insert(0, Blocked())
''')

CLIENT = BLOCK_MODEL_CODE + textwrap.dedent('''
    import json
    import numpy as np
    from keras_ae import generate, serving

    def psnr(images, reference):
        return float(10 * np.log10(1.0 / np.mean((images - reference) ** 2)))

    results = {}
    for name, export_dir, reference in json.loads(sys.argv[1]):
        ref = np.load(reference)
        labels = ref["labels"] if "labels" in ref else None
        figures = {}
        for backend, variant in [("saved_model", "float32")] + [("tflite", v) for v in serving.VARIANTS]:
            images = generate.load_decoder(export_dir, backend, variant)(ref["z"], labels)
            figures[f"decoder {backend} {variant}"] = {"max_abs": float(np.abs(images - ref["images"]).max()),
                                                       "psnr_db": psnr(images, ref["images"])}
        for backend in serving.BACKENDS:
            heads = generate.load_encoder(export_dir, backend)(ref["x"], labels)
            errors = [float((np.abs(heads[h] - ref[f"head_{h}"]) / np.maximum(1, np.abs(ref[f"head_{h}"]))).max())
                      for h in heads]  # (relative beyond 1: an outlier score is a sum over the pixels)
            figures[f"encoder {backend}"] = {"max_abs": max(errors)}
        results[name] = figures
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "keras" or m.startswith(Blocked.blocked))
    print(json.dumps({"loaded": loaded, "results": results}))
''')


@pytest.fixture(scope="module")
def runs(zoo):
    """The run folder of every registered model (tests/conftest.py: trained, evaluated and exported once)."""
    return {name: run_dir for name, (run_dir, _) in zoo.items()}


@pytest.fixture(scope="module")
def exports(zoo):
    """The model folder <root>/<name> of each run's first export (version 1)."""
    return {name: export_dir for name, (_, export_dir) in zoo.items()}


@pytest.fixture(scope="module")
def export_root(exports):
    return exports["ae"].parent


def flat_codes(exports) -> list[str]:
    """The registered models whose decoder takes flat real-valued codes (LATENT of them)."""
    return [name for name in exports if metadata_of(exports[name])["latent_dim"] is not None]


@pytest.fixture(scope="module")
def test_images():
    return data.load("digits", seed=0).arrays("test")


def metadata_of(model_dir, version: int = 1) -> dict:
    return json.loads((Path(model_dir) / str(version) / "metadata.json").read_text())


def labels_for(name, count):
    return (np.arange(count) % 10).astype(np.int32) if name in CONDITIONAL else None


# ---------------------------------------------------------------- the export layout


@pytest.mark.parametrize("name", MODELS)
def test_every_model_exports_a_complete_verified_layout(name, runs, exports, export_root):
    export_dir = exports[name]
    assert export_dir == export_root / name
    metadata = metadata_of(export_dir)
    networks = metadata["networks"]
    expected = {f"{network}/1" for network in networks}
    if "decoder" in networks:
        expected |= set(TFLITE)
    expected |= {f"1/{network}.tflite" for network in set(networks) & {"density", "prior"}}
    if metadata["latent_dim"] is not None:  # flat codes: their directions too
        expected.add("1/directions.npz")
        assert metadata["artifacts"]["1/directions.npz"]["kind"] == "directions"
    assert (metadata["directions"] is None) == (metadata["latent_dim"] is None)
    assert set(metadata["artifacts"]) == expected
    for network in networks:
        assert (export_dir / network / "1" / "saved_model.pb").is_file()
        assert any((export_dir / network / "1" / "variables").glob("variables.data-*"))
    for file in expected - {f"{network}/1" for network in networks}:
        assert (export_dir / file).stat().st_size > 0, file
    assert not list(export_dir.glob(".tmp-*"))
    assert metadata["version"] == 1 and metadata["format_version"] == serving.FORMAT_VERSION
    assert json.loads((runs[name] / "exports.json").read_text())[0]["model_dir"] == str(export_dir.resolve())
    for rel, entry in metadata["artifacts"].items():
        assert serving.describe_artifact(export_dir / rel)["sha256"] == entry["sha256"], rel
    label = {"label": {"dtype": "int32", "shape": [-1]}} if metadata["num_classes"] else {}
    images = {"dtype": "float32", "shape": [-1, 8, 8, 1]}
    if "decoder" in networks:
        decoder, encoder, code = metadata["signatures"]["decoder"], metadata["signatures"]["encoder"], metadata["code"]
        z = {"dtype": code["dtype"], "shape": [-1, *code["shape"]]}
        assert decoder["inputs"] == {"z": z, **label} and decoder["outputs"] == {"images": images}
        assert encoder["inputs"] == {"images": images, **label}
        vae = name in ("vae", "cvae")
        score = {"outlier_score": {"dtype": "float32", "shape": [-1]}}  # the report's, per image
        assert encoder["outputs"] == ({"z_mean": z, "z_log_var": z} if vae else {"z": z}) | score
        assert metadata["outlier_score"] == MODELS[name].outlier_score_name
        assert metadata["sampling"]["prior"] == {"vae": "normal", "cvae": "normal", "vqvae": "autoregressive"}.get(
            name, "empirical_gaussian")
        assert metadata["metrics"]["test"]["squared_error"] > 0
    else:
        assert metadata["signatures"]["density"]["log_prob"]["inputs"] == {"images": images, **label}
        assert metadata["density"] == {"shape": [8, 8, 1], "levels": 2, "order": metadata["density"]["order"]}
    assert metadata["num_classes"] == (10 if MODELS[name].needs_labels else None)
    assert metadata["model"] == name and metadata["pixel_range"] == [0.0, 1.0]
    assert set(metadata["versions"]) >= {"tensorflow", "keras", "keras_ae", "numpy"}


def test_a_plain_autoencoder_samples_the_gaussian_of_its_training_codes(runs, exports):
    model = keras.models.load_model(runs["ae"] / "model.keras")
    x, _ = data.load("digits", seed=0).arrays("train")
    codes = np.asarray(model.encode(x), np.float64)
    sampling = metadata_of(exports["ae"])["sampling"]
    np.testing.assert_allclose(sampling["mean"], codes.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(sampling["covariance"], np.cov(codes, rowvar=False), atol=1e-4)

    samples = serving.sample_codes(metadata_of(exports["ae"])["sampling"], 20000, seed=1)
    assert samples.dtype == np.float32 and samples.shape == (20000, LATENT)
    scale = codes.std(axis=0).max()
    np.testing.assert_allclose(samples.mean(axis=0), codes.mean(axis=0), atol=0.05 * scale)


def test_vae_codes_come_from_the_prior_and_the_seed(exports):
    metadata = metadata_of(exports["vae"])
    first, again, other = (serving.sample_codes(metadata["sampling"], 4000, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert abs(first.mean()) < 0.05 and abs(first.std() - 1) < 0.05


# ---------------------------------------------------------------- generating images


def test_given_codes_and_an_interpolation_are_decoded(exports, tmp_path):
    codes = tmp_path / "codes.npy"
    np.save(codes, np.random.default_rng(0).standard_normal((5, LATENT)).astype(np.float32))
    np.save(tmp_path / "a.npy", np.full(LATENT, -2.0))
    np.save(tmp_path / "b.npy", np.full((1, LATENT), 2.0))
    assert generate.main([str(exports["vae"]), "--codes", str(codes), "--out", str(tmp_path / "c.png")]) == 0
    assert generate.main([str(exports["vae"]), "--interpolate", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"),
                          "--steps", "4", "--backend", "tflite", "--out", str(tmp_path / "i.png")]) == 0
    for grid in ("c.png", "i.png"):
        assert np.asarray(Image.open(tmp_path / grid).convert("L"), np.float32).std() > 10, grid  # decoded digits
    line = latent.interpolate(np.zeros(LATENT), np.ones(LATENT), 5)
    np.testing.assert_allclose(line[:, 0], [0, 0.25, 0.5, 0.75, 1])


# ---------------------------------------------------------------- fidelity, in a process without Keras


def test_a_fresh_process_without_keras_reproduces_the_keras_model(runs, exports, test_images, tmp_path):
    x, y = test_images
    cases = []
    for name in flat_codes(exports):
        model = keras.models.load_model(runs[name] / "model.keras")
        labels = None if name not in CONDITIONAL else y[:64].astype(np.int32)
        z = np.random.default_rng(0).standard_normal((64, LATENT)).astype(np.float32)
        reference = {"z": z, "images": np.asarray(model.decode(z, labels)), "x": x[:64],
                     **{f"head_{head}": np.asarray(v)
                        for head, v in model.encoder(model.conditioned(x[:64], labels)).items()},
                     "head_outlier_score": np.asarray(model.outlier_score(x[:64], labels))}
        if labels is not None:
            reference["labels"] = labels
        np.savez(tmp_path / f"{name}.npz", **reference)
        cases.append((name, str(exports[name]), str(tmp_path / f"{name}.npz")))

    child = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(cases)], capture_output=True, text=True,
                           timeout=300)
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["loaded"] == []
    for name, figures in report["results"].items():
        sizes = {f: (exports[name] / f).stat().st_size for f in TFLITE}
        print(f"\n{name}: " + ", ".join(f"{k} max|d| {v['max_abs']:.2e}" + (f" psnr {v['psnr_db']:.1f} dB"
                                                                           if "psnr_db" in v else "")
                                        for k, v in figures.items()))
        print(f"{name}: sizes vs float32 " + ", ".join(f"{f} {sizes[f] / sizes['1/decoder.tflite']:.2f}"
                                                         for f in TFLITE[1:4]))
        assert figures["decoder saved_model float32"]["max_abs"] <= 1e-5
        assert figures["encoder saved_model"]["max_abs"] <= 1e-5
        assert figures["decoder tflite float32"]["max_abs"] <= 1e-4
        assert figures["encoder tflite"]["max_abs"] <= 1e-4
        assert figures["decoder tflite float16"]["max_abs"] <= 1e-2
        for variant in ("dynamic_int8", "int8"):
            assert figures[f"decoder tflite {variant}"]["psnr_db"] > 15, (name, variant)
        if name == "ae":  # 170k decoder weights: int8 storage must show
            for file in ("1/decoder_dynamic_int8.tflite", "1/decoder_int8.tflite"):
                assert sizes[file] < 0.5 * sizes["1/decoder.tflite"], file
            assert sizes["1/decoder_float16.tflite"] < 0.6 * sizes["1/decoder.tflite"]


# ---------------------------------------------------------------- serving contracts


def test_saved_model_cli_lists_the_named_signature(exports):
    result = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
                             str(exports["cvae"] / "decoder" / "1"), "--all"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    signature = out[out.index("signature_def['serving_default']"):]
    for expected in ("inputs['z'] tensor_info:", "dtype: DT_FLOAT", f"shape: (-1, {LATENT})",
                     "name: serving_default_z:0", "inputs['label'] tensor_info:", "dtype: DT_INT32", "shape: (-1)",
                     "name: serving_default_label:0", "outputs['images'] tensor_info:", "shape: (-1, 8, 8, 1)",
                     "Method name is: tensorflow/serving/predict"):
        assert expected in signature, expected


@pytest.mark.parametrize("name", ["vae", "cvae"])
@pytest.mark.parametrize("variant", serving.VARIANTS)
def test_tflite_decoders_take_one_code_with_static_shapes_and_serve_any_batch(name, variant, exports):
    interpreter = Interpreter(model_path=str(exports[name] / serving.tflite_path("decoder", variant, 1)))  # a Flex op would fail here or at invoke
    inputs = interpreter.get_signature_runner(serving.SIGNATURE).get_input_details()
    assert list(inputs["z"]["shape"]) == [1, LATENT]
    # no shape arithmetic left in the graph: XNNPACK can take every op (a dynamic batch left it out)
    assert not {op["op_name"] for op in interpreter._get_ops_details()} & {"SHAPE", "STRIDED_SLICE", "PACK"}
    z = np.random.default_rng(0).standard_normal((64, LATENT)).astype(np.float32)
    labels = np.arange(64) % 10 if name in CONDITIONAL else None
    images = generate.load_decoder(exports[name], "tflite", variant)(z, labels)
    assert images.shape == (64, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    one = generate.load_decoder(exports[name], "tflite", variant)(z[5:6], None if labels is None else labels[5:6])
    assert np.array_equal(one[0], images[5])  # row by row: a row's image does not depend on its batch


def test_saved_model_signatures_reject_invalid_inputs(exports):
    decoder = tf.saved_model.load(str(exports["cvae"] / "decoder" / "1"))
    serve = decoder.signatures["serving_default"]
    z, label = tf.zeros((2, LATENT)), tf.constant([1, 2])
    assert serve(z=z, label=label)["images"].shape == (2, 8, 8, 1)
    for inputs, message in [({"z": tf.fill((2, LATENT), np.nan), "label": label}, "z must hold finite numbers"),
                            ({"z": z, "label": tf.constant([1, 10])}, r"label must be a class id in \[0, 9\]"),
                            ({"z": z, "label": tf.constant([-1, 0])}, r"label must be a class id in \[0, 9\]"),
                            ({"z": z, "label": tf.constant([1])}, "label needs one entry per row of z")]:
        with pytest.raises(tf.errors.InvalidArgumentError, match=message):
            serve(**inputs)
    encoder = tf.saved_model.load(str(exports["vae"] / "encoder" / "1"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"images must hold pixels in \[0, 1\]"):
        encoder.signatures["serving_default"](images=tf.fill((1, 8, 8, 1), 255.0))


# ---------------------------------------------------------------- client input checks


@pytest.mark.parametrize("name, z, labels, message", [
    ("vae", np.zeros((2, 5), np.float32), None, r"codes z must have shape \[N, 8\] with N >= 1, got \[2, 5\]"),
    ("vae", np.zeros(LATENT), None, r"must have shape \[N, 8\]"),
    ("vae", np.full((2, LATENT), "a"), None, "must be real numbers"),
    ("vae", np.full((2, LATENT), np.nan), None, "must be finite float32 numbers: 16 NaN"),
    ("vae", np.full((2, LATENT), 1e39), None, "must be finite float32 numbers: 16 NaN, infinite or out-of-range"),
    ("vae", np.zeros((2, LATENT)), np.array([1, 2]), "is not conditional"),
    ("cvae", np.zeros((2, LATENT)), None, r"conditional on 10 classes: give one label in \[0, 9\]"),
    ("cvae", np.zeros((2, LATENT)), np.array([0, 10]), r"labels must be in \[0, 9\]"),
    ("cvae", np.zeros((2, LATENT)), np.array([0.0, 1.0]), "labels must be integers"),
    ("cvae", np.zeros((2, LATENT)), np.array([0, 1, 2]), r"labels must have shape \[2\]"),
])
def test_the_decoder_client_rejects_bad_codes_and_labels(name, z, labels, message, exports):
    decode = generate.load_decoder(exports[name], "tflite")
    with pytest.raises(InputError, match=message):
        decode(z, labels)


def test_the_encoder_client_rejects_bad_images(exports):
    encode = generate.load_encoder(exports["vae"], "saved_model")
    with pytest.raises(InputError, match=r"images must have shape \[N, 8, 8, 1\] .*got \[2, 28, 28, 1\]"):
        encode(np.zeros((2, 28, 28, 1), np.float32))
    with pytest.raises(InputError, match=r"must lie in \[0.0, 1.0\]"):
        encode(np.full((2, 8, 8, 1), 255.0))


def run_cli(main, argv, capsys) -> str:
    """stderr of a CLI that must fail with exit code 2 and one ``error:`` line."""
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_generate_cli_reports_bad_requests_in_one_line(exports, tmp_path, capsys):
    np.save(tmp_path / "short.npy", np.zeros((3, LATENT - 1), np.float32))
    out = ["--out", tmp_path / "x.png"]
    assert "not conditional" in run_cli(generate.main, [exports["vae"], "--label", "3", *out], capsys)
    assert "got [3, 7]" in run_cli(generate.main, [exports["vae"], "--codes", tmp_path / "short.npy", *out], capsys)
    assert "cannot read codes" in run_cli(generate.main, [exports["vae"], "--codes", tmp_path / "no.npy", *out],
                                          capsys)
    assert r"in [0, 9]" in run_cli(generate.main, [exports["cvae"], "--label", "12", *out], capsys)
    assert "no exported version" in run_cli(generate.main, [tmp_path, *out], capsys)
    assert not (tmp_path / "x.png").exists()


def test_corrupt_metadata_and_changed_artifacts_are_refused(exports, tmp_path, capsys):
    copy = shutil.copytree(exports["vae"], tmp_path / "vae")
    tampered = bytearray((copy / "1" / "decoder_int8.tflite").read_bytes())
    tampered[-1] ^= 0xFF
    (copy / "1" / "decoder_int8.tflite").write_bytes(bytes(tampered))
    with pytest.raises(serving.ArtifactError, match="decoder_int8.tflite: sha256 mismatch"):
        generate.load_decoder(copy, "tflite", "int8")
    generate.load_decoder(copy, "tflite", "float16")  # the untouched files still load
    variables = next((copy / "decoder" / "1" / "variables").glob("variables.data-*"))
    variables.write_bytes(variables.read_bytes()[:-4] + b"\0\0\0\0")
    assert "sha256 mismatch" in run_cli(generate.main, [copy, "--out", tmp_path / "x.png"], capsys)

    metadata = copy / "1" / "metadata.json"
    metadata.write_text("{not json")
    assert "metadata.json: unreadable" in run_cli(generate.main, [copy, "--backend", "tflite"], capsys)
    metadata.write_text(json.dumps({"format_version": 99}))
    with pytest.raises(serving.ArtifactError, match=f"format_version 99, this client reads {serving.FORMAT_VERSION}"):
        serving.read_metadata(copy)
    valid = metadata_of(exports["vae"])
    for key, value, expected in [("num_classes", "x", "num_classes must be"),
                                 ("latent_dim", 0, "latent_dim 0 disagrees with the code's shape [8]"),
                                 ("code", {"shape": [8], "dtype": "int8"}, "code must give shape, dtype"),
                                 ("networks", ["decoder"], "networks must be one of"),
                                 ("image_shape", [28, 28], "image_shape must be"), ("version", 2, "says version 2")]:
        metadata.write_text(json.dumps({**valid, key: value}))
        assert f"metadata.json: {expected}" in run_cli(generate.main, [copy, "--num", "4"], capsys), key
    for escape in ("../../../etc/passwd", "/etc/passwd"):  # artifact paths never leave the model folder
        artifacts = {**valid["artifacts"], escape: valid["artifacts"]["1/decoder.tflite"]}
        del artifacts["1/decoder.tflite"]
        metadata.write_text(json.dumps({**valid, "artifacts": artifacts}))
        assert "leaves" in run_cli(generate.main, [copy, "--backend", "tflite"], capsys)


# ---------------------------------------------------------------- export errors and atomicity


def run_copy(run_dir, tmp_path) -> Path:
    return shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("export", "logs"))


def test_a_run_without_a_model_is_refused(runs, tmp_path, capsys):
    run_dir = run_copy(runs["sparse"], tmp_path)
    (run_dir / "model.keras").unlink()
    with pytest.raises(export.ExportError, match=r"model\.keras: no trained model"):
        export.export_run(run_dir, tmp_path / "export")
    assert "model.keras: no trained model" in run_cli(export.main, [run_dir, "--out", tmp_path / "export"], capsys)
    assert not (tmp_path / "export").exists()


@pytest.mark.parametrize("config, message", [
    (None, r"config\.json: not found"),
    ("{oops", r"config\.json: unreadable"),
    ("[1, 2]", r"config\.json: not a keras_ae run config"),
    ({"options": {}}, r"config\.json is corrupt: it lacks model_class, data, versions"),
])
def test_a_missing_or_corrupt_config_is_refused(config, message, runs, tmp_path):
    run_dir = run_copy(runs["sparse"], tmp_path)
    if config is None:
        (run_dir / "config.json").unlink()
    else:
        (run_dir / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    with pytest.raises(export.ExportError, match=message):
        export.export_run(run_dir, tmp_path / "export")


def test_a_run_of_another_major_version_is_refused(runs, tmp_path, capsys):
    run_dir = run_copy(runs["sparse"], tmp_path)
    config = json.loads((run_dir / "config.json").read_text())
    config["versions"]["keras_ae"] = "7.0.0"
    (run_dir / "config.json").write_text(json.dumps(config))
    assert "says keras_ae 7.0.0" in run_cli(export.main, [run_dir, "--out", tmp_path / "export"], capsys)


def test_no_model_needs_its_training_data_back(runs, tmp_path):
    """The prior (a plain autoencoder's fitted Gaussian) is in model.keras: without the code directions (computed
    from the test images), export never reloads the data."""
    for name in ("sparse", "vae"):
        run_dir = shutil.copytree(runs[name], tmp_path / name, ignore=shutil.ignore_patterns("export", "logs"))
        config = json.loads((run_dir / "config.json").read_text())
        config["data"]["load"].update(name="no_such_dataset", download=False)
        (run_dir / "config.json").write_text(json.dumps(config))
        version_dir = export.export_run(run_dir, tmp_path / "export", quantize=False, with_directions=False)
        expected = "normal" if name == "vae" else "empirical_gaussian"
        assert metadata_of(version_dir.parent)["sampling"]["prior"] == expected


def test_an_existing_version_is_never_overwritten(runs, exports, export_root, capsys):
    before = {rel: serving.describe_artifact(exports["vae"] / rel)["sha256"] for rel in ("decoder/1", "encoder/1", "1")}
    with pytest.raises(export.ExportError, match=r"encoder/1 already exists .*--version 2"):
        export.export_run(runs["vae"], export_root, version=1)
    assert "--version 2" in run_cli(export.main, [runs["vae"], "--out", export_root, "--version", "1"], capsys)
    assert {rel: serving.describe_artifact(exports["vae"] / rel)["sha256"] for rel in before} == before


def test_an_interrupted_export_leaves_no_version_behind(runs, exports, export_root, monkeypatch):
    convert = export._tflite

    def crash_at_the_last_conversion(module, function, variant, calibration):  # after both SavedModels
        if variant == "int8":
            raise RuntimeError("converter crashed")
        return convert(module, function, variant, calibration)

    monkeypatch.setattr(export, "_tflite", crash_at_the_last_conversion)
    with pytest.raises(RuntimeError, match="converter crashed"):
        export.export_run(runs["sparse"], export_root, version=2)
    for rel in ("encoder/2", "decoder/2", "2"):
        assert not (exports["sparse"] / rel).exists(), rel
    assert not list(exports["sparse"].glob(".tmp-*"))
    assert serving.read_metadata(exports["sparse"])["version"] == 1


def test_a_new_version_is_added_beside_the_old_one_and_keeps_it_whole(runs, exports, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(exports["sparse"], root / "digits-sparse")
    first = {rel: serving.describe_artifact(root / "digits-sparse" / rel)["sha256"]
             for rel in ("decoder/1", "encoder/1", "1")}
    assert export.main([str(runs["sparse"]), "--out", str(root), "--name", "digits-sparse", "--no-quantize"]) == 0
    export_dir = root / "digits-sparse"
    assert capsys.readouterr().out.strip() == str(export_dir / "2")
    assert (export_dir / "decoder" / "2" / "saved_model.pb").is_file()
    assert {rel: serving.describe_artifact(export_dir / rel)["sha256"] for rel in first} == first  # v1 untouched
    metadata = metadata_of(export_dir, 2)
    assert metadata["version"] == 2 and {"decoder/2", "encoder/2", "2/decoder.tflite"} <= set(metadata["artifacts"])
    assert "2/decoder_int8.tflite" not in metadata["artifacts"]
    assert serving.complete_versions(export_dir) == [1, 2]
    latest = generate.load_decoder(export_dir)(serving.sample_codes(metadata["sampling"], 3))
    assert latest.shape == (3, 8, 8, 1)
    old = generate.load_decoder(export_dir, "tflite", "int8", version=1)  # every version stays usable
    assert old(serving.sample_codes(metadata["sampling"], 3)).shape == (3, 8, 8, 1)


# ---------------------------------------------------------------- commits, concurrency and lying metadata


def test_a_killed_commit_is_never_served_and_the_next_export_removes_what_it_left(runs, tmp_path, monkeypatch):
    root = tmp_path / "root"
    first = export.export_run(runs["sparse"], root, quantize=False).parent
    config = (first / serving.SERVING_CONFIG).read_text()
    assert config.count("versions: 1") == 2 and str(first.resolve() / "decoder") in config
    replace, renamed = export.os.replace, []

    def killed_after_the_encoder(src, dst):
        renamed.append(dst)
        replace(src, dst)
        if str(dst).endswith("encoder/2"):
            raise KeyboardInterrupt

    monkeypatch.setattr(export.os, "replace", killed_after_the_encoder)
    shutil.copytree(first / "1", first / ".tmp-left-by-a-kill")  # what a SIGKILL mid-export leaves as well
    with pytest.raises(KeyboardInterrupt):
        export.export_run(runs["sparse"], root, quantize=False)
    monkeypatch.undo()
    assert (first / "encoder" / "2").is_dir() and not (first / "decoder" / "2").exists()
    assert (first / serving.SERVING_CONFIG).read_text() == config  # servers still pair encoder 1 and decoder 1
    assert serving.read_metadata(first)["version"] == 1  # and so do clients
    assert export.export_run(runs["sparse"], root, quantize=False).name == "2"  # cleaned, then version 2 again
    assert not list(first.glob(".tmp-*"))
    assert serving.complete_versions(first) == [1, 2]
    assert (first / serving.SERVING_CONFIG).read_text().count("versions: 2") == 2


def test_a_second_export_to_one_model_folder_is_refused_while_the_first_runs(runs, tmp_path, capsys):
    model_dir = tmp_path / "root" / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom keras_ae.io import exclusive\nwith exclusive(sys.argv[1], 'busy'):\n"
        "    print('held', flush=True)\n    time.sleep(600)"), str(model_dir / ".lock")], stdout=subprocess.PIPE,
        text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert "another keras_ae process is exporting to it" in run_cli(
            export.main, [runs["sparse"], "--out", tmp_path / "root", "--name", "run"], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert serving.versions(model_dir) == []


def test_artifacts_that_are_no_model_or_disagree_with_their_metadata_are_refused(exports, tmp_path, capsys):
    copy = shutil.copytree(exports["vae"], tmp_path / "vae")
    metadata_path, valid = copy / "1" / "metadata.json", metadata_of(exports["vae"])

    def rewrite(**changes):
        metadata_path.write_text(json.dumps({**valid, **changes}))

    garbage = copy / "1" / "decoder.tflite"
    garbage.write_bytes(b"not a flatbuffer" * 100)
    rewrite(artifacts={**valid["artifacts"], "1/decoder.tflite": {**valid["artifacts"]["1/decoder.tflite"],
                                                                  **serving.describe_artifact(garbage)}})
    assert "cannot load it as a tflite" in run_cli(generate.main, [copy, "--backend", "tflite", "--out",
                                                                   tmp_path / "x.png"], capsys)
    pb = copy / "decoder" / "1" / "saved_model.pb"
    pb.write_bytes(b"\x08garbage")
    rewrite(artifacts={**valid["artifacts"], "decoder/1": {**valid["artifacts"]["decoder/1"],
                                                           **serving.describe_artifact(copy / "decoder" / "1")}})
    assert "cannot load it as a saved_model" in run_cli(generate.main, [copy, "--out", tmp_path / "x.png"], capsys)
    shutil.rmtree(copy)
    copy = shutil.copytree(exports["vae"], tmp_path / "vae")
    code = {**valid["code"], "shape": [LATENT + 1]}
    for edit in ({"code": code, "latent_dim": LATENT + 1}, {"num_classes": 10}, {"image_shape": [8, 8, 3]}):
        rewrite(**edit)
        if "image_shape" not in edit:  # (the decoder's input does not show the image shape; the encoder's does)
            assert "but metadata.json says" in run_cli(generate.main, [copy, "--out", tmp_path / "x.png"], capsys)
        with pytest.raises(serving.ArtifactError, match="but metadata.json says"):
            (generate.load_encoder if "image_shape" in edit else generate.load_decoder)(copy, "tflite")
    assert not (tmp_path / "x.png").exists()


def test_generate_and_export_refuse_outputs_that_cannot_be_written(runs, exports, tmp_path, capsys):
    assert "--num must be in [1, 10000]" in run_cli(generate.main, [exports["vae"], "--num", "100000000"], capsys)
    (tmp_path / "folder").mkdir()
    assert "is a folder" in run_cli(generate.main, [exports["vae"], "--out", tmp_path / "folder"], capsys)
    (tmp_path / "file").write_text("mine")
    assert "is a file, not a folder" in run_cli(export.main, [runs["sparse"], "--out", tmp_path / "file"], capsys)
    assert (tmp_path / "file").read_text() == "mine"
