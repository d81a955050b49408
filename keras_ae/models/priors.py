"""Priors: how a model of the zoo draws new codes, part of every model's contract (``model.prior``).

A VAE's prior is :class:`StandardNormal`, or with ``mixture_prior=K`` a :class:`GaussianMixture` whose
weights are trained with the model. A plain autoencoder has none of its own, so it gets
:class:`FittedGaussian`, the Gaussian of its training codes, fitted when training ends
(``Autoencoder.fit_prior``, which :func:`keras_ae.train.train` calls) and saved with the model as
weights. Evaluation, figures, export and generation ask the prior; none refits it from data or asks
which model it belongs to.

Every prior is a Keras layer with

- ``describe()``: the JSON description an export writes to metadata.json (``sampling``), from which
  :func:`keras_ae.serving.sample_codes` draws codes without Keras;
- ``sample(num, seed)``: float32 codes (num, latent), drawn from that very description, so a model and
  its exported client draw the same codes for the same seed;
- ``principal_plane()``: centre, two main directions and their spreads (the manifold figure's grid);
- ``fit(code_batches)``: learn from the training codes; a fixed prior ignores them (and never iterates).

A categorical or autoregressive prior (a VQ-VAE's) is a subclass with its own ``fit`` and ``sample``
and a description that names the artifact which samples it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_ae import losses, serving
from keras_ae.errors import ConfigError


class Prior(keras.layers.Layer):
    """p(z) over codes of size ``latent_dim``."""

    label = "the prior"  # how figures name it
    density_model = None  # a prior that is a model of its own (a PixelCNN over a code grid), exported beside the decoder
    sampling_passes = 1  # sequential network passes one code takes

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)

    @property
    def fitted(self) -> bool:
        """Whether ``sample`` and ``describe`` can be used (a fitted prior must have seen codes)."""
        return True

    def fit(self, code_batches) -> None:
        """Learn the prior from an iterable of code batches (N, latent); a fixed prior learns nothing."""

    def describe(self) -> dict:
        raise NotImplementedError

    def sample(self, num: int, seed: int | None = 0) -> np.ndarray:
        return serving.sample_codes(self.describe(), num, seed)

    def kl(self, mean, log_var, z):
        """KL(q(z|x) || p(z)) per image in nats for q = N(mean, exp(log_var)): the one-sample estimate
        log q(z|x) - log p(z) at ``z`` drawn from q (a prior with a closed form gives that instead)."""
        return -losses.gaussian_nll(z, mean, log_var) - self.log_prob(z)

    def principal_plane(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim}


@keras.saving.register_keras_serializable(package="keras_ae")
class StandardNormal(Prior):
    """N(0, I): the prior of a VAE, with its log-density for the importance-weighted likelihood."""

    label = "N(0, I)"

    def describe(self) -> dict:
        return {"prior": "normal", "mean": [0.0] * self.latent_dim, "std": [1.0] * self.latent_dim}

    def log_prob(self, z):
        """log N(z; 0, I) per code, summed over latent units, in nats."""
        return -losses.gaussian_nll(z, ops.zeros_like(z), 0.0)

    def kl(self, mean, log_var, z):
        """The closed form, summed over latent units (``z`` is not needed)."""
        return losses.kl_to_standard_normal(mean, log_var)

    def principal_plane(self):
        return np.zeros(self.latent_dim), np.eye(self.latent_dim)[:2], np.ones(2)


@keras.saving.register_keras_serializable(package="keras_ae")
class FittedGaussian(Prior):
    """N(mean, covariance) of the codes of the training images; weights of the model, saved with it.

    :meth:`fit` starts afresh and :meth:`update` adds each batch of codes with Chan et al.'s pairwise
    update of the mean and the centred sum of squares (float64), so a training split of any size is
    fitted in one pass in bounded memory. ``count`` is 0 until it has seen codes.
    """

    label = "a Gaussian fitted to the training codes"

    def __init__(self, latent_dim: int, **kwargs):
        super().__init__(latent_dim, **kwargs)
        size = self.latent_dim
        self.count = self.add_weight(shape=(), dtype="float64", initializer="zeros", trainable=False, name="count")
        self.mean = self.add_weight(shape=(size,), dtype="float64", initializer="zeros", trainable=False,
                                    name="mean")
        self.scatter = self.add_weight(shape=(size, size), dtype="float64", initializer="zeros", trainable=False,
                                       name="scatter")  # sum of (z - mean)(z - mean)^T

    @property
    def fitted(self) -> bool:
        return float(self.count.numpy()) >= 2

    def fit(self, code_batches) -> None:
        for variable in (self.count, self.mean, self.scatter):
            variable.assign(ops.zeros_like(variable))
        for codes in code_batches:
            self.update(codes)

    def update(self, codes: np.ndarray) -> None:
        """Add a batch of codes (N, latent) to the fit."""
        codes = np.asarray(codes, np.float64).reshape(len(codes), self.latent_dim)
        if len(codes) == 0:
            return
        n, mean, scatter = float(self.count.numpy()), self.mean.numpy(), self.scatter.numpy()
        batch_mean = codes.mean(axis=0)
        centred = codes - batch_mean
        total, delta = n + len(codes), batch_mean - mean
        self.count.assign(total)
        self.mean.assign(mean + delta * len(codes) / total)
        self.scatter.assign(scatter + centred.T @ centred + np.outer(delta, delta) * n * len(codes) / total)

    def covariance(self) -> np.ndarray:
        return self.scatter.numpy() / (float(self.count.numpy()) - 1)

    def describe(self) -> dict:
        if not self.fitted:
            raise ConfigError("this model's prior has not been fitted: call model.fit_prior(training images) "
                              "after training (keras_ae.train.train does)")
        return {"prior": "empirical_gaussian", "mean": self.mean.numpy().tolist(),
                "covariance": self.covariance().tolist(),
                "fitted_on": f"codes of the {int(self.count.numpy())} images of the training split"}

    def principal_plane(self):
        variances, directions = np.linalg.eigh(self.covariance())
        order = np.argsort(variances)[::-1][:2]
        return self.mean.numpy(), directions[:, order].T, np.sqrt(np.maximum(variances[order], 0.0))


@keras.saving.register_keras_serializable(package="keras_ae")
class GaussianMixture(Prior):
    """A learned prior: sum_k w_k N(mean_k, diag(std_k^2)) over ``components`` Gaussians, trained with the VAE.

    A prior that fits the aggregate posterior wastes fewer nats of KL than N(0, I) (Tomczak & Welling
    2018 compare it with their VampPrior); the VAE then estimates the KL from the sampled code.
    The means start spread as N(0, I) draws (seeded), the spreads at 1 and the weights equal.
    """

    label = "the learned mixture prior"

    def __init__(self, latent_dim: int, components: int = 10, seed: int = 0, **kwargs):
        super().__init__(latent_dim, **kwargs)
        self.components, self.seed = int(components), int(seed)
        if self.components < 1:
            raise ConfigError(f"a mixture prior needs >= 1 component, got {components}")
        self.logits = self.add_weight(shape=(self.components,), initializer="zeros", name="logits")
        self.means = self.add_weight(shape=(self.components, self.latent_dim), name="means",
                                     initializer=keras.initializers.RandomNormal(seed=self.seed))
        self.log_vars = self.add_weight(shape=(self.components, self.latent_dim), initializer="zeros",
                                        name="log_vars")

    def log_prob(self, z):
        """log p(z) per code, in nats: log-sum-exp over the components of log w_k + log N(z; mean_k, std_k^2)."""
        count = ops.shape(z)[0]
        # every code against every component: row i * components + k pairs code i with component k
        nll = losses.gaussian_nll(ops.repeat(z, self.components, axis=0), ops.tile(self.means, (count, 1)),
                                  ops.tile(self.log_vars, (count, 1)))
        return ops.logsumexp(ops.reshape(-nll, (count, self.components)) + ops.log_softmax(self.logits), axis=-1)

    def _parameters(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = self.logits.numpy().astype(np.float64)
        weights = np.exp(logits - logits.max())
        return weights / weights.sum(), self.means.numpy().astype(np.float64), \
            np.exp(0.5 * self.log_vars.numpy().astype(np.float64))

    def describe(self) -> dict:
        weights, means, std = self._parameters()
        return {"prior": "mixture", "weights": weights.tolist(), "means": means.tolist(), "std": std.tolist()}

    def principal_plane(self):
        weights, means, std = self._parameters()
        centre = weights @ means
        spread = means - centre
        covariance = np.diag(weights @ std**2) + (weights[:, None] * spread).T @ spread
        variances, directions = np.linalg.eigh(covariance)
        order = np.argsort(variances)[::-1][:2]
        return centre, directions[:, order].T, np.sqrt(np.maximum(variances[order], 0.0))

    def get_config(self):
        return {**super().get_config(), "components": self.components, "seed": self.seed}
