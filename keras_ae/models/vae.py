"""Variational autoencoders: the VAE / beta-VAE (Kingma & Welling 2014) and the conditional VAE.

The encoder gives q(z|x) = N(z_mean, exp(z_log_var)); a code is drawn with the reparameterization
trick z = mean + sigma * eps, so gradients reach both mean and sigma; the decoder gives p(x|z),
Bernoulli (``reconstruction="bce"``) or Gaussian (``"gaussian"``); the prior p(z) is N(0, I), or with
``mixture_prior=K`` a mixture of K Gaussians learned with the model. The objective, per image:

    loss = reconstruction + beta * w * KL(q(z|x) || p(z)),   ELBO = -(reconstruction + KL)

with the reconstruction -log p(x|z) summed over pixels and the KL (closed form, summed over latent
units, for N(0, I); log q(z|x) - log p(z) at the sampled z for the learned prior), both in nats,
then averaged over the batch. w ramps from 0 to 1 over ``kl_warmup_epochs``
(:class:`KLWarmup`); ``free_bits`` keeps each unit's batch-mean KL at or above that many nats in
the loss (Kingma et al. 2016), so the optimiser stops pushing units into collapse.

Evaluation (:meth:`VAE.likelihood_report`) gives the ELBO and the importance-weighted estimate of
log p(x) (Burda et al. 2015) on the test images, the KL and the active units.
"""

from __future__ import annotations

import logging
import math
import time

import keras
import numpy as np
from keras import ops

from keras_ae import losses
from keras_ae.contract import Likelihood, bits_per_dim
from keras_ae.errors import ConfigError
from keras_ae.models.base import Autoencoder, binarize, binarized_once, in_batches, non_negative
from keras_ae.models.priors import GaussianMixture, StandardNormal
from keras_ae.options import Option, finite_float, non_negative_int, positive_int, random_seed

log = logging.getLogger("keras_ae")
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: a unit is active when Cov_x(E_q[z_u]) > 0.01
COLLAPSE_KL = 0.1  # nats per image: a VAE whose KL is below this (or has no active unit) has collapsed


def reparameterize(mean, log_var, seed):
    """z = mean + exp(log_var / 2) * eps, eps ~ N(0, I): a sample of q(z|x) differentiable in mean and log_var."""
    return mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=seed)


def active_units(means) -> int:
    """Latent units whose posterior mean varies over the images: Var_x(E_q[z_u]) > 0.01 (Burda et al. 2015)."""
    return int((np.var(np.asarray(means), axis=0) > ACTIVE_UNIT_THRESHOLD).sum())


class ActiveUnits(keras.metrics.Metric):
    """:func:`active_units` over every image of an epoch, gathered batch by batch (sums of the posterior means
    and of their squares), so training reports the same integer as the evaluation."""

    def __init__(self, latent_dim: int, name: str = "active_units", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((latent_dim,), "zeros", name="total", dtype="float64")
        self.squares = self.add_variable((latent_dim,), "zeros", name="squares", dtype="float64")
        self.count = self.add_variable((), "zeros", name="count", dtype="float64")

    def update_state(self, means, sample_weight=None):
        means = ops.cast(means, "float64")
        self.total.assign_add(ops.sum(means, axis=0))
        self.squares.assign_add(ops.sum(means * means, axis=0))
        self.count.assign_add(ops.cast(ops.shape(means)[0], "float64"))

    def result(self):
        count = ops.maximum(self.count, 1.0)
        variance = self.squares / count - ops.square(self.total / count)
        return ops.sum(ops.cast(variance > ACTIVE_UNIT_THRESHOLD, "float32"))


@keras.saving.register_keras_serializable(package="keras_ae")
class VAE(Autoencoder):
    """Variational autoencoder with a Gaussian encoder and a Bernoulli or Gaussian decoder.

    Its reconstruction is a likelihood: ``"bce"`` (Bernoulli, the default) or ``"gaussian"`` (with
    ``output_std`` fixed, or learned). With ``iwae_k`` K > 1 it trains on the importance-weighted bound
    (tighter than the ELBO, at K decoder passes per image); the reported terms stay the one-sample ones.

    Args:
        input_shape, num_classes: as for :class:`Autoencoder`.
        encoder, decoder: your own networks, as for :class:`Autoencoder`; the encoder returns
            ``{"z_mean": ..., "z_log_var": ...}``.
    """

    heads = ("z_mean", "z_log_var")
    loss_terms = ("loss", "reconstruction", "kl", "elbo", "bits_per_dim", "active_units")
    outlier_score_name = "-ELBO at the posterior mean (nats)"
    test_options = {"latent_dim": 8, "arch": "conv", "widths": (8, 16)}
    options = {
        "beta": Option("weight of the KL term (>= 0): 1 is the ELBO, > 1 a beta-VAE", finite_float, default=1.0),
        "binarize": Option("dynamic binarization: each pixel is drawn 0/1 afresh every step", default=False,
                           flag=True),
        "free_bits": Option("minimum KL per latent unit counted in the loss (0: off)", finite_float, default=0.0,
                            metavar="NATS"),
        "kl_warmup_epochs": Option("ramp the KL weight linearly from 0 to 1 over N epochs (0: off)",
                                   non_negative_int, default=0, metavar="N"),
        "iwae_k": Option("train on the importance-weighted bound with K samples per image (IWAE, Burda et al. "
                         "2015; 1: the ELBO)", positive_int, default=1, metavar="K"),
        "mixture_prior": Option("learn the prior p(z) as a mixture of K Gaussians, trained with the model "
                                "(0: N(0, I))", non_negative_int, default=0, metavar="K"),
        "seed": Option("seed of the reparameterization noise, the binarization and the mixture prior",
                       random_seed, default=0),
    }
    option_defaults = {"reconstruction": "bce"}

    def validate(self):
        super().validate()
        if self.reconstruction not in ("bce", "gaussian"):
            raise ConfigError(f"a VAE needs a likelihood: reconstruction 'bce' (Bernoulli) or 'gaussian', "
                              f"got {self.reconstruction!r}")
        if self.code_activation != "linear":
            raise ConfigError("a VAE's mean and log-variance heads must be linear; drop --code-activation")
        non_negative("beta", self.beta)
        non_negative("free_bits", self.free_bits)
        if self.kl_warmup_epochs < 0:
            raise ConfigError(f"kl_warmup_epochs must be >= 0, got {self.kl_warmup_epochs}")
        if self.iwae_k < 1:
            raise ConfigError(f"iwae_k must be >= 1, got {self.iwae_k}")
        if self.iwae_k > 1 and (self.beta != 1.0 or self.free_bits or self.kl_warmup_epochs):
            raise ConfigError("--iwae-k trains on the importance-weighted bound of log p(x), which has no KL term "
                              "to weight: drop --beta, --free-bits and --kl-warmup-epochs")
        if self.mixture_prior < 0:
            raise ConfigError(f"mixture_prior must be >= 0 components, got {self.mixture_prior}")
        if self.mixture_prior and self.free_bits:
            raise ConfigError("--free-bits needs the KL of each latent unit, which a mixture prior does not split "
                              "into: drop --free-bits or --mixture-prior")

    def build_model(self):
        super().build_model()
        self.kl_weight = keras.Variable(0.0 if self.kl_warmup_epochs else 1.0, trainable=False, name="kl_weight")
        self.seed_generator = keras.random.SeedGenerator(self.seed)

    def build_prior(self):
        if self.mixture_prior:
            return GaussianMixture(self.latent_dim, self.mixture_prior, seed=self.seed, name="prior")
        return StandardNormal(self.latent_dim, name="prior")

    def posterior(self, x, labels=None, training=False):
        """Mean and log-variance of q(z|x)."""
        heads = self.encode_heads(x, labels, training)
        return heads["z_mean"], heads["z_log_var"]

    # ---- the objective ---------------------------------------------------------------------------
    def terms_per_image(self, x, labels=None, training=False, seed=None, posterior=None):
        """(posterior mean, -log p(x|z) per image with z ~ q(z|x), KL per image), all in nats.

        ``posterior``: (mean, log_var) of ``x`` when already computed."""
        mean, log_var = self.posterior(x, labels, training=training) if posterior is None else posterior
        z = reparameterize(mean, log_var, seed)
        reconstruction = self.reconstruction_error(x, self.decode_logits(z, labels, training=training))
        return mean, reconstruction, self.kl_per_image(mean, log_var, z)

    def kl_per_image(self, mean, log_var, z):
        """KL(q(z|x) || p(z)) per image in nats, as the prior gives it: closed form for N(0, I); for a learned
        prior the one-sample estimate log q(z|x) - log p(z) at the code ``z`` drawn from q(z|x)."""
        return self.prior.kl(mean, log_var, z)

    def elbo_per_image(self, x, labels=None, seed=None):
        """One-sample ELBO per image in nats: -(reconstruction from z ~ q(z|x) + KL)."""
        _, reconstruction, kl = self.terms_per_image(x, labels, seed=seed)
        return -(reconstruction + kl)

    def compute_losses(self, x, y=None, training=False):
        if self.binarize:
            x = binarize(x, self.seed_generator)
        posterior = self.posterior(x, y, training=training)
        mean, reconstruction, kl = self.terms_per_image(x, y, training, self.seed_generator, posterior)
        reconstruction, kl = ops.mean(reconstruction), ops.mean(kl)
        kl_in_loss = kl if not self.free_bits else \
            ops.sum(ops.maximum(ops.mean(losses.kl_per_unit(*posterior), axis=0), self.free_bits))
        elbo = -(reconstruction + kl)
        loss = reconstruction + self.beta * self.kl_weight * kl_in_loss
        if self.iwae_k > 1:  # -log (1/K) sum_k w_k, which the single-sample terms above only report
            weights = self.log_weights(x, y, self.iwae_k, self.seed_generator, training, posterior)
            loss = -ops.mean(ops.logsumexp(weights, axis=0) - math.log(self.iwae_k))
        return {
            "loss": loss,
            "reconstruction": reconstruction,
            "kl": kl,
            "elbo": elbo,
            "bits_per_dim": bits_per_dim(-elbo, self.input_dim),
            "active_units": mean,  # gathered over the epoch by ActiveUnits
        }

    def tracker(self, term: str) -> keras.metrics.Metric:
        return ActiveUnits(self.latent_dim) if term == "active_units" else super().tracker(term)

    def training_callbacks(self) -> list:
        return [KLWarmup(self.kl_warmup_epochs)] if self.kl_warmup_epochs else []

    # ---- likelihood evaluation -------------------------------------------------------------------
    def outlier_score(self, x, labels=None):
        """The ELBO's two terms with the posterior mean as the code, per image in nats: -log p(x | z = E[z|x]) +
        KL(q(z|x) || p(z)). Deterministic (one sampled z would give another score at every call), so the report,
        the exported encoder and the explorer give one image the same score."""
        mean, log_var = self.posterior(x, labels)
        return self.reconstruction_error(x, self.decode_logits(mean, labels)) + self.kl_per_image(mean, log_var, mean)

    def log_weights(self, x, labels, k: int, seed=None, training=False, posterior=None):
        """log p(x, z_k) - log q(z_k | x) for k draws z_k ~ q(z|x) per image: a (k, N) tensor, differentiable.

        ``posterior``: (mean, log_var) of ``x`` when already computed."""
        mean, log_var = self.posterior(x, labels, training=training) if posterior is None else posterior
        count = ops.shape(mean)[0]
        # k copies of the batch, one after another: row j * count + i is draw j of image i
        mean, log_var = ops.tile(mean, (k, 1)), ops.tile(log_var, (k, 1))
        z = reparameterize(mean, log_var, seed)
        repeated_x = ops.reshape(ops.tile(x[None], (k, 1, 1, 1, 1)), (k * count, *self.image_shape))
        repeated_labels = None if labels is None else ops.tile(ops.convert_to_tensor(labels), (k,))
        log_px_z = -self.reconstruction_error(repeated_x, self.decode_logits(z, repeated_labels, training=training))
        log_qz = -losses.gaussian_nll(z, mean, log_var)
        return ops.reshape(log_px_z + self.prior.log_prob(z) - log_qz, (k, count))

    def importance_weighted_log_likelihood(self, x, labels=None, num_samples: int = 1000, chunk: int = 100,
                                           seed=None) -> np.ndarray:
        """Per-image importance-weighted estimate of log p(x), in nats (Burda et al. 2015).

        log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x): with K = 1 this is a one-sample
        ELBO; it tightens as K grows. Samples are drawn ``chunk`` at a time and combined with
        log-sum-exp, so K = 5000 needs no more memory than K = ``chunk``. ``x`` is used as given
        (binarize it once beforehand to evaluate a binarized model).
        """
        num_samples, chunk = int(num_samples), int(chunk)
        if num_samples < 1 or chunk < 1:
            raise ConfigError(f"num_samples (K) and chunk must be >= 1, got K={num_samples}, chunk={chunk}")
        if isinstance(seed, int):  # one generator, so that every chunk draws new samples (reproducibly)
            seed = keras.random.SeedGenerator(seed)
        x = ops.convert_to_tensor(x, "float32")
        posterior = self.posterior(x, labels)
        # log-sum-exp of each chunk, combined: memory of one chunk of samples, whatever K
        totals = [ops.logsumexp(self.log_weights(x, labels, min(chunk, num_samples - start), seed,
                                                 posterior=posterior), axis=0)
                  for start in range(0, num_samples, chunk)]
        return np.asarray(ops.logsumexp(ops.stack(totals), axis=0) - math.log(num_samples))

    def likelihood_report(self, x, labels=None, num_samples: int = 100, seed: int = 0, elbo_samples: int = 5) -> dict:
        """ELBO and importance-weighted log p(x) (K = ``num_samples``) in nats per image, KL and active units.

        A model trained with dynamic binarization is scored on one fixed binarization of ``x`` (seeded).
        """
        log.info("evaluating: ELBO and importance-weighted log-likelihood (K = %d) on %d images ...", num_samples,
                 len(x))
        start = time.monotonic()
        if self.binarize:
            x = binarized_once(x, seed)
        elbo = np.mean([in_batches(self.elbo_per_image, x, labels).mean() for _ in range(elbo_samples)])
        iwae = in_batches(lambda b, y: self.importance_weighted_log_likelihood(b, y, num_samples, chunk=100), x,
                          labels, batch_size=50)
        means = self.codes(x, labels)
        draws = keras.random.SeedGenerator(seed)  # (the learned prior's KL is estimated at one code per image)

        def kl_per_image(images, y):
            mean, log_var = self.posterior(images, y)
            return self.kl_per_image(mean, log_var, reparameterize(mean, log_var, draws))

        kl = in_batches(kl_per_image, x, labels)
        log.info("evaluating: ELBO and importance-weighted log-likelihood: %.1f s", time.monotonic() - start)
        nll = float(-iwae.mean())
        return Likelihood(nll, bits_per_dim(nll, self.input_dim), "upper bound", "importance-weighted", self.binarize,
                          samples=num_samples, details={"ELBO (nats)": float(elbo), "KL (nats)": float(kl.mean()),
                                                        "active units": active_units(means)})

    def findings(self, metrics: dict) -> list[str]:
        """A collapsed posterior (no active unit, or almost no KL) is named as the cause of flat reconstructions."""
        details = Likelihood.from_json(metrics["likelihood"]).details if metrics.get("likelihood") else {}
        if details and (details["active units"] == 0 or details["KL (nats)"] < COLLAPSE_KL):
            return [line for line in super().findings(metrics) if not line.startswith("WARNING")] + [
                f"WARNING: posterior collapse: KL {details['KL (nats)']:.3g} nats, {details['active units']} active units: "
                "the decoder ignores the code (samples of a class all look alike); lower --beta or use "
                "--kl-warmup-epochs / --free-bits"]
        return super().findings(metrics)

    def term_units(self) -> dict:
        return {**super().term_units(), "loss": "nats / image", "kl": "nats / image", "elbo": "nats / image",
                "bits_per_dim": "bits / dim", "active_units": "units"}


@keras.saving.register_keras_serializable(package="keras_ae")
class ConditionalVAE(VAE):
    """Conditional VAE: q(z|x, y) and p(x|z, y), so ``sample(n, labels=...)`` draws the asked class.

    Its KL weight ``beta`` is 3 by default: at beta = 1 the encoder keeps the class in z, so prior samples
    often ignore the label (BENCHMARKS.md, "Defaults that do their job", measures both); on data with little
    besides the class (the 8x8 digits) it can collapse, which the report warns of.

    Args:
        num_classes: number of label classes (>= 2); the training data must be labelled.
        input_shape, encoder, decoder: as for :class:`VAE`.
    """

    needs_labels = True
    test_options = {"latent_dim": 8, "widths": (64, 32)}
    option_defaults = {"beta": 3.0}


class KLWarmup(keras.callbacks.Callback):
    """KL annealing: sets the model's ``kl_weight`` to min(1, epoch / epochs) at the start of each epoch."""

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.kl_weight.assign(min(1.0, epoch / self.epochs))
