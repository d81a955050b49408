"""Reference implementations of the conv VAE that ``benchmarks/performance.py`` races keras_ae against.

The model is the keras-io example VAE ("Variational AutoEncoder", fchollet): 28x28x1 images,
Conv 32 and 64 (3x3, stride 2, relu), Dense 16, a 2-D latent; a decoder mirroring it with stride-2
transposed convolutions; Bernoulli reconstruction loss summed over pixels plus the closed-form KL,
averaged over the batch; Adam(1e-3). Both references have exactly the layers (and so the parameter
count and FLOPs) of ``keras_ae.models.VAE((28, 28, 1), latent_dim=2, arch="conv", widths=(32, 64),
dense_units=16)``; ``performance.py`` asserts the parameter counts are equal. One detail of
keras_ae's network differs from the keras-io notebook and is copied here so all three do the same
work: the decoder starts with a Dense(16) (keras_ae mirrors the encoder's Dense). The output layer
is the notebook's stride-1 3x3 ``Conv2DTranspose``, as in keras_ae.

- :func:`keras_io_vae`: the plain-Keras pattern of the keras-io example: a ``Sampling`` layer,
  functional encoder/decoder models and a ``train_step`` with ``tf.GradientTape``, BCE on the
  sigmoid output summed over pixels (as the notebook computes it), three ``Mean`` trackers.
- :func:`torch_vae`: the same network as a PyTorch ``nn.Module`` (NCHW), trained by a plain eager
  loop (:func:`torch_train_step`). Imports torch only when called.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops


@keras.saving.register_keras_serializable(package="keras_ae_benchmarks")
class Sampling(layers.Layer):
    """z = z_mean + exp(z_log_var / 2) * eps, eps ~ N(0, I) (the keras-io layer)."""

    def __init__(self, seed=1337, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


def conv_sizes(image_shape, widths):
    """Spatial size after each stride-2 stage, starting with the input's (as keras_ae's NetworkSpec)."""
    sizes = [tuple(image_shape[:2])]
    for _ in widths:
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def keras_io_encoder(image_shape, latent_dim, widths, dense_units):
    """Images -> [z_mean, z_log_var, z]: the keras-io encoder, a functional model."""
    inputs = keras.Input(shape=image_shape)
    x = inputs
    for filters in widths:
        x = layers.Conv2D(filters, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(dense_units, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    return keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")


def keras_io_decoder(image_shape, latent_dim, widths, dense_units):
    """z -> images in [0, 1] (sigmoid output, as in the keras-io notebook)."""
    sizes = conv_sizes(image_shape, widths)
    (h, w), top = sizes[-1], widths[-1]
    latent_inputs = keras.Input(shape=(latent_dim,))
    x = layers.Dense(dense_units, activation="relu")(latent_inputs)
    x = layers.Dense(h * w * top, activation="relu")(x)
    x = layers.Reshape((h, w, top))(x)
    for filters, (target_h, target_w) in zip(reversed(widths), reversed(sizes[:-1])):
        x = layers.Conv2DTranspose(filters, 3, activation="relu", strides=2, padding="same")(x)
        if x.shape[1] != target_h or x.shape[2] != target_w:  # odd sizes (7 -> 4 -> 8): crop back to 7
            x = layers.Cropping2D(((0, x.shape[1] - target_h), (0, x.shape[2] - target_w)))(x)
    outputs = layers.Conv2DTranspose(image_shape[-1], 3, activation="sigmoid", padding="same")(x)
    return keras.Model(latent_inputs, outputs, name="decoder")


class KerasIOVAE(keras.Model):
    """The keras-io ``VAE(keras.Model)``: encoder, decoder and a hand-written ``train_step``."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def call(self, x, training=False):
        return self.decoder(self.encoder(x, training=training)[2], training=training)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(
                ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {
            "loss": self.total_loss_tracker.result(),
            "reconstruction_loss": self.reconstruction_loss_tracker.result(),
            "kl_loss": self.kl_loss_tracker.result(),
        }


def keras_io_vae(image_shape=(28, 28, 1), latent_dim=2, widths=(32, 64), dense_units=16) -> KerasIOVAE:
    """The plain-Keras reference VAE (not compiled)."""
    return KerasIOVAE(keras_io_encoder(image_shape, latent_dim, widths, dense_units),
                      keras_io_decoder(image_shape, latent_dim, widths, dense_units))


def torch_vae(image_shape=(28, 28, 1), latent_dim=2, widths=(32, 64), dense_units=16):
    """The same VAE as a PyTorch module (NCHW input); ImportError when torch is not installed."""
    import torch
    from torch import nn

    height, width, channels = image_shape
    sizes = conv_sizes(image_shape, widths)
    (h, w), top = sizes[-1], widths[-1]

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            stages, in_channels = [], channels
            for filters in widths:  # padding=1 with stride 2 gives ceil(size / 2), as Keras's "same"
                stages += [nn.Conv2d(in_channels, filters, 3, stride=2, padding=1), nn.ReLU()]
                in_channels = filters
            self.features = nn.Sequential(*stages, nn.Flatten(), nn.Linear(h * w * top, dense_units), nn.ReLU())
            self.z_mean = nn.Linear(dense_units, latent_dim)
            self.z_log_var = nn.Linear(dense_units, latent_dim)
            self.project = nn.Sequential(nn.Linear(latent_dim, dense_units), nn.ReLU(),
                                         nn.Linear(dense_units, h * w * top), nn.ReLU())
            ups, in_channels, size = [], top, (h, w)
            for filters, target in zip(reversed(widths), reversed(sizes[:-1])):
                # output_padding makes (size - 1) * 2 - 2 + 3 + output_padding == target exactly.
                extra = tuple(t - (2 * s - 1) for t, s in zip(target, size))
                ups += [nn.ConvTranspose2d(in_channels, filters, 3, stride=2, padding=1, output_padding=extra),
                        nn.ReLU()]
                in_channels, size = filters, target
            self.upsample = nn.Sequential(*ups)
            self.logits = nn.ConvTranspose2d(in_channels, channels, 3, padding=1)

        def encode(self, x):
            features = self.features(x)
            return self.z_mean(features), self.z_log_var(features)

        def decode_logits(self, z):
            return self.logits(self.upsample(self.project(z).view(-1, top, h, w)))

    model = TorchVAE()
    with torch.no_grad():  # shape check: a wrong padding would fail here, not in the middle of a benchmark
        out = model.decode_logits(model.encode(torch.zeros(2, channels, height, width))[0])
    if tuple(out.shape) != (2, channels, height, width):
        raise AssertionError(f"torch reference decodes to {tuple(out.shape)}, expected {(2, channels, height, width)}")
    return model


def torch_train_step(model, optimizer, x):
    """One eager training step: reparameterized sample, BCE on logits summed over pixels + KL, Adam."""
    import torch
    import torch.nn.functional as F

    optimizer.zero_grad(set_to_none=True)
    z_mean, z_log_var = model.encode(x)
    z = z_mean + torch.exp(0.5 * z_log_var) * torch.randn_like(z_mean)
    logits = model.decode_logits(z)
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
    kl = (-0.5 * (1 + z_log_var - z_mean.square() - z_log_var.exp())).sum(dim=1).mean()
    loss = reconstruction + kl
    loss.backward()
    optimizer.step()
    return loss
