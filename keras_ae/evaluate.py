"""Measurements of a trained model on a test split, each a small function of (model, images)."""

from __future__ import annotations

import keras
import numpy as np

from keras_ae import losses
from keras_ae.models.denoising import corrupt


import tensorflow as tf


def _batches(x, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size]


def _labelled_batches(x, labels, batch_size):
    for start in range(0, len(x), batch_size):
        yield x[start:start + batch_size], None if labels is None else labels[start:start + batch_size]


def reconstruction_metrics(model, x, labels=None, batch_size: int = 256) -> dict:
    """Test-split reconstruction quality: mean squared error per image (summed over pixels) and mean PSNR (dB).

    Perfect reconstructions have infinite PSNR; they count as 100 dB so the mean stays a number.
    """
    errors, psnrs = [], []
    for batch, batch_labels in _labelled_batches(x, labels, batch_size):
        reconstructed = model.reconstruct(batch, batch_labels)
        errors.append(np.asarray(losses.squared_error(batch, reconstructed)))
        psnrs.append(np.minimum(np.asarray(losses.psnr(batch, reconstructed)), 100.0))
    return {"squared_error": float(np.mean(np.concatenate(errors))), "psnr": float(np.mean(np.concatenate(psnrs)))}


def squared_error(model, x, labels=None, batch_size: int = 256) -> float:
    """Mean over images of the squared reconstruction error summed over pixels."""
    return reconstruction_metrics(model, x, labels, batch_size)["squared_error"]


def zero_fraction(model, x, threshold: float = 1e-3, batch_size: int = 256) -> float:
    """Fraction of code entries with |z| <= threshold over the images ``x``."""
    codes = np.concatenate([np.asarray(model.encode(b)) for b in _batches(x, batch_size)])
    return float(np.mean(np.abs(codes) <= threshold))


def jacobian_norm(model, x, batch_size: int = 32) -> float:
    """Mean over images of the exact Frobenius norm of the encoder Jacobian dz/dx."""
    squared_norm = tf.function(lambda b: losses.code_and_jacobian_sq(model.encode, b, "exact")[1],
                               reduce_retracing=True)
    norms = [np.sqrt(np.asarray(squared_norm(b))) for b in _batches(x.astype("float32"), batch_size)]
    return float(np.mean(np.concatenate(norms)))


def denoising_psnr(model, x, noise: str, level: float, seed: int = 0, batch_size: int = 256) -> dict:
    """Mean PSNR (dB) against the clean ``x`` of the corrupted images and of the model's output from them.

    The same corruption (drawn once from ``seed``) is shown to every model measured with that seed.
    """
    generator = keras.random.SeedGenerator(seed)
    corrupted, restored = [], []
    for batch in _batches(x, batch_size):
        noisy = corrupt(batch, noise, level, generator)
        corrupted.append(np.asarray(losses.psnr(batch, noisy)))
        restored.append(np.asarray(losses.psnr(batch, model.reconstruct(noisy))))
    return {"corrupted": float(np.mean(np.concatenate(corrupted))), "restored": float(np.mean(np.concatenate(restored)))}
