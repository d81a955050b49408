"""Denoising autoencoder (Vincent et al. 2008): reconstruct the clean x from a corrupted copy.

A fresh corruption is drawn at every step, so the network cannot learn the identity and must learn
what digits look like. Corruptions:

- ``gaussian``: x + n, n ~ N(0, noise_level^2) per pixel (not clipped);
- ``mask``: x * m, each pixel set to zero with probability noise_level;
- ``salt_and_pepper``: each pixel set to 0 or 1 (even odds) with probability noise_level.

The loss compares the reconstruction of the corrupted input with the clean input. Reported per
epoch: ``psnr_corrupted`` (corrupted vs clean) and ``psnr_reconstructed`` (output vs clean), in dB.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ae import losses
from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, non_negative
from keras_ae.options import Option, finite_float, random_seed

NOISES = ("gaussian", "mask", "salt_and_pepper")


def corrupt(x, noise: str, level: float, seed):
    """A corrupted copy of the images ``x`` (see the module docstring for each noise)."""
    if noise == "gaussian":
        return x + level * keras.random.normal(ops.shape(x), seed=seed)
    hit = keras.random.uniform(ops.shape(x), seed=seed) < level
    if noise == "mask":
        return ops.where(hit, 0.0, x)
    salt = keras.random.uniform(ops.shape(x), seed=seed) < 0.5
    return ops.where(hit, ops.cast(salt, x.dtype), x)


def _mean_psnr(x, x_hat):
    """Mean PSNR over the batch (perfect images count as ``losses.PSNR_CAP``)."""
    return ops.mean(losses.capped_psnr(x, x_hat))


@keras.saving.register_keras_serializable(package="keras_ae")
class DenoisingAutoencoder(Autoencoder):
    """Autoencoder trained to map corrupted images to clean ones (the noises: see the module docstring).

    Args:
        input_shape, num_classes, encoder, decoder: as for :class:`Autoencoder`.
    """

    loss_terms = ("loss", "reconstruction", "psnr_corrupted", "psnr_reconstructed")
    test_options = {"latent_dim": 8, "widths": (64, 32)}
    options = {
        "noise": Option("additive Gaussian noise, masking noise, or salt-and-pepper", choices=NOISES,
                        default="gaussian"),
        "noise_level": Option("sigma for gaussian; fraction of pixels hit for mask and salt_and_pepper, in [0, 1]",
                              finite_float, default=0.3),
        "seed": Option("seed of the corruption", random_seed, default=0),
    }

    def validate(self):
        super().validate()
        if self.noise not in NOISES:
            raise ConfigError(f"unknown noise {self.noise!r}; choose one of {', '.join(NOISES)}")
        non_negative("noise_level", self.noise_level)
        if self.noise != "gaussian" and self.noise_level > 1.0:
            raise ConfigError(f"noise_level for {self.noise} noise is a fraction of pixels in [0, 1], got "
                              f"{self.noise_level}")

    def build_model(self):
        super().build_model()
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def corrupt(self, x):
        """A fresh corruption of ``x`` (different at every call)."""
        return corrupt(x, self.noise, self.noise_level, self.seed_generator)

    def figure_rows(self, x, labels=None):
        noisy = self.corrupt(x)
        return {"original": x, "corrupted": ops.clip(noisy, 0.0, 1.0), "reconstructed": self.reconstruct(noisy, labels)}

    def compute_losses(self, x, y=None, training=False):
        noisy = self.corrupt(x)
        logits = self.decode_logits(self.encode(noisy, y, training=training), y, training=training)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        return {"loss": reconstruction, "reconstruction": reconstruction,
                "psnr_corrupted": _mean_psnr(x, noisy),
                "psnr_reconstructed": _mean_psnr(x, ops.sigmoid(logits))}
