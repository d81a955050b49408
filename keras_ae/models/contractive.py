"""Contractive autoencoder (Rifai et al. 2011): reconstruction + lambda * ||dz/dx||_F^2.

Penalising the encoder's Jacobian makes the code insensitive to small moves of the input in every
direction the data does not need, so an over-complete code cannot simply copy the input.

The penalty is exact (batch Jacobian) for small dense encoders and an unbiased random-projection
estimate otherwise (``jacobian="auto"``), see :func:`keras_ae.losses.code_and_jacobian_sq`.
Reported per epoch: the penalty and ``jacobian_norm``, the mean Frobenius norm per image.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ae import losses
from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, non_negative

JACOBIAN_METHODS = ("auto", "exact", "projection")
EXACT_LATENT_LIMIT = 64  # "auto" uses the exact Jacobian for dense encoders with at most this many units
EXACT_BYTES_LIMIT = 2**30  # refuse an exact Jacobian whose batch would take more memory than this


@keras.saving.register_keras_serializable(package="keras_ae")
class ContractiveAutoencoder(Autoencoder):
    """Autoencoder whose encoder is penalised by the squared Frobenius norm of its Jacobian.

    Args:
        penalty_weight: lambda (>= 0).
        jacobian: ``"exact"``, ``"projection"`` or ``"auto"`` (exact for dense encoders with
            ``latent_dim <= 64``, projection otherwise).
        projections: random projections per step for the estimator (>= 1).
        seed: seed of the projections.
        **kwargs: the networks and reconstruction options of :class:`Autoencoder`.
    """

    loss_terms = ("loss", "reconstruction", "penalty", "jacobian_norm")

    def __init__(self, input_shape, penalty_weight=0.1, jacobian="auto", projections=1, seed=0, **kwargs):
        if jacobian not in JACOBIAN_METHODS:
            raise ConfigError(f"unknown jacobian method {jacobian!r}; choose one of {', '.join(JACOBIAN_METHODS)}")
        if int(projections) < 1:
            raise ConfigError(f"projections must be >= 1, got {projections}")
        super().__init__(input_shape, **kwargs)
        self.penalty_weight, self.jacobian, self.projections, self.seed = (
            non_negative("penalty_weight (lambda)", penalty_weight), jacobian, int(projections), int(seed))
        exact = self.spec.arch == "mlp" and self.spec.latent_dim <= EXACT_LATENT_LIMIT
        self.jacobian_method = ("exact" if exact else "projection") if jacobian == "auto" else jacobian
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse, before training, an exact Jacobian that would not fit in memory."""
        needed = 4 * batch_size * self.spec.latent_dim * self.spec.input_dim
        if self.jacobian_method == "exact" and needed > EXACT_BYTES_LIMIT:
            raise ConfigError(f"the exact Jacobian of a batch of {batch_size} ({self.spec.latent_dim} x "
                              f"{self.spec.input_dim} per image) needs {needed / 2**30:.1f} GiB; use "
                              "--jacobian projection or a smaller --batch-size")

    def compute_losses(self, x, y=None, training=False):
        z, penalty_per_image = losses.code_and_jacobian_sq(
            lambda images: self.encode(images, y, training=training), x, self.jacobian_method, self.projections,
            self.seed_generator)
        logits = self.decode_logits(z, y, training=training)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        penalty = ops.mean(penalty_per_image)
        return {"loss": reconstruction + self.penalty_weight * penalty, "reconstruction": reconstruction,
                "penalty": penalty, "jacobian_norm": ops.mean(ops.sqrt(ops.maximum(penalty_per_image, 0.0)))}

    def get_config(self):
        return {**super().get_config(), "penalty_weight": self.penalty_weight, "jacobian": self.jacobian,
                "projections": self.projections, "seed": self.seed}
