"""Operations in the latent space, as small NumPy functions of codes (no model inside).

They are what the lectures do with a code: walk a straight line between two images, average them,
add an attribute vector s (mean code with an attribute minus mean code without) as z + k * s, lay a
grid over a 2-D plane, and quantize for compression. (Drawing codes is the prior's job:
:mod:`keras_ae.models.priors`.) Export clients use this module too: it needs NumPy only.
"""

from __future__ import annotations

import numpy as np

from keras_ae.errors import ConfigError, InputError


def interpolate(z_a, z_b, steps: int) -> np.ndarray:
    """``steps`` float32 codes evenly spaced on the segment from ``z_a`` to ``z_b`` (both ends included)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise InputError(f"an interpolation needs an integer of at least 2 steps, got {steps!r}")
    ends = [np.asarray(z) for z in (z_a, z_b)]
    if any(z.dtype.kind not in "iuf" for z in ends):
        raise InputError(f"interpolation end points must be real numbers, got dtypes {ends[0].dtype}, {ends[1].dtype}")
    z_a, z_b = (z.reshape(-1).astype("float32") for z in ends)
    if z_a.shape != z_b.shape:
        raise InputError(f"interpolation end points differ in size: {z_a.size} and {z_b.size}")
    weights = np.linspace(0.0, 1.0, steps, dtype="float32")[:, None]
    return (1.0 - weights) * z_a + weights * z_b


def attribute_vector(codes: np.ndarray, has_attribute: np.ndarray) -> np.ndarray:
    """s = mean code of the images with the attribute - mean code of those without."""
    has_attribute = np.asarray(has_attribute, bool)
    if has_attribute.all() or not has_attribute.any():
        raise ConfigError("an attribute vector needs images both with and without the attribute")
    return (codes[has_attribute].mean(axis=0) - codes[~has_attribute].mean(axis=0)).astype("float32")


def attribute_sweep(z: np.ndarray, s: np.ndarray, ks=(-3, -2, -1, 0, 1, 2, 3)) -> np.ndarray:
    """Codes z + k * s for each k: the image with less (k < 0) or more (k > 0) of the attribute."""
    return np.stack([np.asarray(z, "float32") + k * s for k in ks]).astype("float32")


def principal_plane(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre, the two main directions (2, L) and their standard deviations, of codes (N, L) with L >= 2."""
    codes = np.asarray(codes, "float64")
    if codes.shape[1] < 2:
        raise ConfigError(f"a 2-D plane needs a latent of size >= 2, got {codes.shape[1]}")
    centre = codes.mean(axis=0)
    _, singular, directions = np.linalg.svd(codes - centre, full_matrices=False)
    return centre, directions[:2], singular[:2] / np.sqrt(max(len(codes) - 1, 1))


def manifold_quantiles(size: int) -> np.ndarray:
    """The standard normal's quantiles 5%..95% at ``size`` even steps: where a manifold grid samples each axis."""
    from scipy.stats import norm

    return norm.ppf(np.linspace(0.05, 0.95, size))


def manifold_grid(size: int, centre: np.ndarray, directions: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """A size x size grid of codes over a plane, at the normal quantiles 5%..95% of each direction's spread.

    With the prior's plane (centre 0, unit directions, unit scales) this is the classic VAE manifold
    figure of Kingma & Welling; with the principal plane of the test codes it works for any model.
    """
    quantiles = manifold_quantiles(size)
    rows = [[centre + a * scales[0] * directions[0] + b * scales[1] * directions[1] for b in quantiles]
            for a in quantiles[::-1]]
    return np.asarray(rows, "float32").reshape(size * size, -1)


def quantize(codes: np.ndarray, bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Uniform per-unit quantization to ``bits`` bits: (integer codes, minimum, step) per latent unit."""
    levels = 2**bits - 1
    low, high = codes.min(axis=0), codes.max(axis=0)
    step = np.where(high > low, (high - low) / levels, 1.0)
    integers = np.round((codes - low) / step).astype(np.uint8 if bits <= 8 else np.uint16)
    return integers, low.astype("float32"), step.astype("float32")


def dequantize(integers: np.ndarray, low: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Codes back from :func:`quantize`."""
    return (integers.astype("float32") * step + low).astype("float32")
