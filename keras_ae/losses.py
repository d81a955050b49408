"""Loss terms and image metrics as pure functions, each tested alone.

The one reduction rule of keras_ae: every function here returns one value *per example*, summed
over that example's pixels (or latent units); models average these over the batch. A reported
"reconstruction" of 20.3 therefore means 20.3 per image, in the loss's own unit (squared error, or
nats for Bernoulli/Gaussian likelihoods), whatever the batch size.
"""

from __future__ import annotations

import math

import keras
from keras import ops


def _sum_per_example(values):
    """Sum all axes but the first (the batch)."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


def squared_error(x, x_hat):
    """Sum of squared pixel errors per image (the figure Hinton & Salakhutdinov 2006 report)."""
    return _sum_per_example(ops.square(x - x_hat))


def bernoulli_nll(x, logits):
    """-log p(x | logits) per image, in nats, for pixels in [0, 1] (binary cross-entropy on logits)."""
    # -[x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))] = softplus(l) - x l; softplus is one stable kernel.
    per_pixel = ops.softplus(logits) - logits * x
    return _sum_per_example(per_pixel)


def gaussian_nll(x, mean, log_var):
    """-log N(x; mean, exp(log_var)) per image, in nats; ``log_var`` broadcasts (scalar = fixed variance)."""
    log_var = ops.zeros_like(mean) + log_var
    per_pixel = 0.5 * (math.log(2.0 * math.pi) + log_var + ops.square(x - mean) * ops.exp(-log_var))
    return _sum_per_example(per_pixel)


def kl_per_unit(mean, log_var):
    """Closed-form KL(N(mean, exp(log_var)) || N(0, 1)) of each latent unit, in nats (same shape as mean)."""
    return 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)


def kl_to_standard_normal(mean, log_var):
    """Closed-form KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent units, in nats."""
    return _sum_per_example(kl_per_unit(mean, log_var))


def standard_normal_log_density(z):
    """log N(z; 0, I) per example, summed over the last axis."""
    return -0.5 * ops.sum(ops.square(z) + math.log(2.0 * math.pi), axis=-1)


PSNR_CAP = 100.0  # dB given to a perfect reconstruction by capped_psnr, so that means stay finite


def capped_psnr(x, x_hat):
    """:func:`psnr` with a perfect reconstruction counted as ``PSNR_CAP`` instead of +inf (for averages)."""
    return ops.minimum(psnr(x, x_hat), PSNR_CAP)


def psnr(x, x_hat, max_value: float = 1.0):
    """Peak signal-to-noise ratio per image in dB; +inf for a perfect reconstruction."""
    mse = ops.mean(ops.reshape(ops.square(x - x_hat), (ops.shape(x)[0], -1)), axis=-1)
    return 10.0 * (2.0 * math.log10(max_value) - ops.log(mse) / math.log(10.0))


def code_and_jacobian_sq(encode, x, method: str = "exact", projections: int = 1, seed=None):
    """``encode(x)`` and ||d encode(x) / dx||_F^2 per example, exact or an unbiased estimate.

    ``exact`` builds the batch Jacobian (B x latent x pixels). ``projection`` draws ``projections``
    Rademacher vectors v in the (small) latent space and uses E||v^T J||^2 = ||J||_F^2, each v^T J
    being one reverse-mode product: the cost of a few backward passes, whatever the encoder.
    Both are differentiable, so the penalty trains the encoder.
    """
    import tensorflow as tf  # gradient tapes: the penalty is specific to the TensorFlow backend

    x = tf.convert_to_tensor(x)
    with tf.GradientTape(persistent=method == "projection" and projections > 1) as tape:
        tape.watch(x)
        z = encode(x)
    if method == "exact":
        return z, _sum_per_example(ops.square(tape.batch_jacobian(z, x)))
    total = 0.0
    for _ in range(projections):
        v = ops.sign(keras.random.normal(ops.shape(z), seed=seed))  # Rademacher +-1
        total += _sum_per_example(ops.square(tape.gradient(z, x, output_gradients=v)))
    return z, total / projections
