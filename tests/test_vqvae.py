"""The VQ-VAE does what it claims: nearest-entry codes, the straight-through gradient, its stated objective,
the EMA codebook, codebook usage and re-seeding, a PixelCNN prior sampled alike by Keras and by its export,
and one-line refusals of what it cannot do."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ae import data, generate, serving, train
from keras_ae.errors import ConfigError
from keras_ae.export import export_model
from keras_ae.models import VQVAE
from keras_ae.models.vqvae import COLLAPSED_PERPLEXITY, CodebookUsage

TINY = {**VQVAE.test_options, "input_shape": (8, 8, 1)}


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0).arrays("train")


def test_a_code_is_the_grid_of_the_nearest_codebook_entries(digits):
    model = VQVAE(**TINY)
    x = digits[0][:16]
    z_e = np.asarray(model.encoder(x)["z"]).reshape(-1, 4)
    codebook = model.codebook.numpy()
    brute = np.argmin(((z_e[:, None, :] - codebook[None]) ** 2).sum(-1), axis=1)
    codes = model.codes(x)
    assert model.code.shape == (4, 4) and model.code.levels == 8 and model.code.bits == 16 * 3
    assert codes.shape == (16, 4, 4) and codes.dtype == np.int32
    assert np.array_equal(codes.reshape(-1), brute)
    np.testing.assert_allclose(np.asarray(model.code_vectors(codes)).reshape(-1, 4), codebook[brute])


def test_the_objective_is_reconstruction_plus_codebook_plus_beta_commitment(digits):
    x = tf.constant(digits[0][:32])
    for ema in (False, True):
        model = VQVAE(**TINY, commitment=0.5, ema=ema)
        terms = model.compute_losses(x)
        codebook = 0.0 if ema else float(terms["codebook"])  # the EMA codebook is not trained on the loss
        assert float(terms["loss"]) == pytest.approx(float(terms["reconstruction"]) + codebook
                                                     + 0.5 * float(terms["commitment"]), rel=1e-5)
        assert any(w is model.codebook for w in model.trainable_weights) == (not ema)


def test_the_straight_through_gradient_reaches_the_encoder(digits):
    model = VQVAE(**TINY, commitment=0.0)
    x = tf.constant(digits[0][:32])
    with tf.GradientTape() as tape:
        reconstruction = model.compute_losses(x, training=True)["reconstruction"]
    gradients = tape.gradient(reconstruction, model.encoder.trainable_weights)
    # with no commitment term, only the decoder's gradient, passed straight through the quantizer, gets there
    assert all(g is not None for g in gradients) and max(float(tf.reduce_max(tf.abs(g))) for g in gradients) > 0


def test_the_ema_codebook_moves_each_used_entry_towards_its_codes(digits):
    model = VQVAE(**TINY, ema=True, ema_decay=0.5)
    x = tf.constant(digits[0][:64])
    before = model.codebook.numpy()
    z_e = np.asarray(model.encoder(x)["z"]).reshape(-1, 4)
    used = np.asarray(model.codes(digits[0][:64])).reshape(-1)
    model.compute_losses(x, training=True)
    after = model.codebook.numpy()
    for entry in np.unique(used):
        mean = z_e[used == entry].mean(axis=0)
        assert np.linalg.norm(after[entry] - mean) < np.linalg.norm(before[entry] - mean), entry


def test_perplexity_counts_the_entries_in_use_and_dead_entries_are_reseeded(digits):
    for counts, expected in (([5, 5, 5, 5], 4.0), ([20, 0, 0, 0], 1.0), ([10, 10, 0, 0], 2.0)):
        usage, dead = CodebookUsage(4, "perplexity"), CodebookUsage(4, "dead_codes")
        usage.update_state(np.array(counts, "float32"))
        dead.update_state(np.array(counts, "float32"))
        assert float(usage.result()) == pytest.approx(expected)
        assert float(dead.result()) == counts.count(0)
    model = VQVAE(**TINY)
    codebook = model.codebook.numpy()
    codebook[3] = 100.0  # no code is ever nearest to it
    model.codebook.assign(codebook)
    model.compute_losses(tf.constant(digits[0][:64]), training=True)
    assert model.usage.numpy()[3] == 0
    assert model.reseed_dead_entries() >= 1
    assert np.abs(model.codebook.numpy()[3]).max() < 100.0
    assert np.array_equal(model.codebook.numpy()[3], model.recent.numpy()[3])
    assert model.usage.numpy().sum() == 0  # the next epoch counts afresh


def test_a_collapsed_codebook_is_a_warning_of_the_report():
    model = VQVAE(**TINY)
    healthy = {"codebook": {"perplexity": 6.0, "dead_entries": 1, "entries": 8, "bits_per_image": 48.0,
                            "images": 100}}
    assert not any(line.startswith("WARNING") for line in model.findings({"model": healthy}))
    collapsed = {"codebook": {**healthy["codebook"], "perplexity": COLLAPSED_PERPLEXITY - 0.9}}
    assert any("codebook collapsed" in line for line in model.findings({"model": collapsed}))


def test_the_prior_is_a_model_sampled_alike_by_keras_and_by_its_export(digits, tmp_path):
    """Keras, the SavedModel and the TFLite step file draw the same code grids for a seed, and the decoder
    artifacts turn them into the Keras model's images; the .keras file keeps the trained prior."""
    keras.utils.set_random_seed(0)
    model = VQVAE(**TINY)
    model.compile(optimizer="adam")
    model.fit(digits[0], epochs=1, batch_size=64, verbose=0)
    model.fit_prior(digits[0])
    assert model.prior.fitted and model.sampling_passes == 16
    codes = model.prior.sample(5, seed=3)
    assert codes.shape == (5, 4, 4) and codes.dtype == np.int32 and codes.max() < 8
    model.save(tmp_path / "vq.keras")
    loaded = keras.models.load_model(tmp_path / "vq.keras")
    assert np.array_equal(loaded.prior.sample(5, seed=3), codes)
    version = export_model(model, tmp_path / "export", "vq", quantize=False)
    metadata = serving.read_metadata(version)
    assert metadata["networks"] == ["encoder", "decoder", "prior"] and metadata["latent_dim"] is None
    assert metadata["code"] == {"shape": [4, 4], "dtype": "int32", "levels": 8}
    assert (tmp_path / "export" / "vq" / "prior" / "1" / "saved_model.pb").is_file()
    assert (version / "prior.tflite").is_file()
    images = np.asarray(model.decode(codes))
    for backend in serving.BACKENDS:
        drawn = generate.load_prior(tmp_path / "export" / "vq", backend)(5, seed=3)
        assert np.array_equal(drawn, codes), backend
        decoded = generate.load_decoder(tmp_path / "export" / "vq", backend)(drawn)
        assert np.abs(decoded - images).max() < 1e-5, backend
        encoded = generate.load_encoder(tmp_path / "export" / "vq", backend)(digits[0][:8])["z"]
        assert np.array_equal(encoded, model.codes(digits[0][:8])), backend
    with pytest.raises(serving.InputError, match=r"codebook indices|indices in \[0, 7\]"):
        generate.load_decoder(tmp_path / "export" / "vq")(np.full((1, 4, 4), 8))

    # a prior whose code grid does not match the decoder's is refused in one line
    path = version / "metadata.json"
    tampered = json.loads(path.read_text())
    tampered["sampling"]["density"]["shape"] = [5, 4, 1]
    path.write_text(json.dumps(tampered))
    with pytest.raises(serving.ArtifactError, match="the prior draws codes of shape"):
        serving.read_metadata(version)


@pytest.mark.parametrize("flags, message", [
    (["--model", "vqvae", "--codebook-size", "1"], "a codebook needs >= 2 entries, got codebook_size 1"),
    (["--model", "vae", "--prior", "pixelcnn"], "--prior does not apply to --model vae; it is an option of vqvae"),
    (["--model", "vqvae", "--arch", "mlp"], "--arch does not apply to --model vqvae"),
    (["--model", "vqvae", "--widths", "8,8,8"], "the code grid would be 1x1"),
    (["--model", "pca", "--widths", "8"], "--widths does not apply to --model pca"),
])
def test_what_it_cannot_do_is_refused_in_one_line(flags, message, tmp_path, capsys):
    assert train.main([*flags, "--dataset", "digits", "--epochs", "1", "--run-dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and message in error[0], error
    with pytest.raises(ConfigError, match="codebook needs >= 2"):
        VQVAE((8, 8, 1), codebook_size=1)
