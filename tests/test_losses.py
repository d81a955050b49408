"""Each loss term against a direct NumPy computation, with the documented reduction."""

import math

import numpy as np

from keras_ae import losses

rng = np.random.default_rng(0)


def test_squared_error_sums_over_pixels_per_image():
    x, x_hat = rng.random((4, 5, 6, 2)), rng.random((4, 5, 6, 2))
    expected = ((x - x_hat) ** 2).reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(losses.squared_error(x, x_hat), expected, rtol=1e-6)


def test_bernoulli_nll_matches_cross_entropy_and_is_stable_for_large_logits():
    x = rng.random((3, 4, 4, 1)).astype("float32")
    logits = rng.normal(size=x.shape).astype("float32") * 3
    p = 1 / (1 + np.exp(-logits.astype("float64")))
    expected = -(x * np.log(p) + (1 - x) * np.log(1 - p)).reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(losses.bernoulli_nll(x, logits), expected, rtol=1e-5)
    extreme = np.array([[[[200.0]], [[-200.0]]]], dtype="float32")  # one image, 2 pixels
    np.testing.assert_allclose(losses.bernoulli_nll(np.array([[[[0.0]], [[1.0]]]], "float32"), extreme), [400.0])


def test_gaussian_nll_matches_density():
    x, mean = rng.random((2, 3, 3, 1)), rng.random((2, 3, 3, 1))
    log_var = -1.3
    expected = (0.5 * (math.log(2 * math.pi) + log_var) + 0.5 * (x - mean) ** 2 / math.exp(log_var)).reshape(2, -1).sum(1)
    np.testing.assert_allclose(losses.gaussian_nll(x, mean, log_var), expected, rtol=1e-6)


def test_kl_is_zero_at_the_prior_and_matches_formula():
    np.testing.assert_allclose(losses.kl_to_standard_normal(np.zeros((2, 5)), np.zeros((2, 5))), [0, 0], atol=1e-7)
    mean, log_var = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    expected = 0.5 * (mean**2 + np.exp(log_var) - 1 - log_var).sum(axis=1)
    np.testing.assert_allclose(losses.kl_to_standard_normal(mean, log_var), expected, rtol=1e-6)


def test_psnr_known_values_and_perfect_reconstruction_is_infinite():
    x = np.zeros((2, 4, 4, 1), "float32")
    noisy = x + 0.1  # mse 0.01 -> 20 dB
    np.testing.assert_allclose(losses.psnr(x, noisy), [20.0, 20.0], rtol=1e-5)
    assert np.all(np.isinf(losses.psnr(x, x)))
