"""What a model of the zoo declares about itself: its code, its density, and the likelihood figures it reports.

Training, evaluation, figures, export and generation read these declarations and never ask which
model they hold:

- :class:`Code`: the shape of a model's code per image, real-valued or discrete (``levels``
  indices), so that a flat vector (a VAE's z), a grid (H', W', D) or a grid of codebook indices (a
  VQ-VAE's) each get the metrics and figures that apply to them, and a note for the others;
- :class:`Density`: what an autoregressive density is over (shape, levels) and in which order its
  elements are drawn, so that :mod:`keras_ae.autoregressive` samples every such density, the
  PixelCNN over images as well as a prior over a code grid, the one same way;
- :class:`Likelihood`: the report's log-likelihood figures with their kind (exact, or an upper bound
  on -log p(x) and the estimator that gave it, with its K).

This module is plain Python: :mod:`keras_ae.serving` and the export clients read the same
descriptions from metadata.json without Keras.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ORDER = "raster: row by row, column by column, channel by channel"
KINDS = ("exact", "upper bound")


@dataclass(frozen=True)
class Code:
    """A model's code for one image: ``shape``, real-valued (``levels`` None) or indices in ``range(levels)``."""

    shape: tuple[int, ...]
    levels: int | None = None

    @property
    def flat(self) -> bool:
        """A real-valued vector (N, size): what PCA, the latent probe, the manifold and the arithmetic take."""
        return len(self.shape) == 1 and self.levels is None

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def dtype(self) -> str:
        return "float32" if self.levels is None else "int32"

    @property
    def bits(self) -> float | None:
        """Bits per image of a discrete code (positions x log2 levels); None for real-valued codes."""
        return None if self.levels is None else self.size * math.log2(self.levels)

    def describe(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype, "levels": self.levels}


@dataclass(frozen=True)
class Density:
    """An autoregressive density over arrays of ``shape`` (H, W, C) whose elements take ``levels`` values.

    An element's value is ``level / (levels - 1)`` in [0, 1]: 0 and 1 for binary pixels (``levels``
    2, a Bernoulli per element), k / 255 for grey levels (256), index / (K - 1) for the indices of a
    codebook of K entries. Elements are drawn one at a time in :data:`ORDER`.
    """

    shape: tuple[int, int, int]
    levels: int

    @property
    def positions(self) -> int:
        """Elements drawn one after another: the sequential network passes of one sample."""
        return math.prod(self.shape)

    @property
    def binary(self) -> bool:
        return self.levels == 2

    def describe(self) -> dict:
        return {"shape": list(self.shape), "levels": self.levels, "order": ORDER}


@dataclass(frozen=True)
class Likelihood:
    """The log-likelihood figures of a report, in nats per image of the test split.

    ``nll`` is -log p(x) when ``kind`` is "exact", an upper bound on it when "upper bound", given by
    ``estimator`` with ``samples`` samples per image (K). ``details`` holds the model's own figures
    (a VAE's ELBO, KL and active units), shown as they are.
    """

    nll: float
    bits_per_dim: float
    kind: str
    estimator: str
    binarized: bool
    samples: int | None = None
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"likelihood kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def exact(self) -> bool:
        return self.kind == "exact"

    def headline(self) -> str:
        """The figure as a table shows it: '85.21 exact' or '<= 89.84 (importance-weighted, K = 1000)'."""
        if self.exact:
            return f"{self.nll:.2f} exact"
        return f"<= {self.nll:.2f} ({self.estimator}{'' if self.samples is None else f', K = {self.samples}'})"

    def to_json(self) -> dict:
        return {"nll": self.nll, "bits_per_dim": self.bits_per_dim, "kind": self.kind, "estimator": self.estimator,
                "samples": self.samples, "binarized": self.binarized, "details": dict(self.details)}

    @classmethod
    def from_json(cls, entry: dict) -> Likelihood:
        return cls(**{name: entry[name] for name in ("nll", "bits_per_dim", "kind", "estimator", "binarized")},
                   samples=entry.get("samples"), details=entry.get("details") or {})


def bits_per_dim(nll: float, dims: int) -> float:
    """Nats per image as bits per dimension: the one conversion of keras_ae."""
    return nll / (dims * math.log(2.0))
