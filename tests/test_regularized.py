"""Sparse, contractive and denoising autoencoders each do what they claim, and their penalties bite."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ae import data, losses
from keras_ae.errors import ConfigError
from keras_ae.models import ContractiveAutoencoder, DenoisingAutoencoder, SparseAutoencoder
from keras_ae.models.contractive import code_and_jacobian_sq
from keras_ae.models.denoising import corrupt

rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


def _fit(model, splits, epochs=8):
    keras.utils.set_random_seed(0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(splits.pipeline("train", 64, seed=0), epochs=epochs, verbose=0)
    return model.evaluate(splits.pipeline("test", 256), verbose=0, return_dict=True)


def _penalty_gradients(model, x, variables):
    with tf.GradientTape() as tape:
        penalty = model.compute_losses(x, training=True)["penalty"]
    return [g for g in tape.gradient(penalty, variables)]


# ---- sparse ----------------------------------------------------------------------------------------
def test_sparse_latent_penalty_is_the_l1_norm_of_the_code():
    model = SparseAutoencoder((8, 8, 1), latent_dim=6, sparsity="latent")
    x = rng.random((5, 8, 8, 1)).astype("float32")
    expected = np.abs(model.encode(x)).sum(axis=1).mean()
    np.testing.assert_allclose(float(model.compute_losses(x)["penalty"]), expected, rtol=1e-5)


def test_sparse_activation_penalty_reaches_encoder_and_decoder_weights():
    model = SparseAutoencoder((8, 8, 1), latent_dim=6, sparsity="activations", widths=(16,))
    x = rng.random((5, 8, 8, 1)).astype("float32")
    first_encoder = model.encoder.get_layer("enc_0_dense").kernel
    last_decoder_hidden = model.decoder.get_layer("dec_0_dense").kernel
    gradients = _penalty_gradients(model, x, [first_encoder, last_decoder_hidden])
    assert all(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in gradients)
    # The latent penalty does not touch the decoder.
    latent = SparseAutoencoder((8, 8, 1), latent_dim=6, sparsity="latent", widths=(16,))
    assert _penalty_gradients(latent, x, [latent.decoder.get_layer("dec_0_dense").kernel]) == [None]


def test_raising_lambda_makes_an_overcomplete_code_sparser(digits):
    # 100 code units for 64 pixels: over-complete.
    options = dict(latent_dim=100, widths=(128,), code_activation="relu")
    plain = _fit(SparseAutoencoder(digits.image_shape, penalty_weight=0.0, **options), digits)
    sparse = _fit(SparseAutoencoder(digits.image_shape, penalty_weight=0.05, **options), digits)
    assert sparse["zero_fraction"] > plain["zero_fraction"] + 0.2
    assert sparse["penalty"] < plain["penalty"]


def test_kl_sparsity_is_zero_at_the_target_rate():
    from keras_ae.models.sparse import kl_sparsity

    rho = 0.2
    codes = np.full((4, 3), np.log(rho / (1 - rho)), "float32")  # sigmoid(z) == rho
    assert abs(float(kl_sparsity(codes, rho))) < 1e-5
    assert float(kl_sparsity(codes + 2.0, rho)) > 0.1


# ---- contractive -----------------------------------------------------------------------------------
def test_projection_estimate_agrees_with_the_exact_jacobian_norm():
    model = ContractiveAutoencoder((6, 6, 1), latent_dim=5, widths=(12,), arch="mlp")
    x = tf.constant(rng.random((4, 6, 6, 1)).astype("float32"))
    _, exact = code_and_jacobian_sq(model.encode, x, "exact")
    draws = 400
    seed = keras.random.SeedGenerator(1)
    estimates = np.stack([code_and_jacobian_sq(model.encode, x, "projection", 1, seed)[1]
                          for _ in range(draws)])
    mean, standard_error = estimates.mean(axis=0), estimates.std(axis=0) / np.sqrt(draws)
    assert np.all(np.abs(mean - np.asarray(exact)) < 4 * standard_error + 1e-6)
    assert np.all(estimates.std(axis=0) > 0)  # really random, so this is a real check


def test_exact_jacobian_matches_a_finite_difference():
    model = ContractiveAutoencoder((3, 3, 1), latent_dim=2, widths=(8,), arch="mlp", activation="tanh")
    x = rng.random((1, 3, 3, 1))
    _, exact = code_and_jacobian_sq(model.encode, tf.constant(x, "float32"), "exact")
    step, columns = 1e-3, []
    for i in range(9):
        delta = np.zeros_like(x)
        delta.flat[i] = step
        columns.append((np.asarray(model.encode(x + delta), "float64") - np.asarray(model.encode(x - delta))) / (2 * step))
    np.testing.assert_allclose(float(exact[0]), np.sum(np.square(columns)), rtol=2e-2)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_contraction_penalty_reaches_the_encoder(arch):
    model = ContractiveAutoencoder((8, 8, 1), latent_dim=4, arch=arch, widths=(8, 8))
    x = rng.random((4, 8, 8, 1)).astype("float32")
    gradients = _penalty_gradients(model, x, model.encoder.trainable_weights)
    assert sum(float(tf.reduce_sum(tf.abs(g))) for g in gradients if g is not None) > 0
    assert model.jacobian_method == ("exact" if arch == "mlp" else "projection")


def test_raising_lambda_contracts_the_encoder(digits):
    options = dict(latent_dim=16, widths=(64,))
    plain = _fit(ContractiveAutoencoder(digits.image_shape, penalty_weight=0.0, **options), digits)
    contractive = _fit(ContractiveAutoencoder(digits.image_shape, penalty_weight=1.0, **options), digits)
    assert contractive["jacobian_norm"] < 0.5 * plain["jacobian_norm"]


def test_exact_jacobian_too_large_for_memory_is_refused_before_training():
    model = ContractiveAutoencoder((256, 256, 3), latent_dim=64, arch="mlp", widths=(8,), jacobian="exact")
    with pytest.raises(ConfigError, match="GiB; use --jacobian projection"):
        model.check_batch_size(128)


# ---- denoising -------------------------------------------------------------------------------------
@pytest.mark.parametrize("noise,level", [("mask", 0.3), ("salt_and_pepper", 0.2), ("gaussian", 0.25)])
def test_corruption_has_the_asked_statistics_and_is_fresh_each_time(noise, level):
    x = np.full((64, 16, 16, 1), 0.5, "float32")
    seed = keras.random.SeedGenerator(0)
    first, second = np.asarray(corrupt(x, noise, level, seed)), np.asarray(corrupt(x, noise, level, seed))
    assert not np.array_equal(first, second)
    changed = first != x
    if noise == "gaussian":
        assert abs((first - x).std() - level) < 0.01
    else:
        assert abs(changed.mean() - level) < 0.02
        allowed = {0.0} if noise == "mask" else {0.0, 1.0}
        assert set(np.unique(first[changed])) <= allowed


def test_denoising_loss_is_measured_against_the_clean_input():
    model = DenoisingAutoencoder((8, 8, 1), latent_dim=4, noise="mask", noise_level=0.5)
    x = rng.random((6, 8, 8, 1)).astype("float32")
    noisy = model.corrupt(x)
    model.corrupt = lambda images: noisy  # pin the corruption to compare with a direct computation
    expected = np.mean(losses.squared_error(x, model.reconstruct(noisy)))
    np.testing.assert_allclose(float(model.compute_losses(x)["reconstruction"]), expected, rtol=1e-5)


def test_denoising_model_restores_corrupted_digits(digits):
    model = DenoisingAutoencoder(digits.image_shape, latent_dim=32, widths=(128,), noise="mask", noise_level=0.4)
    metrics = _fit(model, digits, epochs=15)
    assert metrics["psnr_reconstructed"] > metrics["psnr_corrupted"] + 3.0


@pytest.mark.parametrize("cls,kwargs,needle", [
    (SparseAutoencoder, {"penalty_weight": -1}, "penalty_weight"),
    (SparseAutoencoder, {"penalty_weight": float("nan")}, "penalty_weight"),
    (SparseAutoencoder, {"penalty_weight": "abc"}, "must be a number"),
    (SparseAutoencoder, {"sparsity": "l0"}, "unknown sparsity"),
    (SparseAutoencoder, {"sparsity": "kl", "target_rate": 1.5}, "target_rate"),
    (ContractiveAutoencoder, {"penalty_weight": -0.1}, "penalty_weight"),
    (ContractiveAutoencoder, {"jacobian": "magic"}, "unknown jacobian"),
    (DenoisingAutoencoder, {"noise": "mask", "noise_level": 1.5}, r"\[0, 1\]"),
    (DenoisingAutoencoder, {"noise": "gaussian", "noise_level": -0.1}, "noise_level"),
    (DenoisingAutoencoder, {"noise": "speckle"}, "unknown noise"),
])
def test_bad_options_are_refused_before_training(cls, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        cls((8, 8, 1), **kwargs)


@pytest.mark.parametrize("cls,kwargs", [
    (SparseAutoencoder, {"sparsity": "activations", "arch": "conv"}),
    (ContractiveAutoencoder, {"arch": "conv"}),
    (DenoisingAutoencoder, {"noise": "salt_and_pepper", "arch": "conv"}),
])
def test_keras_round_trip_keeps_every_option(cls, kwargs, tmp_path):
    model = cls((8, 8, 1), latent_dim=3, widths=(4, 8), **kwargs)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded) is cls and loaded.get_config() == model.get_config()
    x = rng.random((4, 8, 8, 1)).astype("float32")
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
