"""Code directions: where a model's codes sit and which ways they move, to edit codes with the decoder alone.

From the codes of a run's test images (the evaluation's sample of the test split), :func:`of_run` computes:

- **averages**: the mean code of all of them (``all``: the "average face") and of each class (``0``, ``1``, ...);
- **vectors** s, each applied as z + k s:
  - ``thicker``: mean code of the 25% most-ink images minus that of the 25% least-ink ones;
  - one per binary attribute of the data (the run's ``attribute``, else every one the data has, such as
    CelebA's 40): mean code with it minus mean code without ("add a smile");
  - ``main1``, ``main2``: the two main directions of the codes, each one standard deviation long (the
    plane of the manifold figure);
- **scores**: the test images' outlier scores (``model.outlier_score``, the report's, which the exported
  encoder also gives), sorted: where a new image's score falls among them;
- **spread**: each code unit's standard deviation over those codes (the explorer's slider unit).

The arithmetic figure draws with them; an export writes them to ``<version>/directions.npz`` (its sha256 in
metadata.json), and :mod:`keras_ae.generate` applies them (``--average``, ``--add``, ``--walk``) without the
encoder or Keras. They exist for flat real-valued codes only. This module needs NumPy only.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

import numpy as np

from keras_ae import latent
from keras_ae.errors import ConfigError, InputError

log = logging.getLogger("keras_ae")
FILE = "directions.npz"
SWEEP = (-3, -2, -1, 0, 1, 2, 3)  # the k of z + k s that the arithmetic figure draws, and a walk spans
MAIN = ("main1", "main2")


@dataclass(frozen=True)
class Directions:
    """Named averages (codes) and vectors (directions) of one model's code space, float32 of the code's size."""

    averages: dict[str, np.ndarray]
    vectors: dict[str, np.ndarray]
    notes: dict[str, str]  # what each vector is
    images: int  # the test codes they come from
    scores: np.ndarray  # the sorted outlier scores of those test images
    spread: np.ndarray  # the standard deviation of each code unit over those test images
    score_name: str  # what the outlier score is (the model's outlier_score_name)

    def percentile(self, score: float) -> float:
        """The percentage of the test images whose outlier score is at most ``score``."""
        return float(100.0 * np.searchsorted(self.scores, score, side="right") / len(self.scores))

    def average(self, name) -> np.ndarray:
        """The average code ``name`` (a class id, or ``all``); InputError listing the known ones."""
        return _named(self.averages, str(name), "average")

    def vector(self, name: str) -> np.ndarray:
        return _named(self.vectors, name, "direction")

    def edited(self, z, additions) -> np.ndarray:
        """Codes z + sum k s over ``additions``, (name, k) pairs."""
        z = np.array(z, "float32", ndmin=2)
        for name, k in additions:
            z = z + np.float32(k) * self.vector(name)
        return z

    def walk(self, z, name: str, steps: int) -> np.ndarray:
        """For each code, ``steps`` codes z + k s with k evenly from SWEEP's ends (rows of ``steps``)."""
        ks = np.linspace(SWEEP[0], SWEEP[-1], steps, dtype="float32")[:, None]
        return np.concatenate([z_i + ks * self.vector(name) for z_i in np.array(z, "float32", ndmin=2)])

    def describe(self) -> dict:
        """What metadata.json says of them."""
        return {"file": FILE, "test_images": self.images, "averages": sorted(self.averages, key=_class_order),
                "vectors": dict(self.notes), "walk": list(SWEEP[::len(SWEEP) - 1]),
                "scores": self.score_name}

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(buffer, **{f"average:{k}": v for k, v in self.averages.items()},
                 **{f"vector:{k}": v for k, v in self.vectors.items()}, scores=self.scores, spread=self.spread)
        return buffer.getvalue()

    @classmethod
    def from_file(cls, path, described: dict, latent_dim: int) -> Directions:
        """Read a directions file that metadata.json ``described``; InputError if it does not match that."""
        try:
            with np.load(path, allow_pickle=False) as arrays:
                found = {key: arrays[key] for key in arrays.files}
        except (OSError, ValueError) as error:
            raise InputError(f"{path}: not a directions file ({type(error).__name__})") from None
        scores, spread = found.pop("scores", None), found.pop("spread", None)
        averages = {k.removeprefix("average:"): v for k, v in found.items() if k.startswith("average:")}
        vectors = {k.removeprefix("vector:"): v for k, v in found.items() if k.startswith("vector:")}
        if (sorted(averages) != sorted(described.get("averages", []))
                or sorted(vectors) != sorted(described.get("vectors", {}))
                or any(v.shape != (latent_dim,) or v.dtype != np.float32 for v in found.values())
                or scores is None or scores.ndim != 1 or len(scores) == 0
                or spread is None or spread.shape != (latent_dim,)):
            raise InputError(f"{path} does not hold the float32 directions of size {latent_dim} that metadata.json "
                             "lists; export the run again")
        return cls(averages, vectors, dict(described["vectors"]), described.get("test_images", 0), scores, spread,
                   str(described.get("scores", "")))


def _class_order(name: str):
    return (not name.isdigit(), int(name) if name.isdigit() else 0, name)


def _named(table: dict, name: str, what: str) -> np.ndarray:
    if name not in table:
        raise InputError(f"no {what} named {name!r}; the export has {', '.join(sorted(table, key=_class_order))}")
    return table[name]


def compute(codes: np.ndarray, labels=None, ink=None, attributes: dict | None = None, scores=None,
            score_name: str = "") -> Directions:
    """The directions of ``codes`` (N, L): class means from ``labels``, ``thicker`` from each image's ``ink``
    (mean pixel), one vector per entry of ``attributes`` (name -> 0/1 per code), and the main directions;
    ``scores``, the images' outlier scores (``score_name`` says which), kept sorted."""
    codes = np.asarray(codes, "float32")
    averages = {"all": codes.mean(axis=0)}
    if labels is not None:
        averages.update({str(c): codes[labels == c].mean(axis=0) for c in np.unique(labels)})
    vectors, notes = {}, {}
    if ink is not None:
        low, high = np.quantile(ink, [0.25, 0.75])
        selected = (ink <= low) | (ink >= high)
        if low < high:  # (test images of equal ink have no thickness direction)
            vectors["thicker"] = latent.attribute_vector(codes[selected], ink[selected] >= high)
            notes["thicker"] = "mean code of the 25% most-ink test images minus that of the 25% least-ink ones"
    for name, has in (attributes or {}).items():
        has = np.asarray(has) == 1
        if has.all() or not has.any():  # (no difference to take: the others still are)
            log.warning("no code direction for attribute %r: %s of the %d test images have it", name,
                        "all" if has.all() else "none", len(has))
            continue
        vectors[name] = latent.attribute_vector(codes, has)
        notes[name] = f"mean code of the test images with {name} minus that of those without"
    if codes.shape[1] >= 2:
        _, directions, scales = latent.principal_plane(codes)
        for i, name in enumerate(MAIN):
            vectors[name] = (directions[i] * scales[i]).astype("float32")
            notes[name] = f"main direction {i + 1} of the test codes, one standard deviation long"
    scores = np.sort(np.asarray(np.zeros(len(codes)) if scores is None else scores, "float32"))
    return Directions({k: v.astype("float32") for k, v in averages.items()}, vectors, notes, len(codes), scores,
                      codes.std(axis=0), score_name)


def of_run(run) -> Directions:
    """The directions of a run's model, from the codes of the evaluation's sample of its test split."""
    code = run.model.code
    if code is None or not code.flat:
        raise ConfigError(f"code directions take flat real-valued codes; {type(run.model).__name__} has "
                          + ("none" if code is None else f"{code.dtype} codes of shape {code.shape}"))
    model = run.model
    x, y = run.splits.sample("test")
    labels = y if model.num_classes else None
    z = model.codes(x, labels)
    scores = model.outlier_scores(x, labels)
    chosen = run.config["options"].get("attribute")
    names = [chosen] if chosen else run.splits.attributes
    attributes = {name: run.splits.sample("test", attribute=name)[1] for name in names}
    return compute(z, y, x.reshape(len(x), -1).mean(axis=1), attributes, scores, model.outlier_score_name)


def parse_addition(text: str) -> tuple[str, float]:
    """``NAME=K`` of ``--add`` as (name, k); InputError if it is not that."""
    name, sep, k = text.rpartition("=")
    try:
        value = float(k)
    except ValueError:
        value = None
    if not sep or not name or value is None or not np.isfinite(value):
        raise InputError(f"--add takes NAME=K with a finite number K (z + K s), got {text!r}")
    return name, value
