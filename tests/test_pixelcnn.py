"""The PixelCNN is a density: autoregressive by construction, normalised, sampled from what it learned;
and the zoo trains, evaluates and reloads it like its other members."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_ae.errors import ConfigError
from keras_ae.models import VAE, ConditionalPixelCNN, PixelCNN
from keras_ae.models.base import in_batches
from keras_ae.models.pixelcnn import MaskedConv2D

REPO = Path(__file__).resolve().parents[1]
EVERY_4x4 = np.array(list(itertools.product([0.0, 1.0], repeat=16)), "float32").reshape(-1, 4, 4, 1)


def _patterns(count=4, seed=0):
    return (np.random.default_rng(seed).random((count, 4, 4, 1)) < 0.5).astype("float32")


def _trained(build, x, y=None, epochs=20):
    """``build()`` trained on ``x`` (and labels ``y``), seeded before it is built: the same weights every run."""
    keras.utils.set_random_seed(0)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def two_patterns():
    """A PixelCNN trained on 4x4 binary images that are one of two patterns, 3:1."""
    patterns = _patterns(2)
    x = patterns[np.r_[np.zeros(1500, int), np.ones(500, int)]]
    return patterns, _trained(lambda: PixelCNN((4, 4, 1), filters=16, blocks=1), x)


def test_exp_log_prob_sums_to_one_over_all_65536_binary_4x4_images(two_patterns):
    _, model = two_patterns
    total = np.exp(in_batches(model.log_prob, EVERY_4x4, batch_size=8192).astype("float64")).sum()
    assert abs(total - 1.0) < 1e-4
    for block in ("gated", "residual"):
        untrained = PixelCNN((4, 4, 1), filters=8, blocks=1, block=block)
        assert abs(np.exp(in_batches(untrained.log_prob, EVERY_4x4, batch_size=8192).astype("float64")).sum()
                   - 1.0) < 1e-4


def test_the_conditional_density_sums_to_one_for_every_label():
    x, y = _patterns(2)[np.r_[np.zeros(200, int), np.ones(200, int)]], np.r_[np.zeros(200), np.ones(200)]
    model = _trained(lambda: ConditionalPixelCNN((4, 4, 1), num_classes=2, filters=8, blocks=1), x,
                     y.astype("int32"), 5)
    for label in (0, 1):
        p = np.exp(in_batches(model.log_prob, EVERY_4x4, np.full(len(EVERY_4x4), label), 8192).astype("float64"))
        assert abs(p.sum() - 1.0) < 1e-4
    # and the label matters: each pattern is likelier under its own label
    own = model.log_prob(_patterns(2), np.array([0, 1]))
    other = model.log_prob(_patterns(2), np.array([1, 0]))
    assert np.all(own > other + 1.0)


def test_it_learns_the_data_and_samples_what_it_learned(two_patterns):
    patterns, model = two_patterns
    probabilities = np.exp(model.log_prob(patterns))
    assert probabilities.sum() > 0.95 and 2.0 < probabilities[0] / probabilities[1] < 4.5  # 3:1 in the data
    drawn = model.sample(400, seed=0)
    which = [(drawn == p).all(axis=(1, 2, 3)) for p in patterns]
    assert np.mean(which[0] | which[1]) > 0.95
    assert 0.65 < np.mean(which[0]) < 0.85
    assert np.array_equal(model.sample(5, seed=3), model.sample(5, seed=3))


def _dependence(model):
    """d logits[i] / d x[j] != 0 for a random image, over (row, column, channel) in raster order."""
    import tensorflow as tf

    shape = model.image_shape
    x = tf.constant(np.random.default_rng(0).random((1, *shape)), "float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model.network(x)
        logits = tf.reduce_sum(logits, axis=-1) if model.likelihood == "categorical" else logits  # over the levels
    return np.abs(tape.jacobian(logits, x).numpy().reshape(int(np.prod(shape)), int(np.prod(shape)))) > 0


@pytest.mark.parametrize("block", ["gated", "residual"])
@pytest.mark.parametrize("channels", [1, 3])
def test_each_output_depends_only_on_the_pixels_and_channels_before_it(channels, block):
    """Raster order over (row, column, channel): d logits[i] / d x[j] is zero unless j comes before i
    (the second block's kernel dilated)."""
    depends = _dependence(PixelCNN((5, 5, channels), filters=12, blocks=2, block=block, dilations=(1, 2),
                                   likelihood="categorical"))
    order = np.arange(25 * channels)  # row-major over (row, column, channel)
    assert not np.any(depends & (order[None, :] >= order[:, None]))  # never on itself or later
    assert depends[-1, :-1].sum() >= 12 * channels  # the last output sees many earlier inputs


def test_the_gated_network_sees_the_wedge_the_residual_one_is_blind_to():
    """Above and to the right of a pixel, beyond the first layer's reach: the residual stack cannot get
    there (each masked 3x3 steps up as it steps right), the gated one's vertical stack does."""
    side, centre = 11, 5 * 11 + 5  # pixel (5, 5) of an 11x11 image
    wedge = [4 * side + 9, 4 * side + 10, 3 * side + 10]  # (4, 9), (4, 10), (3, 10)
    seen = {block: _dependence(PixelCNN((side, side, 1), filters=8, blocks=2, block=block, dilations=(1,)))[centre]
            for block in ("gated", "residual")}
    assert seen["gated"][:centre].all()  # every pixel before it, within reach of a 7x7 and two 3x3 layers
    assert not seen["residual"][wedge].any()


def test_masks_are_in_the_saved_layer_config():
    layer = MaskedConv2D(4, 3, "A", image_channels=3)
    again = MaskedConv2D.from_config(layer.get_config())
    assert (again.mask_type, again.image_channels, again.padding) == ("A", 3, "same")


def test_the_network_is_rebuilt_from_the_config():
    def dilation_rates(model):
        return [layer.dilation_rate[0] for layer in model.network.layers if layer.name.endswith("_3x3")]

    model = PixelCNN((8, 8, 1), filters=8, blocks=3, dilations=(1, 2))
    again = PixelCNN.from_config(model.get_config())
    assert dilation_rates(again) == dilation_rates(model) == [1, 2, 1]
    with pytest.raises(ConfigError, match="dilations"):
        PixelCNN((8, 8, 1), dilations=(0,))


def test_completion_keeps_the_given_rows_and_draws_the_rest(two_patterns):
    patterns, model = two_patterns
    given = np.repeat(patterns[1:], 20, axis=0)
    completed = model.complete(given, given_rows=2, seed=0)
    assert np.array_equal(completed[:, :2], given[:, :2])
    assert np.mean((completed == patterns[1]).all(axis=(1, 2, 3))) > 0.9  # the rest follows the top rows


def test_bad_shapes_and_likelihoods_are_refused():
    with pytest.raises(ConfigError, match="at least 2x2"):
        PixelCNN((1, 8, 1))
    with pytest.raises(ConfigError, match="unknown likelihood"):
        PixelCNN((8, 8, 1), likelihood="gaussian")
    with pytest.raises(ConfigError, match="needs labels"):
        ConditionalPixelCNN((8, 8, 1))


def test_the_vae_importance_weighted_bound_approaches_its_exact_marginal_as_k_grows():
    """With a 1-D latent, log p(x) = log integral p(x|z) N(z) dz and the ELBO are integrals over one
    variable, computed exactly by quadrature. The ELBO is below log p(x); the importance-weighted
    estimate at large K closes most of that gap (averaged over images and seeds, for its weights are
    heavy-tailed), and the Monte Carlo ELBO agrees with the quadrature one."""
    x = _patterns(4)[np.random.default_rng(1).integers(0, 4, 1000)]
    vae = _trained(lambda: VAE((4, 4, 1), latent_dim=1, widths=(32,)), x, epochs=15)

    def on_grid(images, points):
        """log p(x, z) for every image and every z of a grid on [-8, 8], and the grid."""
        z = np.linspace(-8, 8, points, dtype="float32")[:, None]
        logits = np.asarray(vae.decode_logits(z), "float64").reshape(len(z), -1)
        flat = images.reshape(len(images), -1).astype("float64")
        return (flat @ logits.T - np.logaddexp(0, logits).sum(1)[None]  # log p(x | z)
                - 0.5 * (z[:, 0].astype("float64") ** 2 + np.log(2 * np.pi))[None]), z[:, 0].astype("float64")

    def log_marginal(joint, z):
        top = joint.max(1, keepdims=True)
        return top[:, 0] + np.log(np.exp(joint - top).sum(1) * (z[1] - z[0]))

    assert abs(np.exp(log_marginal(*on_grid(EVERY_4x4, 2001))).sum() - 1.0) < 1e-3  # the quadrature is a density
    images = _patterns(4)
    joint, z = on_grid(images, 160_001)  # fine enough for a narrow posterior
    exact = log_marginal(joint, z)
    mean, log_var = (np.asarray(t, "float64") for t in vae.posterior(images))
    log_q = -0.5 * ((z[None] - mean) ** 2 / np.exp(log_var) + log_var + np.log(2 * np.pi))
    elbo = (np.exp(log_q) * (joint - log_q)).sum(1) * (z[1] - z[0])
    assert np.all(exact - elbo > 0.01)  # the ELBO is a bound with a visible gap
    draws = np.asarray(vae.elbo_per_image(np.repeat(images, 4000, axis=0), seed=0)).reshape(4, 4000)
    assert np.abs(draws.mean(axis=1) - elbo).max() < 0.1
    iwae = np.mean([vae.importance_weighted_log_likelihood(images, num_samples=5000, chunk=1000, seed=s)
                    for s in range(10)], axis=0)
    assert abs(np.mean(exact - iwae)) < 0.25 * np.mean(exact - elbo)  # K = 5,000 closes most of it


@pytest.mark.slow
def test_train_py_trains_evaluates_and_reloads_a_pixelcnn(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, str(REPO / "train.py"), "--model", "cpixelcnn", "--dataset", "digits", "--epochs", "2",
               "--filters", "8", "--blocks", "1", "--run-dir", str(run), "--quick-eval"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "exact test negative log-likelihood" in output
    assert (tmp_path / "export" / "run" / "1" / "density.tflite").is_file()
    assert "s per image" in output
    report = json.loads((run / "report.json").read_text())
    likelihood = report["metrics"]["likelihood"]
    assert likelihood["kind"] == "exact" and likelihood["binarized"]
    assert likelihood["bits_per_dim"] == pytest.approx(likelihood["nll"] / (64 * np.log(2)))
    assert {"samples.png", "completions.png", "training_curves.png"} <= set(report["figures"])
    assert "reconstruction" not in report["metrics"] and "no code" in " ".join(report["notes"])
    results = json.loads((run / "results.json").read_text())["test"]
    model = keras.models.load_model(run / "model.keras")
    from keras_ae.data import load

    test_x, test_y = load("digits", seed=0).arrays("test")
    # results.json's test NLL is over dynamic binarizations; the reloaded model agrees in expectation
    from keras_ae.models.base import binarized_once

    nll = np.mean([-in_batches(model.log_prob, binarized_once(test_x, s), test_y).mean() for s in range(5)])
    assert nll == pytest.approx(results["nll"], rel=0.03)
    table = subprocess.run([sys.executable, "-m", "keras_ae.compare", str(run)], cwd=REPO, capture_output=True,
                           text=True)
    assert table.returncode == 0 and "exact" in table.stdout


def test_an_exported_pixelcnn_scores_and_samples_without_the_model_code(two_patterns, tmp_path):
    """The SavedModel's log_prob is the model's; its sample signature and the TFLite step file driven by
    keras_ae.generate draw what the model learned, and the very images the Keras model draws for a seed."""
    import tensorflow as tf

    from keras_ae import generate, serving
    from keras_ae.export import export_model

    patterns, model = two_patterns
    version = export_model(model, tmp_path, name="pc")
    metadata = serving.read_metadata(version)
    assert metadata["networks"] == ["density"] and metadata["code"] is None and metadata["latent_dim"] is None
    assert metadata["density"]["levels"] == 2 and metadata["sampling"]["prior"] == "autoregressive"
    assert {entry["network"] for entry in metadata["artifacts"].values()} == {"density"}
    assert 'name: "pc-density"' in (tmp_path / "pc" / "models.config").read_text()
    saved = tf.saved_model.load(str(tmp_path / "pc" / "density" / "1"))
    images = EVERY_4x4[::4096]
    served = saved.signatures["log_prob"](images=tf.constant(images))["log_prob"].numpy()
    np.testing.assert_allclose(served, model.log_prob(images), atol=1e-4)
    keras_drawn = model.sample(200, seed=1)
    for backend in ("saved_model", "tflite"):
        sample, _ = generate.load_density(tmp_path / "pc", backend)
        drawn = sample(200, seed=1)
        assert np.array_equal(drawn, keras_drawn), backend  # one sampler, one random scheme
        which = [(drawn == p).all(axis=(1, 2, 3)) for p in patterns]
        assert np.mean(which[0] | which[1]) > 0.9 and 0.6 < np.mean(which[0]) < 0.9, backend
    given = np.repeat(patterns[1:], 4, axis=0)
    completed = saved.signatures["complete"](images=tf.constant(given), uniforms=tf.constant(
        serving.uniforms(3, 4, (4, 4, 1))), start=tf.constant(8))["images"].numpy()
    assert np.array_equal(completed, model.complete(given, given_rows=2, seed=3))
    out = tmp_path / "grid.png"
    assert generate.main([str(tmp_path / "pc"), "--backend", "tflite", "--num", "4", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert generate.main([str(tmp_path / "pc"), "--codes", str(out)]) == 2  # no codes to decode
