"""PCA as a model of the zoo: the linear baseline every autoencoder is compared with.

Encoder z = (x - mu) W and decoder x_hat = z W^T + mu, where the columns of W are the top
``latent_dim`` principal directions of the training images. ``fit`` computes them in closed form
(scikit-learn's PCA on the whole training split), then runs one Keras pass over the data so the run
folder gets the same history, checkpoints and TensorBoard logs as every other model. It exports,
evaluates and plots like the others.

To keep the zoo's decoder contract (logits, turned into images by a sigmoid) the decoder outputs
logit(clip(x_hat, 1e-6, 1 - 1e-6)): images equal PCA's reconstruction clipped to the pixel range.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
from keras import layers, ops

from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, as_pixels
from keras_ae.options import Option, random_seed

log = logging.getLogger("keras_ae")
_EPSILON = 1e-6


@keras.saving.register_keras_serializable(package="keras_ae")
class ClippedLogit(layers.Layer):
    """logit(clip(x, eps, 1 - eps)): pixel values as logits, so that sigmoid gives them back clipped.

    A registered layer rather than a Lambda, so .keras files load in Keras's safe mode.
    """

    def call(self, x):
        x = ops.clip(x, _EPSILON, 1.0 - _EPSILON)
        return ops.log(x) - ops.log1p(-x)


@keras.saving.register_keras_serializable(package="keras_ae")
class PCA(Autoencoder):
    """Principal component analysis with ``latent_dim`` components, fitted in closed form.

    ``reconstruction`` is the loss reported (``"mse"`` by default); the network options other than
    ``latent_dim`` do not apply.

    Args:
        input_shape: (H, W, C) of the images.
    """

    architecture = "linear"  # what reports show
    dropped_options = ("arch", "widths", "dense_units", "down", "up", "activation", "code_activation",
                       "output_std")  # its maps are linear and fitted in closed form: no network to shape
    test_options = {"latent_dim": 8}
    options = {"seed": Option("seed of the randomized SVD solver (used for large inputs)", random_seed, default=0)}

    def validate(self):
        if self.num_classes is not None:
            raise ConfigError("PCA is not conditional; it takes no num_classes")
        if any(self.custom.values()):
            raise ConfigError("PCA's encoder and decoder are its linear maps; it takes no networks of your own")
        super().validate()
        if self.latent_dim > self.input_dim:
            raise ConfigError(f"PCA has at most {self.input_dim} components for {self.image_shape} "
                              f"images, asked for {self.latent_dim}")

    def build_networks(self):
        images = keras.Input(self.image_shape, name="images")
        flat = layers.Flatten(name="flatten")(images)
        encoder = keras.Model(images, {"z": layers.Dense(self.latent_dim, name="z")(flat)}, name="encoder")
        z = keras.Input((self.latent_dim,), name="z")
        mean_image = layers.Dense(self.input_dim, name="components")(z)
        logits = ClippedLogit(name="clipped_logits")(mean_image)
        decoder = keras.Model(z, layers.Reshape(self.image_shape, name="logits")(logits), name="decoder")
        return encoder, decoder

    def fit(self, x=None, y=None, epochs=1, **kwargs):
        """Fit the principal directions on all of ``x`` (a dataset or an array), then one reporting pass."""
        from sklearn.decomposition import PCA as SklearnPCA

        images = _all_images(x)
        if len(images) < self.latent_dim:
            raise ConfigError(f"PCA with {self.latent_dim} components needs at least that many training "
                              f"images, got {len(images)}")
        pca = SklearnPCA(self.latent_dim, random_state=self.seed).fit(images.reshape(len(images), -1))
        components, mean = pca.components_.T.astype("float32"), pca.mean_.astype("float32")
        self.encoder.get_layer("z").set_weights([components, -mean @ components])
        self.decoder.get_layer("components").set_weights([components.T, mean])
        log.info("PCA: %d components explain %.1f%% of the variance", self.latent_dim,
                 100 * float(pca.explained_variance_ratio_.sum()))
        if epochs != 1:
            log.info("PCA is fitted in closed form: one pass over the data instead of %d epochs", epochs)
        return super().fit(x, y, epochs=1, **kwargs)

    def train_step(self, data):
        """No gradient step: the fit is closed-form; this only reports the training loss."""
        return self.test_step(data)

    def findings(self, metrics: dict) -> list[str]:
        """None of the autoencoders' own: this model is the PCA baseline they are measured against."""
        return []


def _all_images(x) -> np.ndarray:
    """The images of an array, or of a tf.data pipeline of ``images`` or ``(images, labels)`` batches."""
    if isinstance(x, np.ndarray):
        return np.asarray(as_pixels(x))
    return np.concatenate([np.asarray(as_pixels(batch[0] if isinstance(batch, tuple) else batch)) for batch in x])
