"""VAE, beta-VAE and conditional VAE: the objective's pieces, its knobs, and the likelihood estimate."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_ae import data, losses
from keras_ae.errors import KerasAEError
from keras_ae.models import VAE, ConditionalVAE
from keras_ae.models.vae import reparameterize

rng = np.random.default_rng(0)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


@pytest.fixture(scope="module")
def trained_vae(digits):
    keras.utils.set_random_seed(0)
    model = VAE(digits.image_shape, latent_dim=4, widths=(64,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits.pipeline("train", 64, seed=0), epochs=10, verbose=0)
    return model


def test_closed_form_kl_matches_a_monte_carlo_estimate():
    mean, log_var = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)) * 0.5
    z = mean + np.exp(0.5 * log_var) * rng.normal(size=(200_000, 3, 4))
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / np.exp(log_var)).sum(-1)
    log_p = -0.5 * (np.log(2 * np.pi) + z**2).sum(-1)
    monte_carlo = (log_q - log_p).mean(axis=0)
    np.testing.assert_allclose(losses.kl_to_standard_normal(mean, log_var), monte_carlo, rtol=0.02, atol=0.01)


def test_reparameterization_passes_gradients_to_mean_and_log_variance():
    mean, log_var = tf.Variable(rng.normal(size=(5, 3)), dtype="float32"), tf.Variable(np.zeros((5, 3)), dtype="float32")
    with tf.GradientTape() as tape:
        z = reparameterize(mean, log_var, keras.random.SeedGenerator(0))
        objective = tf.reduce_sum(z**2)
    grad_mean, grad_log_var = tape.gradient(objective, [mean, log_var])
    assert float(tf.reduce_sum(tf.abs(grad_mean))) > 0 and float(tf.reduce_sum(tf.abs(grad_log_var))) > 0


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_the_loss_trains_both_the_mean_and_the_log_variance_heads(arch):
    model = VAE((8, 8, 1), latent_dim=3, arch=arch, widths=(8, 16))
    x = rng.random((6, 8, 8, 1)).astype("float32")
    heads = [model.encoder.get_layer("z_mean").kernel, model.encoder.get_layer("z_log_var").kernel]
    with tf.GradientTape() as tape:
        loss = model.compute_losses(x, training=True)["loss"]
    assert all(float(tf.reduce_sum(tf.abs(g))) > 0 for g in tape.gradient(loss, heads))


def test_terms_follow_the_stated_reduction():
    model = VAE((8, 8, 1), latent_dim=3, beta=2.5)
    x = (rng.random((7, 8, 8, 1)) > 0.5).astype("float32")
    terms = model.compute_losses(x)
    mean, log_var = model.posterior(x)
    np.testing.assert_allclose(terms.pop("active_units"), mean, rtol=1e-6)  # what the epoch's ActiveUnits gathers
    terms = {k: float(v) for k, v in terms.items()}
    np.testing.assert_allclose(terms["kl"], np.mean(losses.kl_to_standard_normal(mean, log_var)), rtol=1e-5)
    np.testing.assert_allclose(terms["loss"], terms["reconstruction"] + 2.5 * terms["kl"], rtol=1e-5)
    np.testing.assert_allclose(terms["elbo"], -(terms["reconstruction"] + terms["kl"]), rtol=1e-5)
    np.testing.assert_allclose(terms["bits_per_dim"], -terms["elbo"] / (64 * np.log(2)), rtol=1e-5)


@pytest.mark.parametrize("beta,check", [(0.0, lambda kl: kl > 20.0), (30.0, lambda kl: kl < 0.5)])
def test_beta_is_wired(digits, beta, check):
    keras.utils.set_random_seed(0)
    model = VAE(digits.image_shape, latent_dim=8, widths=(64,), beta=beta)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits.pipeline("train", 64, seed=0), epochs=6, verbose=0)
    kl = model.evaluate(digits.pipeline("test", 256), verbose=0, return_dict=True)["kl"]
    assert check(kl), f"beta={beta}: KL {kl:.3f}"


def test_free_bits_keep_each_unit_at_its_floor_in_the_loss():
    model = VAE((8, 8, 1), latent_dim=3, free_bits=2.0)
    x = rng.random((7, 8, 8, 1)).astype("float32")
    terms = model.compute_losses(x)
    # A fresh encoder has KL far below 2 nats per unit, so the floor (3 units x 2 nats) is what counts.
    assert float(terms["kl"]) < 1.0
    np.testing.assert_allclose(float(terms["loss"]), float(terms["reconstruction"]) + 6.0, rtol=1e-5)


def test_kl_warmup_ramps_the_weight(digits):
    model = VAE(digits.image_shape, latent_dim=2, widths=(16,), kl_warmup_epochs=4)
    model.compile(optimizer="adam")
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(float(model.kl_weight.numpy())))
    model.fit(digits.pipeline("train", 256, seed=0), epochs=6, verbose=0,
              callbacks=[*model.training_callbacks(), record])
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]


def test_iwae_with_one_sample_is_the_elbo_in_expectation(digits, trained_vae):
    x = (digits.arrays("test")[0][:20] > 0.5).astype("float32")
    draws = 300
    iwae_1 = np.stack([trained_vae.importance_weighted_log_likelihood(x, num_samples=1) for _ in range(draws)])
    elbos = []
    for _ in range(draws):
        mean, log_var = trained_vae.posterior(x)
        z = reparameterize(mean, log_var, None)
        reconstruction = trained_vae.reconstruction_error(x, trained_vae.decode_logits(z))
        elbos.append(-(np.asarray(reconstruction) + np.asarray(losses.kl_to_standard_normal(mean, log_var))))
    elbos = np.stack(elbos)
    error = np.sqrt(iwae_1.var(axis=0) / draws + elbos.var(axis=0) / draws)
    assert np.all(np.abs(iwae_1.mean(axis=0) - elbos.mean(axis=0)) < 4 * error + 1e-3)


def test_iwae_does_not_decrease_as_k_grows(digits, trained_vae):
    x = (digits.arrays("test")[0][:50] > 0.5).astype("float32")
    bounds = [np.mean([trained_vae.importance_weighted_log_likelihood(x, num_samples=k, chunk=50).mean()
                       for _ in range(3)]) for k in (1, 10, 100)]
    assert bounds[0] < bounds[1] < bounds[2]


def test_conditional_vae_decodes_the_label_it_is_given_and_round_trips(digits, tmp_path):
    """The label reaches the decoder and survives a .keras round trip (class fidelity of the samples is a
    benchmark: benchmarks/cvae.py)."""
    model = ConditionalVAE(digits.image_shape, num_classes=10, latent_dim=2, widths=(32,))
    model.compile(optimizer="adam")
    model.fit(digits.pipeline("train", 128, seed=0), epochs=1, verbose=0)
    x, y = digits.arrays("test")
    assert model.sample(5, labels=3).shape == (5, 8, 8, 1)
    # The label really enters the decoder: the same codes give different images for different labels.
    z = np.zeros((1, 2), "float32")
    assert not np.allclose(model.decode(z, np.array([0])), model.decode(z, np.array([1])))
    model.save(tmp_path / "cvae.keras")
    loaded = keras.models.load_model(tmp_path / "cvae.keras")
    np.testing.assert_array_equal(loaded.reconstruct(x[:4], y[:4]), model.reconstruct(x[:4], y[:4]))


@pytest.mark.parametrize("call,needle", [
    (lambda: VAE((8, 8, 1), beta=-1), "beta must be a finite number >= 0"),
    (lambda: VAE((8, 8, 1), reconstruction="mse"), "needs a likelihood"),
    (lambda: VAE((8, 8, 1), free_bits=-0.5), "free_bits"),
    (lambda: VAE((8, 8, 1)).importance_weighted_log_likelihood(np.zeros((1, 8, 8, 1)), num_samples=0), "K"),
    (lambda: ConditionalVAE((8, 8, 1)), "needs labels"),
    (lambda: ConditionalVAE((8, 8, 1), num_classes=10).compute_losses(np.zeros((2, 8, 8, 1), "float32")),
     "conditional on labels"),
    (lambda: ConditionalVAE((8, 8, 1), num_classes=10).sample(3, labels=10), r"labels must be in \[0, 9\]"),
    (lambda: ConditionalVAE((8, 8, 1), num_classes=10).sample(3), r"conditional on 10 classes"),
    (lambda: VAE((8, 8, 1)).sample(3, labels=1), "not conditional"),
])
def test_bad_input_is_refused_clearly(call, needle):
    with pytest.raises(KerasAEError, match=needle):
        call()


def test_active_units_have_one_definition_in_training_and_in_the_report():
    from keras_ae.models.vae import ActiveUnits, active_units

    rng = np.random.default_rng(0)
    means = rng.normal(0.0, [0.5, 0.2, 0.05, 0.001], size=(1000, 4)).astype("float32")  # variances .25 .04 .0025 ~0
    metric = ActiveUnits(4)
    for start in range(0, 1000, 128):  # batch by batch, as an epoch gathers it
        metric.update_state(means[start:start + 128])
    assert float(metric.result()) == active_units(means) == 2


def test_iwae_k_trains_on_the_importance_weighted_bound():
    """With --iwae-k K the loss is -log (1/K) sum_k w_k of K fresh draws: below the negative ELBO by the
    (positive) gap of the bound; training on it raises the model's importance-weighted log-likelihood."""
    from keras_ae.errors import ConfigError

    x = (np.random.default_rng(0).random((64, 8, 8, 1)) < 0.3).astype("float32")
    keras.utils.set_random_seed(0)
    model = VAE((8, 8, 1), latent_dim=4, widths=(32,), iwae_k=50)
    terms = model.compute_losses(x)
    elbo_loss = float(terms["reconstruction"] + terms["kl"])
    assert 0.0 < elbo_loss - float(terms["loss"]) < 5.0
    model.compile(optimizer="adam")
    before = float(np.mean(model.importance_weighted_log_likelihood(x, num_samples=100, seed=0)))
    model.fit(x, epochs=20, batch_size=32, verbose=0)
    assert np.mean(model.importance_weighted_log_likelihood(x, num_samples=100, seed=0)) > before + 1.0
    with pytest.raises(ConfigError, match="drop --beta"):
        VAE((8, 8, 1), iwae_k=5, beta=2.0)


# ---------------------------------------------------------------- the learned mixture prior

def mixture(latent_dim, weights, means, stds):
    from keras_ae.models.priors import GaussianMixture

    prior = GaussianMixture(latent_dim, len(weights))
    prior.logits.assign(np.log(weights))
    prior.means.assign(np.asarray(means, "float32"))
    prior.log_vars.assign(2 * np.log(np.asarray(stds, "float32")))
    return prior


def test_the_mixture_prior_is_a_density_and_its_description_samples_it():
    import json

    from keras_ae import serving

    weights, means, stds = [0.5, 0.3, 0.2], [[-2.0, 0.0], [1.0, 3.0], [2.0, -1.0]], [[0.5, 1.0], [1.0, 0.3], [0.7, 0.7]]
    prior = mixture(2, weights, means, stds)
    grid = np.linspace(-8, 8, 401)
    points = np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2).astype("float32")
    mass = np.exp(np.asarray(prior.log_prob(points))).sum() * (grid[1] - grid[0]) ** 2
    assert mass == pytest.approx(1.0, abs=1e-3)
    described = json.loads(json.dumps(prior.describe()))  # what an export writes and a client reads
    codes = serving.sample_codes(described, 30_000, seed=2)
    np.testing.assert_array_equal(codes, prior.sample(30_000, seed=2))
    nearest = np.argmax(np.stack([np.log(w) - 0.5 * np.sum(((codes - m) / s) ** 2 + 2 * np.log(s), -1)
                                  for w, m, s in zip(weights, np.array(means), np.array(stds))]), 0)
    np.testing.assert_allclose(np.bincount(nearest) / len(codes), weights, atol=0.02)  # (overlap is small)
    np.testing.assert_allclose(codes.mean(0), np.average(means, axis=0, weights=weights), atol=0.05)
    centre, directions, spreads = prior.principal_plane()
    np.testing.assert_allclose(centre, codes.mean(0), atol=0.05)
    np.testing.assert_allclose(spreads[0], np.linalg.eigvalsh(np.cov(codes, rowvar=False))[-1] ** 0.5, rtol=0.03)


def test_a_vae_with_a_one_component_standard_mixture_has_the_standard_kl_in_expectation():
    model = VAE((8, 8, 1), latent_dim=3, mixture_prior=1)
    plain = mixture(3, [1.0], [[0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0]])
    model.prior.set_weights(plain.get_weights())
    mean, log_var = rng.normal(size=(4, 3)).astype("float32"), (rng.normal(size=(4, 3)) * 0.3).astype("float32")
    z = reparameterize(np.repeat(mean[None], 20_000, 0).reshape(-1, 3), np.repeat(log_var[None], 20_000, 0)
                       .reshape(-1, 3), keras.random.SeedGenerator(0))
    estimate = np.asarray(model.kl_per_image(np.tile(mean, (20_000, 1)), np.tile(log_var, (20_000, 1)), z))
    np.testing.assert_allclose(estimate.reshape(20_000, 4).mean(0), losses.kl_to_standard_normal(mean, log_var),
                               rtol=0.05, atol=0.02)


def test_a_mixture_prior_trains_with_the_model_and_is_saved_with_it(digits, tmp_path):
    keras.utils.set_random_seed(0)
    model = VAE(digits.image_shape, latent_dim=3, widths=(32,), mixture_prior=4, binarize=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = [w.copy() for w in model.prior.get_weights()]
    model.fit(digits.pipeline("train", 64, seed=0), epochs=3, verbose=0)
    assert all(np.abs(a - b).max() > 1e-3 for a, b in zip(model.prior.get_weights(), before))
    test_x, _ = digits.arrays("test")
    report = model.likelihood_report(test_x[:100], num_samples=50)
    assert -report.nll >= report.details["ELBO (nats)"] - 0.5 and np.isfinite(report.details["KL (nats)"])
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.prior.sample(5, seed=1), model.prior.sample(5, seed=1))
    with pytest.raises(KerasAEError, match="free-bits"):
        VAE((8, 8, 1), latent_dim=3, mixture_prior=4, free_bits=0.5)
