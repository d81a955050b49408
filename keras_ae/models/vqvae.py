"""VQ-VAE (van den Oord, Vinyals and Kavukcuoglu 2017): a discrete code, and a PixelCNN prior over it.

The encoder maps an image to a grid of vectors z_e (H', W', D); each is replaced by its nearest
entry of a codebook of K vectors, so the code is a grid of K-way indices (H' * W' * log2 K bits per
image). The decoder maps the quantized vectors z_q back to the image. The quantization has no
gradient, so the straight-through estimator passes the decoder's gradient to z_e unchanged
(z_e + stop_gradient(z_q - z_e)). The objective, per image:

    loss = reconstruction + ||stop_gradient(z_e) - z_q||^2 + beta ||z_e - stop_gradient(z_q)||^2

with each term summed over pixels or over the grid's vector entries and averaged over the batch; the
second term (the codebook loss) moves the entries towards the codes assigned to them, the third (the
commitment loss, beta 0.25) keeps the encoder close to its entries. With ``ema`` the codebook is
instead the exponential moving average of the codes assigned to each entry (the paper's appendix),
and the codebook loss is not trained on.

Each epoch reports the codebook's perplexity (exp of the entropy of its usage: K when every entry is
used equally, 1 when one entry takes every code) and its dead entries (used by no training code);
dead entries are re-seeded at the end of the epoch with codes the encoder produced in its last step.

New images need a prior over the grid: the PixelCNN of the zoo, trained as a second stage on the
codes of the training images when training ends (:class:`keras_ae.models.pixelcnn.PixelCNNPrior`),
saved with the model and exported beside the decoder.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from keras_ae.contract import Code
from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, in_batches
from keras_ae.models.pixelcnn import MIN_SIDE, PixelCNNPrior
from keras_ae.options import Option, finite_float, int_list, positive_int, random_seed

log = logging.getLogger("keras_ae")
PRIORS = ("pixelcnn",)
COLLAPSED_PERPLEXITY = 2.0  # a codebook used as if it had fewer than 2 entries has collapsed


class CodebookUsage(keras.metrics.Metric):
    """How many codes each codebook entry took over an epoch, as its perplexity or its count of unused entries."""

    def __init__(self, size: int, name: str, **kwargs):
        super().__init__(name=name, **kwargs)
        self.counts = self.add_variable((size,), "zeros", name="counts", dtype="float32")

    def update_state(self, counts, sample_weight=None):
        self.counts.assign_add(ops.cast(counts, "float32"))

    def result(self):
        if self.name == "dead_codes":
            return ops.sum(ops.cast(self.counts == 0.0, "float32"))
        return perplexity(self.counts)


def perplexity(counts):
    """exp(entropy) of the usage ``counts`` of the entries: the number of entries a uniform usage would need."""
    p = counts / ops.maximum(ops.sum(counts), 1.0)
    return ops.exp(-ops.sum(p * ops.log(ops.maximum(p, 1e-12))))


@keras.saving.register_keras_serializable(package="keras_ae")
class VQVAE(Autoencoder):
    """Vector-quantized autoencoder with a codebook of ``codebook_size`` entries and a PixelCNN prior.

    ``latent_dim`` is D, the size of each codebook vector; ``widths`` are the filters of the encoder's stride-2
    stages, so the code grid is the image downsampled by 2 per stage. Its networks and its prior are its own:
    it takes no ``arch`` (always conv) and no other network option but ``activation``.

    Args:
        input_shape: (H, W, C) of the images.

    Example:
        >>> model = VQVAE((28, 28, 1), latent_dim=16, codebook_size=64)   # codes: 7x7 indices, 294 bits
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, epochs=10)
        >>> model.fit_prior(train_ds)                                    # the PixelCNN over the codes
        >>> indices, images = model.codes(test_images), model.sample(16)
    """

    loss_terms = ("loss", "reconstruction", "codebook", "commitment", "perplexity", "dead_codes")
    test_options = {"latent_dim": 4, "widths": (16,), "codebook_size": 8, "prior_epochs": 2, "prior_filters": 8,
                    "prior_blocks": 1}
    dropped_options = ("arch", "dense_units", "down", "up", "code_activation", "output_std")  # its networks are its own
    # Bernoulli reconstruction: on squared error through the sigmoid, its decoder saturated to blank images on
    # 28x28 digits (BENCHMARKS.md, "VQ-VAE")
    option_defaults = {"arch": "conv", "reconstruction": "bce"}
    options = {
        "latent_dim": Option("D, the size of each codebook vector", positive_int, default=16),
        "widths": Option("comma-separated filters of the encoder's stride-2 stages: the code grid is the image "
                         "downsampled by 2 per stage", int_list, default=(32, 64)),
        "codebook_size": Option("K, entries of the codebook (>= 2): a code is a grid of K-way indices",
                                positive_int, default=64),
        "commitment": Option("beta, weight of the commitment loss ||z_e - sg(z_q)||^2", finite_float, default=0.25),
        "ema": Option("learn the codebook as moving averages of the codes assigned to each entry, not by its "
                      "gradient", default=False, flag=True),
        "ema_decay": Option("decay of the codebook's moving averages", finite_float, default=0.99,
                            only_with=("ema", True)),
        "prior_kind": Option("the prior over the code grid, trained on the training codes when training ends",
                             choices=PRIORS, default="pixelcnn", flag_name="prior"),
        "prior_epochs": Option("epochs of the prior's training", positive_int, default=10),
        "prior_filters": Option("features of the prior's masked convolutions", positive_int, default=64),
        "prior_blocks": Option("mask-B layers of the prior", positive_int, default=5),
        "seed": Option("seed of the codebook's initialisation and its re-seeding", random_seed, default=0),
    }

    def validate(self):
        if self.num_classes is not None or any(self.custom.values()):
            raise ConfigError("the VQ-VAE takes no num_classes, encoder or decoder: its networks and its prior are "
                              "its own")
        super().validate()
        if self.codebook_size < 2:
            raise ConfigError(f"a codebook needs >= 2 entries, got codebook_size {self.codebook_size}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.commitment < 0:
            raise ConfigError(f"commitment must be >= 0, got {self.commitment}")
        if min(self.grid) < MIN_SIDE:
            raise ConfigError(f"the code grid would be {self.grid[0]}x{self.grid[1]} ({len(self.widths)} stride-2 stages "
                              f"over {self.image_shape[0]}x{self.image_shape[1]} images), under the {MIN_SIDE}x{MIN_SIDE} "
                              "its prior takes: give fewer --widths")
        if self.prior_kind not in PRIORS:
            raise ConfigError(f"unknown prior {self.prior_kind!r}; choose one of {', '.join(PRIORS)}")

    def build_model(self):
        """The networks and the prior, then the codebook and what keeps count of its use."""
        super().build_model()
        size, dim = self.codebook_size, self.latent_dim
        self.codebook = self.add_weight(shape=(size, dim), name="codebook", trainable=not self.ema,
                                        initializer=keras.initializers.RandomUniform(-1.0 / size, 1.0 / size,
                                                                                     seed=self.seed))
        if self.ema:  # the running counts and sums of the codes assigned to each entry
            self.ema_counts = self.add_weight(shape=(size,), initializer="ones", trainable=False, name="ema_counts")
            self.ema_sums = self.add_weight(shape=(size, dim), trainable=False, name="ema_sums",
                                            initializer=keras.initializers.Constant(0.0))
            self.ema_sums.assign(self.codebook)
        self.usage = self.add_weight(shape=(size,), initializer="zeros", trainable=False, name="usage")
        self.recent = self.add_weight(shape=(size, dim), initializer="zeros", trainable=False, name="recent_codes")
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    # ---- the networks and the code -----------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        return self.spec.conv_sizes()[-1]

    @property
    def code(self) -> Code:
        """A grid of indices into the codebook."""
        return Code(self.grid, levels=self.codebook_size)

    @property
    def architecture(self) -> str:
        return "conv-vq"

    def build_networks(self):
        """Stride-2 convolutions down to the grid then a 1x1 to D; the decoder mirrors it, cropping odd sizes."""
        spec = self.spec
        images = keras.Input(spec.input_shape, name="images")
        x = images
        for i, filters in enumerate(spec.widths):
            x = layers.Conv2D(filters, 4 if i < len(spec.widths) - 1 else 3, strides=2, padding="same",
                              name=f"enc_{i}_conv")(x)
            x = layers.Activation(spec.activation, name=f"hidden_enc_{i}")(x)
        x = _residual(x, spec.widths[-1], spec.activation, "enc_res")
        encoder = keras.Model(images, {"z": layers.Conv2D(self.latent_dim, 1, name="z")(x)}, name="encoder")

        sizes = spec.conv_sizes()
        z_q = keras.Input((*sizes[-1], self.latent_dim), name="z_q")
        x = layers.Conv2D(spec.widths[-1], 3, padding="same", name="dec_in")(z_q)
        x = _residual(x, spec.widths[-1], spec.activation, "dec_res")
        for i, filters in enumerate(reversed(spec.widths)):
            (h, w) = sizes[-2 - i]
            out = spec.input_shape[2] if i == len(spec.widths) - 1 else spec.widths[-2 - i]
            x = layers.Activation(spec.activation, name=f"hidden_dec_{i}")(x)
            x = layers.Conv2DTranspose(out, 4, strides=2, padding="same", name=f"dec_{i}_up")(x)
            x = layers.Cropping2D(((0, x.shape[1] - h), (0, x.shape[2] - w)), name=f"dec_{i}_crop")(x)
        return encoder, keras.Model(z_q, x, name="decoder")

    def nearest(self, z_e):
        """Indices (N, H', W') of the codebook entries nearest to the vectors of ``z_e`` (N, H', W', D)."""
        flat = ops.reshape(ops.cast(z_e, "float32"), (-1, self.latent_dim))
        distances = (ops.sum(flat ** 2, axis=1, keepdims=True) - 2.0 * ops.matmul(flat, ops.transpose(self.codebook))
                     + ops.sum(self.codebook ** 2, axis=1)[None, :])
        # (tf's own argmin: Keras's handles -0.0 with a bitwise op that TFLite's builtin ops lack)
        return ops.reshape(tf.argmin(distances, axis=1, output_type=tf.int32), ops.shape(z_e)[:3])

    def code_outputs(self, heads: dict) -> dict:
        return {"z": ops.cast(self.nearest(heads["z"]), "int32")}

    @property
    def code_variables(self) -> list:
        return [self.codebook]

    def code_vectors(self, z):
        return ops.take(self.codebook, ops.cast(z, "int32"), axis=0)

    def build_prior(self):
        return PixelCNNPrior(self.grid, self.codebook_size, filters=self.prior_filters, blocks=self.prior_blocks,
                             epochs=self.prior_epochs, seed=self.seed, name="prior")

    # ---- the objective -----------------------------------------------------------------------------
    def compute_losses(self, x, y=None, training=False):
        z_e = ops.cast(self.encoder(x, training=training)["z"], "float32")
        indices = self.nearest(z_e)
        z_q = self.code_vectors(indices)
        per_image = (1, 2, 3)
        codebook = ops.mean(ops.sum(ops.square(ops.stop_gradient(z_e) - z_q), axis=per_image))
        commitment = ops.mean(ops.sum(ops.square(z_e - ops.stop_gradient(z_q)), axis=per_image))
        straight_through = z_e + ops.stop_gradient(z_q - z_e)
        logits = ops.cast(self.decoder(straight_through, training=training), "float32")
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        one_hot = ops.one_hot(ops.reshape(indices, (-1,)), self.codebook_size)
        counts = ops.sum(one_hot, axis=0)
        if training:
            self._remember(z_e, one_hot, counts)
        loss = reconstruction + self.commitment * commitment + (0.0 if self.ema else codebook)
        return {"loss": loss, "reconstruction": reconstruction, "codebook": codebook, "commitment": commitment,
                "perplexity": counts, "dead_codes": counts}  # (the usage trackers turn counts into their figure)

    def _remember(self, z_e, one_hot, counts):
        """A training step's bookkeeping: this epoch's usage, codes to re-seed dead entries with, the EMA update."""
        flat = ops.reshape(ops.stop_gradient(z_e), (-1, self.latent_dim))
        self.usage.assign_add(counts)
        picks = keras.random.randint((self.codebook_size,), 0, ops.shape(flat)[0], seed=self.seed_generator)
        self.recent.assign(ops.take(flat, picks, axis=0))
        if self.ema:
            decay = self.ema_decay
            self.ema_counts.assign(decay * self.ema_counts + (1.0 - decay) * counts)
            self.ema_sums.assign(decay * self.ema_sums + (1.0 - decay) * ops.matmul(ops.transpose(one_hot), flat))
            total = ops.sum(self.ema_counts)  # Laplace smoothing keeps every count above 0
            smoothed = (self.ema_counts + 1e-5) / (total + self.codebook_size * 1e-5) * total
            self.codebook.assign(self.ema_sums / smoothed[:, None])

    def tracker(self, term: str) -> keras.metrics.Metric:
        if term in ("perplexity", "dead_codes"):
            return CodebookUsage(self.codebook_size, term)
        return super().tracker(term)

    def reseed_dead_entries(self) -> int:
        """Give every entry that no training code used this epoch a code the encoder made in its last step;
        returns how many there were, and starts the next epoch's count."""
        dead = np.asarray(self.usage.numpy() == 0)
        if dead.any():
            codebook = self.codebook.numpy()
            codebook[dead] = self.recent.numpy()[dead]
            self.codebook.assign(codebook)
            if self.ema:
                sums, counts = self.ema_sums.numpy(), self.ema_counts.numpy()
                sums[dead], counts[dead] = codebook[dead], 1.0
                self.ema_sums.assign(sums)
                self.ema_counts.assign(counts)
        self.usage.assign(np.zeros(self.codebook_size, "float32"))
        return int(dead.sum())

    def training_callbacks(self) -> list:
        return [CodebookCare()]

    def term_units(self) -> dict:
        unit = "squared error / image" if self.reconstruction == "mse" else "nats / image"
        return {"loss": unit, "reconstruction": unit, "codebook": "squared distance / image",
                "commitment": "squared distance / image", "perplexity": "entries", "dead_codes": "entries"}

    # ---- what evaluation asks --------------------------------------------------------------------
    def code_usage(self, x) -> dict:
        """Perplexity and unused entries of the codebook over the codes of images ``x``."""
        counts = np.bincount(in_batches(lambda b, _: self.encode(b), x).reshape(-1), minlength=self.codebook_size)
        return {"perplexity": float(perplexity(counts.astype("float32"))), "dead_entries": int((counts == 0).sum()),
                "entries": self.codebook_size, "bits_per_image": self.code.bits, "images": len(x)}

    def findings(self, metrics: dict) -> list[str]:
        lines = super().findings(metrics)
        usage = metrics.get("model", {}).get("codebook")
        if usage:
            lines.append(f"codebook: perplexity {usage['perplexity']:.1f} of {usage['entries']} entries, "
                         f"{usage['dead_entries']} unused on {usage['images']} test images; "
                         f"{usage['bits_per_image']:g} bits per image")
            if usage["perplexity"] < COLLAPSED_PERPLEXITY:
                lines.append(collapse_warning(usage["perplexity"], usage["entries"]))
        return lines

    def model_metrics(self, x, labels=None) -> dict:
        return {"codebook": self.code_usage(x)}


def collapse_warning(value: float, entries: int) -> str:
    return (f"WARNING: the codebook collapsed: perplexity {value:.2f} of {entries} entries, so nearly every code is "
            "one entry; try --ema, a lower --learning-rate or a smaller --commitment")


def _residual(x, filters: int, activation: str, name: str):
    """x + conv1x1(act(conv3x3(act(x)))): the residual block of the paper's encoder and decoder."""
    h = layers.Activation(activation)(x)
    h = layers.Conv2D(filters, 3, padding="same", name=f"{name}_3x3")(h)
    h = layers.Activation(activation)(h)
    h = layers.Conv2D(filters, 1, name=f"{name}_1x1")(h)
    return layers.Add(name=name)([x, h])


class CodebookCare(keras.callbacks.Callback):
    """Re-seed the dead codebook entries after every epoch; warn at the end of training if the codebook collapsed."""

    def on_epoch_end(self, epoch, logs=None):
        dead = self.model.reseed_dead_entries()
        if dead:
            log.info("codebook: %d unused entries re-seeded with codes of the last step", dead)
        self.last = (logs or {}).get("perplexity")

    def on_train_end(self, logs=None):
        value = getattr(self, "last", None)
        if value is not None and math.isfinite(value) and value < COLLAPSED_PERPLEXITY:
            log.warning("%s", collapse_warning(value, self.model.codebook_size))
