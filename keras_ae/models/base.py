"""The base class of the zoo: an encoder, a decoder, named loss terms and the training step.

Every model of keras_ae is a subclass of :class:`Autoencoder`. A subclass states its objective in
:meth:`Autoencoder.compute_losses` (a dict of named, batch-averaged terms whose ``"loss"`` entry is
minimised) and lists the term names in ``loss_terms``; the shared ``train_step``/``test_step``
turn that into gradients and per-epoch metrics, correctly under a ``tf.distribute`` strategy.

Reduction rule (see :mod:`keras_ae.losses`): terms are summed over pixels / latent units per
example and averaged over the batch.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import ConfigError
from keras_ae.networks import NetworkSpec, build_decoder, build_encoder

RECONSTRUCTION_LOSSES = ("mse", "bce", "gaussian")


def non_negative(option: str, value) -> float:
    """``value`` as a float, or a ConfigError naming ``option`` when it is negative, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise ConfigError(f"{option} must be a finite number >= 0, got {value!r}")
    return number


def _share_of_global_batch(loss, batch_size):
    """This replica's batch-mean ``loss`` weighted by its share of the global batch.

    Keras (TensorFlow backend) sums gradients over replicas; weighting each replica's mean by
    local / global batch size makes the sum the gradient of the global-batch mean, as on one device,
    also when the last batch splits unevenly across replicas.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    local = ops.cast(batch_size, loss.dtype)
    return loss * local / context.all_reduce(tf.distribute.ReduceOp.SUM, local)


@keras.saving.register_keras_serializable(package="keras_ae")
class Autoencoder(keras.Model):
    """Undercomplete autoencoder: ``x -> z = e(x) -> x_hat = sigmoid(d(z))``.

    Args:
        input_shape: (H, W, C) of the images, pixels in [0, 1].
        latent_dim: size of the code z.
        arch, widths, dense_units, down, up, activation, code_activation: the networks (see
            :class:`keras_ae.networks.NetworkSpec`).
        reconstruction: ``"mse"`` (squared error summed over pixels), ``"bce"`` (Bernoulli
            negative log-likelihood in nats, summed over pixels) or ``"gaussian"`` (Gaussian negative
            log-likelihood in nats with mean sigmoid(logits) and one variance for all pixels).
        output_std: with ``"gaussian"``: the fixed standard deviation of every pixel; ``None``
            learns it (a single trained log-variance).
        num_classes: make the model conditional: encoder and decoder also take a label in
            ``range(num_classes)``, given to them one-hot.

    Example:
        >>> model = Autoencoder((28, 28, 1), latent_dim=30, arch="conv")
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, validation_data=val_ds, epochs=10)
        >>> codes = model.encode(images)
    """

    heads = ("z",)
    loss_terms = ("loss", "reconstruction")
    needs_labels = False  # conditional models must be trained on labelled data

    def __init__(self, input_shape, latent_dim=16, arch="mlp", widths=None, dense_units=0, down="strided",
                 up="transpose", activation="relu", code_activation="linear", reconstruction="mse", output_std=None,
                 num_classes=None, **kwargs):
        super().__init__(**kwargs)
        self.spec = NetworkSpec(tuple(input_shape), latent_dim, arch, None if widths is None else tuple(widths),
                                dense_units, down, up, activation, code_activation)
        if reconstruction not in RECONSTRUCTION_LOSSES:
            raise ConfigError(f"unknown reconstruction loss {reconstruction!r}; choose one of "
                              f"{', '.join(RECONSTRUCTION_LOSSES)}")
        self.reconstruction = reconstruction
        if num_classes is not None and int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2 for a conditional model, got {num_classes}")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.output_std = None if output_std is None else float(output_std)
        if self.output_std is not None and not self.output_std > 0:
            raise ConfigError(f"output_std must be > 0, got {output_std}")
        if reconstruction == "gaussian":
            initial = 0.0 if self.output_std is None else 2.0 * math.log(self.output_std)
            self.output_log_var = self.add_weight(shape=(), initializer=keras.initializers.Constant(initial),
                                                  trainable=self.output_std is None, name="output_log_var")
        self.encoder, self.decoder = self.build_networks()
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.loss_terms}
        self.built = True  # the networks are built at construction; lets .keras files restore optimizer state

    def build_networks(self):
        """The (encoder, decoder) pair for ``self.spec``; PCA overrides it with its linear maps."""
        return build_encoder(self.spec, self.heads, self.num_classes), build_decoder(self.spec, self.num_classes)

    # ---- the uniform contract: encode, decode, reconstruct -------------------------------------
    def conditioned(self, tensor, labels):
        """The network input for ``tensor``: itself, or ``[tensor, one_hot(labels)]`` for a conditional model."""
        if self.num_classes is None:
            return tensor
        if labels is None:
            raise ConfigError(f"{self.name} is conditional on labels (num_classes={self.num_classes}); "
                              "give labels with the images or codes")
        return [ops.convert_to_tensor(tensor), ops.one_hot(ops.cast(labels, "int32"), self.num_classes)]

    def encode(self, x, labels=None, training=False):
        """Images -> code z (deterministic: a VAE returns its posterior mean)."""
        return self.encode_heads(x, labels, training)[self.heads[0]]

    def encode_heads(self, x, labels=None, training=False) -> dict:
        """Every head of the encoder, in float32 whatever the compute precision (mixed precision)."""
        heads = self.encoder(self.conditioned(x, labels), training=training)
        return {name: ops.cast(value, "float32") for name, value in heads.items()}

    def decode_logits(self, z, labels=None, training=False):
        """Decoder logits in float32 (losses are computed in float32 under mixed precision)."""
        return ops.cast(self.decoder(self.conditioned(z, labels), training=training), "float32")

    def decode(self, z, labels=None, training=False):
        """Code z -> images in [0, 1]."""
        return ops.sigmoid(self.decode_logits(z, labels, training=training))

    def reconstruct(self, x, labels=None, training=False):
        return self.decode(self.encode(x, labels, training=training), labels, training=training)

    def call(self, x, training=False):
        return self.reconstruct(x, training=training)

    def figure_rows(self, x, labels=None) -> dict:
        """Rows of images that show what this model does to ``x`` (for the run folder's figure)."""
        return {"original": x, "reconstructed": self.reconstruct(x, labels)}

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse, before training starts, a batch size this model cannot train with (no limit here)."""

    def training_callbacks(self) -> list:
        """Keras callbacks this model needs during ``fit`` (e.g. a KL warm-up schedule)."""
        return []

    # ---- the objective ---------------------------------------------------------------------------
    def reconstruction_error(self, x, logits):
        """Per-image reconstruction term of this model's loss, from decoder logits."""
        if self.reconstruction == "bce":
            return losses.bernoulli_nll(x, logits)
        if self.reconstruction == "gaussian":
            return losses.gaussian_nll(x, ops.sigmoid(logits), self.output_log_var)
        return losses.squared_error(x, ops.sigmoid(logits))

    def compute_losses(self, x, y=None, training=False) -> dict:
        """Named loss terms, averaged over the batch; ``"loss"`` is what training minimises.

        ``y`` holds the labels; only conditional models use them.
        """
        logits = self.decode_logits(self.encode(x, y, training=training), y, training=training)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        return {"loss": reconstruction, "reconstruction": reconstruction}

    # ---- the shared training mechanics -------------------------------------------------------
    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            terms = self.compute_losses(x, y, training=True)
            loss = self.optimizer.scale_loss(_share_of_global_batch(terms["loss"], ops.shape(x)[0]))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._track(terms, x)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Build only the optimizer, in the strategy's scope.

        Keras's own version (TensorFlow trainer) draws one batch from the training iterator when a
        distribution strategy is set, to trace the model: that shifts the seeded shuffle by one
        epoch (so a mirrored run would see other batches than a single-device one) and fails under
        MultiWorkerMirroredStrategy. Our networks and metrics are built at construction, so only the
        optimizer's variables remain to be created.
        """
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(self.compute_losses(x, y, training=False), x)

    def _track(self, terms, x):
        """Update the per-epoch means (summed across replicas by Keras) and return them for the progress bar."""
        batch = ops.cast(ops.shape(x)[0], "float32")
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=batch)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3.15 reduces step outputs of multi-worker training along axis 0, which scalars lack.
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    @property
    def metrics(self):
        return list(self.trackers.values())

    # ---- serialization -----------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, **self.spec.to_config(), "reconstruction": self.reconstruction,
                "output_std": self.output_std, "num_classes": self.num_classes}
