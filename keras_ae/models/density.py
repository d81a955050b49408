"""The family of autoregressive densities: p(x) = prod_i p(x_i | x_<i), exact, with no code.

A member (the PixelCNN, the PixelRNN, a PixelCNN prior over a VQ-VAE's code grid) builds its
``network``: in one pass, the logits of every element given the elements before it, (N, H, W, C) of
p(1) for binary elements or (N, H, W, C, levels) (``density_logits``). It declares
what it is a density over in ``self.density`` (:class:`keras_ae.contract.Density`). Everything
else is shared here: the objective (-log p(x) in nats, summed over the elements of an image and
averaged over the batch), ``log_prob``, the report's exact likelihood, the outlier score, and
sampling and completion through the one sampler, :mod:`keras_ae.autoregressive`.

Binary densities are trained on images binarized afresh at every step and scored on one seeded
binarization of the test images, as the VAE's likelihood is.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import autoregressive, losses, serving
from keras_ae.contract import Likelihood, bits_per_dim
from keras_ae.errors import ConfigError
from keras_ae.models.base import ZooModel, binarize, binarized_once, in_batches

log = logging.getLogger("keras_ae")


class DensityModel(ZooModel):
    """An exact density over images (or codes), trained by maximum likelihood and sampled element by element."""

    loss_terms = ("loss", "nll", "bits_per_dim")
    outlier_score_name = "-log p(x) (nats)"
    density = None  # the Density this model is over, set by the subclass's build_model

    def validate(self):
        super().validate()
        if any(self.custom.values()):
            raise ConfigError(f"{type(self).__name__} is a density with a network of its own; it takes no encoder "
                              "or decoder")

    def density_logits(self, values, labels=None, training=False):
        """Logits of every element given the elements before it, in float32: the subclass's ``network`` (values,
        and the one-hot labels of a conditional model, in; (N, H, W, C) or (N, H, W, C, levels) out)."""
        return ops.cast(self.network(self.conditioned(ops.convert_to_tensor(values, "float32"), labels),
                                     training=training), "float32")

    @property
    def sampling_passes(self) -> int:
        return self.density.positions

    def observed(self, x):
        """What the density is over: binary elements (grey ones thresholded at 0.5: binarize images first to
        score them as a binary model is trained) or the nearest of the levels."""
        levels = self.density.levels
        if self.density.binary:
            return ops.cast(x >= 0.5, "float32")
        return ops.round(ops.clip(x, 0.0, 1.0) * (levels - 1)) / (levels - 1)

    def log_prob(self, x, labels=None, training=False):
        """log p(x) in nats per image of the ``observed`` elements: one network pass, exact."""
        x = self.observed(ops.convert_to_tensor(x, "float32"))
        logits = self.density_logits(x, labels, training=training)
        if self.density.binary:
            return -losses.bernoulli_nll(x, logits)
        return -losses.categorical_nll(x, logits, self.density.levels)

    def call(self, inputs, training=False):
        """Images (and labels) -> the logits of every element given those before it."""
        images, labels = inputs if self.num_classes is not None else (inputs, None)
        return self.density_logits(images, labels, training=training)

    def compute_losses(self, x, y=None, training=False):
        if self.density.binary:
            x = binarize(x, self.seed_generator)
        nll = -ops.mean(self.log_prob(x, y, training=training))
        return {"loss": nll, "nll": nll, "bits_per_dim": bits_per_dim(nll, self.dims)}

    @property
    def dims(self) -> int:
        return self.density.positions

    def outlier_score(self, x, labels=None):
        """-log p(x) per image (of ``x`` thresholded at 0.5 for a binary density: deterministic)."""
        return -self.log_prob(x, labels)

    def likelihood_report(self, x, labels=None, num_samples: int = 100, seed: int = 0) -> Likelihood:
        """The exact negative log-likelihood of ``x``; a binary density is scored on one fixed binarization
        of ``x`` (seeded), the one the VAE's report uses. ``num_samples`` is not used: nothing is estimated."""
        if self.density.binary:
            x = binarized_once(x, seed)
        nll = float(-in_batches(self.log_prob, np.asarray(x, "float32"), self.checked_labels(labels, len(x))).mean())
        return Likelihood(nll, bits_per_dim(nll, self.dims), "exact", "exact", self.density.binary)

    def findings(self, metrics: dict) -> list[str]:
        likelihood = Likelihood.from_json(metrics["likelihood"])
        return [f"exact test negative log-likelihood {likelihood.nll:.2f} nats per image "
                f"({likelihood.bits_per_dim:.4f} bits/dim); sampling takes {metrics['sampling']['seconds_per_image']:.3g} "
                f"s per image, {self.sampling_passes} network passes one after another"]

    # ---- generation: one element at a time, by the one sampler ------------------------------------
    @tf.function(reduce_retracing=True)
    def _fill(self, values, uniforms, start, labels):
        return autoregressive.fill(lambda v: self.density_logits(v, labels), self.density, values, uniforms, start)

    def complete(self, x, given_rows: int, labels=None, seed=None) -> np.ndarray:
        """Images whose rows from ``given_rows`` on are drawn element by element given the rows above them
        (``given_rows=0`` samples new ones); the uniforms come from ``seed`` as an export's client draws them."""
        x = np.array(self.observed(np.asarray(x, "float32")), "float32")
        labels = self.checked_labels(labels, len(x))
        rows, cols, channels = self.density.shape
        if not 0 <= given_rows <= rows:
            raise ConfigError(f"given_rows must be in [0, {rows}], got {given_rows}")
        x[:, given_rows:] = 0.0
        start = time.monotonic()
        drawn = np.asarray(self._fill(x, serving.uniforms(seed, len(x), self.density.shape),
                                      tf.constant(given_rows * cols * channels), labels))
        if given_rows < rows and len(x):
            seconds = time.monotonic() - start
            log.info("sampling: %d images, %d network passes in %.1f s (%.3f s per image)", len(x),
                     (rows - given_rows) * cols * channels, seconds, seconds / len(x))
        return drawn

    def sample(self, num: int, labels=None, seed=None) -> np.ndarray:
        """``num`` new images drawn element by element (with ``labels`` when conditional; one label for all)."""
        return self.complete(np.zeros((num, *self.density.shape), "float32"), 0, labels, seed)

    def figure_rows(self, x, labels=None) -> dict:
        """Test images and their bottom halves drawn by the model given the top halves."""
        top = self.density.shape[0] // 2
        if self.density.binary:
            x = binarized_once(x)
        given = np.where(np.arange(self.density.shape[0])[:, None, None] < top, x, 0.0)
        return {"original": x, "top half given": given, "completed": self.complete(x, top, labels, seed=0)}

    def term_units(self) -> dict:
        return {"loss": "nats / image", "nll": "nats / image", "bits_per_dim": "bits / dim"}
