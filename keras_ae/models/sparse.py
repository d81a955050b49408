"""Sparse autoencoder: reconstruction + lambda * R, where R makes most code units (near) zero.

An over-complete code (latent larger than the input) would let a plain autoencoder copy its input;
the sparsity penalty forbids that by making each image use few units. Three penalties:

- ``latent``: R = ||e(x)||_1, L1 on the code;
- ``activations``: L1 on every hidden activation of encoder and decoder, the code included;
- ``kl``: the classic sparse autoencoder's R = sum_j KL(rho || rho_hat_j), where rho_hat_j is the
  mean over the batch of sigmoid(z_j) and rho the target rate (Ng's lecture notes).

Reported per epoch: the penalty R and ``zero_fraction``, the fraction of code entries with
|z| <= ``zero_threshold``. By default the code is over-complete and sparse as the lectures draw it:
256 ReLU units (zeros are exact) under L1 (BENCHMARKS.md, "Defaults that do their job", measures how
many entries are zero at the defaults).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_ae.errors import ConfigError
from keras_ae.losses import sum_per_example
from keras_ae.models.base import Autoencoder, non_negative
from keras_ae.networks import hidden_activations
from keras_ae.options import Option, finite_float

SPARSITY = ("latent", "activations", "kl")


def _l1_per_example(tensors):
    return sum(sum_per_example(ops.abs(t)) for t in tensors)


def kl_sparsity(codes, target_rate):
    """sum_j KL(Bernoulli(rho) || Bernoulli(rho_hat_j)), rho_hat_j = batch mean of sigmoid(z_j)."""
    rate = ops.clip(ops.mean(ops.sigmoid(codes), axis=0), 1e-6, 1.0 - 1e-6)
    return ops.sum(target_rate * ops.log(target_rate / rate)
                   + (1.0 - target_rate) * ops.log((1.0 - target_rate) / (1.0 - rate)))


@keras.saving.register_keras_serializable(package="keras_ae")
class SparseAutoencoder(Autoencoder):
    """Autoencoder with a sparsity penalty on its code or on all its hidden activations (see the module docstring).

    Its defaults make the code over-complete and ReLU (``latent_dim`` 256, ``code_activation="relu"``);
    ``sparsity="kl"`` needs ``code_activation="linear"``.

    Args:
        input_shape, num_classes, encoder, decoder: as for :class:`Autoencoder` (your own networks must be
            functional Keras models: the penalty taps their activations).
    """

    loss_terms = ("loss", "reconstruction", "penalty", "zero_fraction")
    test_options = {"latent_dim": 8, "widths": (64, 32)}
    options = {
        "sparsity": Option("L1 on the code (latent), L1 on every hidden activation (activations), or KL to a "
                           "target rate (kl)", choices=SPARSITY, default="latent"),
        "penalty_weight": Option("weight lambda of the penalty added to the reconstruction", finite_float,
                                 default=1e-2, metavar="LAMBDA"),
        "target_rate": Option("with --sparsity kl: target mean activation rho in (0, 1)", finite_float, default=0.05,
                              metavar="RHO", only_with=("sparsity", "kl")),
        "zero_threshold": Option("|z| at or below which a code entry counts as zero", finite_float, default=1e-3),
    }
    option_defaults = {"latent_dim": 256, "code_activation": "relu"}

    def validate(self):
        super().validate()
        if self.sparsity not in SPARSITY:
            raise ConfigError(f"unknown sparsity {self.sparsity!r}; choose one of {', '.join(SPARSITY)}")
        if not 0.0 < self.target_rate < 1.0:
            raise ConfigError(f"target_rate (rho) must be in (0, 1), got {self.target_rate}")
        if self.sparsity == "kl" and self.code_activation != "linear":
            raise ConfigError(f"--sparsity kl takes a linear code (its rate is the mean of sigmoid(z)), not "
                              f"{self.code_activation!r}: add --code-activation linear")
        non_negative("penalty_weight (lambda)", self.penalty_weight)

    def build_model(self):
        """The networks, then the same layers also exposing their hidden activations for the penalty."""
        super().build_model()
        if not all(isinstance(net, keras.Model) and hasattr(net, "input") for net in (self.encoder, self.decoder)):
            raise ConfigError("a sparse autoencoder taps its networks' activations: give functional Keras models "
                              "as encoder and decoder")
        self._encoder_taps = keras.Model(self.encoder.input, [self.encoder.outputs[0]]
                                         + hidden_activations(self.encoder))
        self._decoder_taps = keras.Model(self.decoder.input, [self.decoder.outputs[0]]
                                         + hidden_activations(self.decoder))

    def compute_losses(self, x, y=None, training=False):
        z, *encoder_hidden = self._encoder_taps(self.conditioned(x, y), training=training)
        logits, *decoder_hidden = self._decoder_taps(self.conditioned(z, y), training=training)
        z, logits = ops.cast(z, "float32"), ops.cast(logits, "float32")  # losses in float32 (mixed precision)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        if self.sparsity == "latent":
            penalty = ops.mean(_l1_per_example([z]))
        elif self.sparsity == "activations":
            penalty = ops.mean(_l1_per_example([z, *encoder_hidden, *decoder_hidden]))
        else:
            penalty = kl_sparsity(z, self.target_rate)
        zero_fraction = ops.mean(ops.cast(ops.abs(z) <= self.zero_threshold, "float32"))
        return {"loss": reconstruction + self.penalty_weight * penalty, "reconstruction": reconstruction,
                "penalty": penalty, "zero_fraction": zero_fraction}
