"""Loss terms and image metrics as pure functions, each tested alone.

The one reduction rule of keras_ae: every function here returns one value *per example*, summed
over that example's pixels (or latent units); models average these over the batch. A reported
"reconstruction" of 20.3 therefore means 20.3 per image, in the loss's own unit (squared error, or
nats for Bernoulli/Gaussian likelihoods), whatever the batch size.
"""

from __future__ import annotations

import math

from keras import ops


def sum_per_example(values):
    """Sum all axes but the first (the batch)."""
    return ops.sum(ops.reshape(values, (ops.shape(values)[0], -1)), axis=-1)


def squared_error(x, x_hat):
    """Sum of squared pixel errors per image (the figure Hinton & Salakhutdinov 2006 report)."""
    return sum_per_example(ops.square(x - x_hat))


def bernoulli_nll(x, logits):
    """-log p(x | logits) per image, in nats, for pixels in [0, 1] (binary cross-entropy on logits)."""
    # -[x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))] = softplus(l) - x l; softplus is one stable kernel.
    per_pixel = ops.softplus(logits) - logits * x
    return sum_per_example(per_pixel)


def categorical_nll(x, logits, levels: int):
    """-log p(x | logits) per example, in nats, for values k / (levels - 1) and logits (..., levels) over k."""
    indices = ops.cast(ops.round(x * (levels - 1)), "int32")
    return sum_per_example(-ops.take_along_axis(ops.log_softmax(logits, axis=-1), indices[..., None], axis=-1))


def gaussian_nll(x, mean, log_var):
    """-log N(x; mean, exp(log_var)) per image, in nats; ``log_var`` broadcasts (scalar = fixed variance)."""
    log_var = ops.zeros_like(mean) + log_var
    per_pixel = 0.5 * (math.log(2.0 * math.pi) + log_var + ops.square(x - mean) * ops.exp(-log_var))
    return sum_per_example(per_pixel)


def kl_per_unit(mean, log_var):
    """Closed-form KL(N(mean, exp(log_var)) || N(0, 1)) of each latent unit, in nats (same shape as mean)."""
    return 0.5 * (ops.square(mean) + ops.exp(log_var) - 1.0 - log_var)


def kl_to_standard_normal(mean, log_var):
    """Closed-form KL(N(mean, exp(log_var)) || N(0, I)) per example, summed over latent units, in nats."""
    return sum_per_example(kl_per_unit(mean, log_var))


PSNR_CAP = 100.0  # dB given to a perfect reconstruction by capped_psnr, so that means stay finite


def capped_psnr(x, x_hat):
    """:func:`psnr` with a perfect reconstruction counted as ``PSNR_CAP`` instead of +inf (for averages)."""
    return ops.minimum(psnr(x, x_hat), PSNR_CAP)


def psnr(x, x_hat, max_value: float = 1.0):
    """Peak signal-to-noise ratio per image in dB; +inf for a perfect reconstruction."""
    mse = ops.mean(ops.reshape(ops.square(x - x_hat), (ops.shape(x)[0], -1)), axis=-1)
    return 10.0 * (2.0 * math.log10(max_value) - ops.log(mse) / math.log(10.0))
