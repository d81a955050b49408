"""Contractive autoencoder (Rifai et al. 2011): reconstruction + lambda * ||dz/dx||_F^2.

Penalising the encoder's Jacobian makes the code insensitive to small moves of the input in every
direction the data does not need, so an over-complete code cannot simply copy the input.

The penalty is exact (batch Jacobian) for small dense encoders and an unbiased random-projection
estimate otherwise (``jacobian="auto"``), see :func:`code_and_jacobian_sq` (which evaluation also uses
to report every model's Jacobian norm). Reported per epoch: the penalty and ``jacobian_norm``, the
mean Frobenius norm per image.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from keras_ae.errors import ConfigError
from keras_ae.losses import sum_per_example
from keras_ae.models.base import Autoencoder, non_negative
from keras_ae.options import Option, finite_float, positive_int, random_seed

JACOBIAN_METHODS = ("auto", "exact", "projection")
EXACT_LATENT_LIMIT = 64  # "auto" uses the exact Jacobian for dense encoders with at most this many units
EXACT_BYTES_LIMIT = 2**30  # refuse an exact Jacobian whose batch would take more memory than this


def code_and_jacobian_sq(encode, x, method: str = "exact", projections: int = 1, seed=None):
    """``encode(x)`` and ||d encode(x) / dx||_F^2 per example, exact or an unbiased estimate.

    ``exact`` builds the batch Jacobian (B x latent x pixels). ``projection`` draws ``projections``
    Rademacher vectors v in the (small) latent space and uses E||v^T J||^2 = ||J||_F^2, each v^T J
    being one reverse-mode product: the cost of a few backward passes, whatever the encoder.
    Both are differentiable, so the penalty trains the encoder. (Gradient tapes: TensorFlow backend.)
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape(persistent=method == "projection" and projections > 1) as tape:
        tape.watch(x)
        z = encode(x)
    if method == "exact":
        return z, sum_per_example(ops.square(tape.batch_jacobian(z, x)))
    total = 0.0
    for _ in range(projections):
        v = ops.sign(keras.random.normal(ops.shape(z), seed=seed))  # Rademacher +-1
        total += sum_per_example(ops.square(tape.gradient(z, x, output_gradients=v)))
    return z, total / projections


@keras.saving.register_keras_serializable(package="keras_ae")
class ContractiveAutoencoder(Autoencoder):
    """Autoencoder whose encoder is penalised by the squared Frobenius norm of its Jacobian.

    ``jacobian="auto"`` is exact for dense encoders with ``latent_dim <= 64``, the random-projection
    estimate otherwise.

    Args:
        input_shape, num_classes, encoder, decoder: as for :class:`Autoencoder`.
    """

    loss_terms = ("loss", "reconstruction", "penalty", "jacobian_norm")
    test_options = {"latent_dim": 8, "widths": (64, 32)}
    options = {
        "penalty_weight": Option("weight lambda of the penalty added to the reconstruction", finite_float,
                                 default=0.1, metavar="LAMBDA"),
        "jacobian": Option("exact batch Jacobian, random-projection estimate, or auto (exact for mlp encoders "
                           f"with latent <= {EXACT_LATENT_LIMIT})", choices=JACOBIAN_METHODS, default="auto"),
        "projections": Option("random projections per step for the estimator", positive_int, default=1),
        "seed": Option("seed of the projections", random_seed, default=0),
    }

    def validate(self):
        super().validate()
        if self.jacobian not in JACOBIAN_METHODS:
            raise ConfigError(f"unknown jacobian method {self.jacobian!r}; choose one of "
                              f"{', '.join(JACOBIAN_METHODS)}")
        if self.projections < 1:
            raise ConfigError(f"projections must be >= 1, got {self.projections}")
        non_negative("penalty_weight (lambda)", self.penalty_weight)

    def build_model(self):
        super().build_model()
        exact = self.architecture == "mlp" and self.latent_dim <= EXACT_LATENT_LIMIT
        self.jacobian_method = ("exact" if exact else "projection") if self.jacobian == "auto" else self.jacobian
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse, before training, an exact Jacobian that would not fit in memory."""
        needed = 4 * batch_size * self.latent_dim * self.input_dim
        if self.jacobian_method == "exact" and needed > EXACT_BYTES_LIMIT:
            raise ConfigError(f"the exact Jacobian of a batch of {batch_size} ({self.latent_dim} x "
                              f"{self.input_dim} per image) needs {needed / 2**30:.1f} GiB; use "
                              "--jacobian projection or a smaller --batch-size")

    def compute_losses(self, x, y=None, training=False):
        z, penalty_per_image = code_and_jacobian_sq(
            lambda images: self.encode(images, y, training=training), x, self.jacobian_method, self.projections,
            self.seed_generator)
        logits = self.decode_logits(z, y, training=training)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        penalty = ops.mean(penalty_per_image)
        return {"loss": reconstruction + self.penalty_weight * penalty, "reconstruction": reconstruction,
                "penalty": penalty, "jacobian_norm": ops.mean(ops.sqrt(ops.maximum(penalty_per_image, 0.0)))}
