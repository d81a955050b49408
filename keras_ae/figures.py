"""The figures of a run folder: what the model does and what its latent space can do.

Each figure is a function ``(run) -> str | None``: it writes one PNG in the run folder and returns
its file name, or returns None with a note on why it does not apply (e.g. no 2-D manifold for a
1-D latent). :func:`write_all` runs the ones asked for.
"""

from __future__ import annotations

import csv

import numpy as np

from keras_ae import directions, latent, plots
from keras_ae.errors import ConfigError


class Skipped(Exception):
    """This figure does not apply to this run; the message says why (it goes into the report)."""


def _test(run, count=None):
    """Test images (the evaluation's sample of the split, or its first ``count``), labels, and the labels
    a conditional model takes."""
    x, y = run.splits.sample("test")
    x = x if count is None else x[:count]
    y = None if y is None else (y if count is None else y[:count])
    return x, y, (y if run.model.num_classes else None)


def _title(run, what: str) -> str:
    model = run.config["options"].get("model") or type(run.model).__name__
    return f"{model} ({run.model.architecture}) on {run.splits.name}: {what}"


def _decode(model, z, labels=None) -> np.ndarray:
    return np.asarray(model.decode(np.asarray(z, "float32"), labels))


def _needs_codes(run, figure: str) -> None:
    """Skip a figure of the latent space for a model without flat real-valued codes (a density such as the
    PixelCNN has none; a VQ-VAE's are grids of codebook indices)."""
    code = run.model.code
    if code is None:
        raise Skipped(f"{figure} figure skipped: {type(run.model).__name__} has no code (no latent space)")
    if not code.flat:
        raise Skipped(f"{figure} figure skipped: it takes flat real-valued codes; {type(run.model).__name__}'s code is "
                      f"{code.dtype} of shape {code.shape}")


def reconstructions(run) -> str:
    """What the model does to test images (``figure_rows``): reconstructions, or a density's completions."""
    x, _, labels = _test(run, 10)
    name, what = (("reconstructions.png", "test images") if run.model.code is not None else
                  ("completions.png", "bottom halves drawn pixel by pixel given the top halves"))
    plots.image_rows(run.model.figure_rows(x, labels), run.folder / name, title=_title(run, what))
    return name


def code_heatmap(run) -> str:
    _needs_codes(run, "codes")
    x, _, labels = _test(run, 64)
    plots.code_heatmap(run.model.codes(x, labels), run.folder / "codes.png", title=_title(run, "codes of 64 test images"))
    return "codes.png"


def samples(run, columns: int = 10) -> str:
    """New images of the model (``sample``); one row per class for a conditional model. A model whose samples
    take sequential network passes (a density drawn pixel by pixel) gets fewer: ``columns`` // 2 per row."""
    model = run.model
    how = f"z ~ {model.prior.label}" if model.code is not None else "drawn pixel by pixel"
    columns = columns if model.sampling_passes == 1 else columns // 2
    if model.num_classes:
        classes = range(model.num_classes)
        drawn = np.asarray(model.sample(columns * len(classes), labels=np.repeat(classes, columns), seed=0))
        rows = {f"y = {c}": drawn[c * columns:(c + 1) * columns] for c in classes}
        plots.image_rows(rows, run.folder / "samples.png", title=_title(run, f"samples {how}, one row per label"))
    else:
        plots.image_grid(np.asarray(model.sample(columns * columns, seed=0)), run.folder / "samples.png", columns,
                         title=_title(run, f"samples, {how}"))
    return "samples.png"


def manifold(run, size: int = 15) -> str:
    """The decoder over a grid of codes: the prior's plane for a 2-D latent, else the test codes' main plane."""
    _needs_codes(run, "manifold")
    model = run.model
    if model.latent_dim < 2:
        raise Skipped("manifold grid skipped: the latent has size 1; there is no 2-D plane to draw "
                      "(train with --latent-dim 2 or more)")
    if model.latent_dim == 2:
        plane, what = model.prior.principal_plane(), "2-D latent over the prior's quantiles"
    else:
        x, _, labels = _test(run)
        plane, what = latent.principal_plane(model.codes(x, labels)), "the plane of the two main code directions"
    labels = np.zeros(size * size, "int64") if model.num_classes else None
    images = _decode(model, latent.manifold_grid(size, *plane), labels)
    centre, directions, scales = plane
    quantiles = latent.manifold_quantiles(size)
    if model.latent_dim == 2 and np.allclose(np.abs(directions), np.eye(2)):  # the axes are z1, z2 themselves
        ticks, names = (centre[0] + quantiles * scales[0], centre[1] + quantiles * scales[1]), ("z1", "z2")
    else:  # the coordinate along each main direction, from the centre of the codes
        ticks, names = (quantiles * scales[0], quantiles * scales[1]), ("1st main direction", "2nd main direction")
    plots.mosaic(images, size, run.folder / "manifold.png", ticks, names,
                 title=_title(run, what + (", label 0" if labels is not None else "")))
    return "manifold.png"


def code_scatter(run) -> str:
    """Test codes coloured by label: the code itself for 2-D latents, else projected on its main plane."""
    _needs_codes(run, "code scatter")
    x, y, labels = _test(run)
    z = run.model.codes(x, labels)
    if z.shape[1] == 1:
        points, axes = np.column_stack([z[:, 0], np.zeros(len(z))]), ("z1", "")
    elif z.shape[1] == 2:
        points, axes = z, ("z1", "z2")
    else:
        centre, directions, _ = latent.principal_plane(z)
        points, axes = (z - centre) @ directions.T, ("1st main direction", "2nd main direction")
    plots.scatter(points, y, run.folder / "code_scatter.png", title=_title(run, "test codes"), axis_names=axes)
    return "code_scatter.png"


def _pairs(y, count: int):
    """Index pairs of test images to interpolate between: different labels when there are several."""
    if y is None or len(np.unique(y)) < 2:
        return [(2 * i, 2 * i + 1) for i in range(count)]
    pairs, used = [], set()
    for i in range(len(y)):
        j = next((j for j in range(i + 1, len(y)) if y[j] != y[i] and j not in used), None)
        if j is not None and i not in used:
            pairs.append((i, j))
            used |= {i, j}
        if len(pairs) == count:
            break
    return pairs


def _pair_name(y, a: int, b: int) -> str:
    """How a row of two test images is labelled: by their classes when there are labels."""
    return f"class {y[a]} -> class {y[b]}" if y is not None else f"test image {a} -> {b}"


def interpolation(run, steps: int = 10) -> str:
    """Decoded straight lines between the codes of pairs of test images."""
    _needs_codes(run, "interpolation")
    x, y, labels = _test(run, 200)
    z = run.model.codes(x, labels)
    rows = {}
    for a, b in _pairs(y, 4):
        strip_labels = None if labels is None else np.full(steps, labels[a])
        rows[_pair_name(y, a, b)] = _decode(run.model, latent.interpolate(z[a], z[b], steps), strip_labels)
    plots.image_rows(rows, run.folder / "interpolation.png", title=_title(run, "interpolation between test images"))
    return "interpolation.png"


def arithmetic_rows(run) -> dict[str, np.ndarray]:
    """The rows of the arithmetic figure by title: the average of two codes decoded, then z + k s over
    ``directions.SWEEP`` along the run's code directions (:mod:`keras_ae.directions`, the ones its export
    carries): ``thicker``; with labels and an unconditional model, one class turning into another
    (s = mean code of class b minus that of class a, applied to an image of class a: a 1 into a 7 for
    digits); and the run's ``attribute`` option, a binary attribute of the data such as CelebA's Smiling,
    added to images without it.
    """
    _needs_codes(run, "arithmetic")
    model = run.model
    x, y, labels = _test(run)
    z = model.codes(x, labels)
    found = directions.of_run(run)
    ks = directions.SWEEP

    def sweep(i, s):
        return _decode(model, latent.attribute_sweep(z[i], s, ks),
                       None if labels is None else np.full(len(ks), labels[i]))

    rows = {}
    for a, b in _pairs(y, 2):
        pair_labels = None if labels is None else labels[[a, a, a]]
        average = _decode(model, np.stack([z[a], z[b], (z[a] + z[b]) / 2]), pair_labels)
        rows[f"A, B, average ({_pair_name(y, a, b).replace(' -> ', ', ')})"] = np.concatenate([x[[a, b]], average[2:]])
    if "thicker" not in found.vectors:
        raise Skipped("arithmetic figure skipped: every test image has as much ink as the others")
    for i in range(2):
        rows[f"thicker (test image {i}{'' if y is None else f', class {y[i]}'})"] = sweep(i, found.vector("thicker"))
    present = [] if y is None else np.unique(y).tolist()
    if len(present) >= 2 and not model.num_classes:
        source, target = (1, 7) if {1, 7} <= set(present) else present[:2]  # a 1 turning into a 7, for digits
        example = int(np.flatnonzero(y == source)[0])
        rows[f"class {source} -> class {target}"] = sweep(example, found.average(target) - found.average(source))
    attribute = run.config["options"].get("attribute")
    if attribute in found.vectors:  # (not when every test image has it, or none)
        _, has = run.splits.sample("test", attribute=attribute)  # the same images as x, other labels
        for i in np.flatnonzero(has == 0)[:2]:
            rows[f"+ {attribute} #{i}"] = sweep(i, found.vector(attribute))
    return rows


def arithmetic(run) -> str:
    """Latent arithmetic (:func:`arithmetic_rows`) as one figure."""
    plots.image_rows(arithmetic_rows(run), run.folder / "arithmetic.png",
                     title=_title(run, "A, B, decode((zA + zB) / 2); then z + k s for k = -3..3"))
    return "arithmetic.png"


def training_curves(run) -> str:
    path = run.folder / "history.csv"
    if not path.is_file():
        raise Skipped(f"training curves skipped: {path} not found")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    history = {name: [float(row[name]) for row in rows] for name in rows[0]} if rows else {}
    if not history:
        raise Skipped(f"training curves skipped: {path} is empty")
    plots.curves(history, run.folder / "training_curves.png", title=_title(run, "training curves"),
                 units=run.model.term_units())
    return "training_curves.png"


FIGURES = {"reconstructions": reconstructions, "codes": code_heatmap, "samples": samples, "manifold": manifold,
           "code_scatter": code_scatter, "interpolation": interpolation, "arithmetic": arithmetic,
           "training_curves": training_curves}


LATENT_FIGURES = ("codes", "manifold", "code_scatter", "interpolation", "arithmetic")  # need a model with codes


def write_all(run, which=None) -> tuple[list[str], list[str]]:
    """Write the figures named in ``which`` (all by default; for a model without flat real-valued codes, all
    but the latent-space ones: the report's notes say why); returns (file names written, notes on skipped ones)."""
    written, skipped = [], []
    flat = run.model.code is not None and run.model.code.flat
    which = which or [name for name in FIGURES if flat or name not in LATENT_FIGURES]
    for name in which:
        try:
            written.append(FIGURES[name](run))
        except Skipped as reason:
            skipped.append(str(reason))
        except ConfigError as reason:  # the figure does not apply to this model or data
            skipped.append(f"{name} figure skipped: {reason}")
    return written, skipped
