"""Every model in the registry through every surface, at its own tiny ``test_options``: trained by train.py,
evaluated, exported and generated from (the ``zoo`` fixture of conftest.py). A model added to ``MODELS``
is covered here by its registry line alone."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import option_flags
from keras_ae import data, generate, serving
from keras_ae.models import MODELS, VQVAE, PixelRNN

pytestmark = pytest.mark.slow  # the zoo fixture trains every model once


def _model(zoo, name):
    return keras.models.load_model(zoo[name][0] / "model.keras")


def _labels(model, count):
    return None if model.num_classes is None else (np.arange(count) % model.num_classes).astype(np.int32)


@pytest.mark.parametrize("name", MODELS)
def test_training_beats_the_untrained_model_of_the_same_config(name, zoo):
    trained = _model(zoo, name)
    untrained = type(trained).from_config(trained.get_config())
    untrained.compile(optimizer="adam")
    test = data.load("digits", seed=0).pipeline("test", 64, shuffle=False)
    before = untrained.evaluate(test, verbose=0, return_dict=True)["loss"]
    after = json.loads((zoo[name][0] / "results.json").read_text())["test"]["loss"]
    assert np.isfinite(after) and after < before, (after, before)


@pytest.mark.parametrize("name", MODELS)
def test_the_report_has_what_applies_to_the_model_and_says_why_the_rest_does_not(name, zoo):
    run_dir = zoo[name][0]
    model, report = _model(zoo, name), json.loads((run_dir / "report.json").read_text())
    metrics, notes = report["metrics"], " ".join(report["notes"])
    assert report["findings"] and 0.5 < metrics["outlier_auc"]["noise"] <= 1.0
    for figure in report["figures"]:
        assert (run_dir / figure).stat().st_size > 0, figure
    flat = model.code is not None and model.code.flat
    assert ("pca_baseline" in metrics) == flat and ("manifold.png" in report["figures"]) == flat
    if not flat:
        assert "PCA baseline" in notes and "latent-space figures" in notes
    assert ("reconstruction" in metrics) == (model.code is not None)
    if model.density is not None:
        assert metrics["likelihood"]["kind"] == "exact" and "completions.png" in report["figures"]
    if metrics.get("likelihood"):
        likelihood = metrics["likelihood"]
        assert likelihood["kind"] in ("exact", "upper bound") and likelihood["nll"] > 0
        assert likelihood["bits_per_dim"] == pytest.approx(likelihood["nll"] / (64 * np.log(2)))


@pytest.mark.parametrize("backend", serving.BACKENDS)
@pytest.mark.parametrize("name", MODELS)
def test_the_export_alone_draws_the_keras_model_s_samples_for_a_seed(name, backend, zoo, tmp_path):
    model, export_dir = _model(zoo, name), zoo[name][1]
    metadata = serving.read_metadata(export_dir)
    labels = _labels(model, 6)
    expected = np.asarray(model.sample(6, labels=labels, seed=5))
    if model.code is None:
        sample, _ = generate.load_density(export_dir, backend)
        assert np.array_equal(sample(6, labels, seed=5), expected)
    else:
        if "prior" in serving.networks(metadata):
            codes = generate.load_prior(export_dir, backend)(6, seed=5)
            assert np.array_equal(codes, model.prior.sample(6, seed=5))
        else:
            codes = serving.sample_codes(metadata["sampling"], 6, seed=5)
        drawn = generate.load_decoder(export_dir, backend)(codes, labels)
        assert np.abs(drawn - expected).max() <= 1e-4
    out = tmp_path / "grid.png"
    variant = ["--variant", "int8"] if backend == "tflite" and "decoder" in serving.networks(metadata) else []
    assert generate.main([str(export_dir), "--num", "16", "--backend", backend, *variant, "--out", str(out)]) == 0
    grid = np.asarray(Image.open(out).convert("L"), np.float32)
    assert grid.shape[0] > 100 and grid.std() > 10  # a grid of images, not a blank page


def test_every_exported_density_scores_as_the_keras_model_does(zoo):
    """The log_prob of each exported density (a PixelCNN, or a prior over a code grid) is the model's."""
    import tensorflow as tf

    checked = []
    for name in MODELS:
        model, export_dir = _model(zoo, name), zoo[name][1]
        density = model if model.code is None else model.prior.density_model
        if density is None:
            continue
        labels = _labels(density, 8)
        values = np.asarray(density.sample(8, labels=labels, seed=2))
        served = tf.saved_model.load(str(export_dir / ("density" if density is model else "prior") / "1"))
        inputs = {"images": tf.constant(values), **({"label": tf.constant(labels)} if labels is not None else {})}
        np.testing.assert_allclose(served.signatures["log_prob"](**inputs)["log_prob"].numpy(),
                                   np.asarray(density.log_prob(values, labels)), atol=1e-4, err_msg=name)
        checked.append(name)
    assert {"pixelcnn", "pixelrnn", "vqvae"} <= set(checked)


def test_option_flags_spell_the_test_options_as_train_py_takes_them():
    assert option_flags(VQVAE, {"widths": (16,), "ema": True, "codebook_size": 8, "prior_kind": "pixelcnn"}) == [
        "--widths", "16", "--ema", "--codebook-size", "8", "--prior", "pixelcnn"]
    assert option_flags(PixelRNN, {"recurrent_layers": 2}) == ["--layers", "2"]
