"""Evaluate a trained run on its test split: ``python -m keras_ae.evaluate RUN_FOLDER``.

Writes ``report.json`` and ``report.md`` in the run folder, with each metric where it applies:
reconstruction error (squared error, MSE, binary cross-entropy, PSNR); ELBO, importance-weighted
log-likelihood, KL and active units for VAEs; code sparsity; encoder Jacobian norm; PSNR gain on
corrupted inputs; a latent probe (logistic regression and k-NN on the codes, on raw pixels and on
PCA codes of the same size); outlier-detection ROC AUC; compression (bytes per image vs PSNR); and
the figures of :mod:`keras_ae.figures`. Each metric is a small function of (model, images).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from keras_ae import console
from keras_ae import figures as figure_lib
from keras_ae import losses
from keras_ae.contract import Likelihood
from keras_ae.data.dataset import SAMPLE_IMAGES
from keras_ae.errors import ConfigError, exit_code
from keras_ae.models.base import in_batches
from keras_ae.options import non_negative_int, positive_int

log = logging.getLogger("keras_ae")
CORRUPTIONS = {"gaussian": 0.3, "mask": 0.4}  # the corrupted test images every model is scored on
LIKELIHOOD_SAMPLES = 100  # the K of an estimated likelihood unless given
PROBE_IMAGES = 5000  # training images the latent probe's classifiers and the PCA baseline are fitted on


def capped_psnr(x, x_hat) -> np.ndarray:
    """PSNR per image in dB as NumPy, a perfect reconstruction counting as ``losses.PSNR_CAP``."""
    return np.asarray(losses.capped_psnr(x, x_hat))


# ---- reconstruction ---------------------------------------------------------------------------------
def reconstruction_metrics(model, batches) -> dict:
    """Squared error per image (summed over pixels), MSE per pixel, Bernoulli cross-entropy per image (nats),
    PSNR, and the number of images, over ``batches``: a tf.data pipeline of ``images`` or ``(images, labels)``
    batches, or a list of ``(images, labels)`` pairs; and the variance over the images of the inputs and of
    their reconstructions (summed over pixels), which tells a network that ignores its input. Streamed:
    memory does not grow with the split."""
    sums, count, pixels = {"squared_error": 0.0, "cross_entropy": 0.0, "psnr": 0.0}, 0, 1
    moments = {"input": [0.0, 0.0], "output": [0.0, 0.0]}  # per-pixel sums of the values and of their squares
    for batch in batches:
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        x = np.asarray(x)
        reconstructed = np.clip(np.asarray(model.reconstruct(x, y if model.num_classes else None)), 1e-7, 1 - 1e-7)
        cross_entropy = -(x * np.log(reconstructed) + (1 - x) * np.log(1 - reconstructed)).reshape(len(x), -1)
        sums["squared_error"] += float(np.asarray(losses.squared_error(x, reconstructed), np.float64).sum())
        sums["cross_entropy"] += float(cross_entropy.sum(1, dtype=np.float64).sum())
        sums["psnr"] += float(capped_psnr(x, reconstructed).astype(np.float64).sum())
        for name, values in (("input", x), ("output", reconstructed)):
            flat = values.reshape(len(x), -1).astype(np.float64)
            moments[name] = [moments[name][0] + flat.sum(0), moments[name][1] + np.square(flat).sum(0)]
        count, pixels = count + len(x), int(np.prod(x.shape[1:]))
    means = {name: total / max(count, 1) for name, total in sums.items()}
    variances = {f"{name}_variance": float(np.sum(np.maximum(squares / max(count, 1) - np.square(total / max(count, 1)),
                                                             0.0)))
                 for name, (total, squares) in moments.items()}
    return {**means, "mse": means["squared_error"] / pixels, **variances, "images": count}


# ---- properties of the code --------------------------------------------------------------------------
def zero_fraction(model, x, labels=None, threshold: float = 1e-3) -> float:
    """Fraction of code entries with |z| <= threshold over the images ``x``."""
    return float(np.mean(np.abs(model.codes(x, labels)) <= threshold))


def jacobian_norm(model, x, labels=None, batch_size: int = 32) -> float:
    """Mean over images of the exact Frobenius norm of the encoder Jacobian dz/dx."""
    import tensorflow as tf

    from keras_ae.models.contractive import code_and_jacobian_sq

    squared_norm = tf.function(lambda b, y: code_and_jacobian_sq(lambda i: model.encode(i, y), b, "exact")[1],
                               reduce_retracing=True)
    return float(np.sqrt(in_batches(squared_norm, x.astype("float32"), labels, batch_size)).mean())


def denoising_psnr(model, x, noise: str, level: float, labels=None, seed: int = 0) -> dict:
    """Mean PSNR (dB) against the clean ``x`` of the corrupted images and of the model's output from them.

    The corruption is drawn from ``seed``, so every model measured with the same seed sees the same one.
    """
    import keras

    from keras_ae.models.denoising import corrupt

    noisy = np.asarray(corrupt(x, noise, level, keras.random.SeedGenerator(seed)))
    restored = in_batches(model.reconstruct, noisy, labels)
    corrupted_psnr, restored_psnr = float(capped_psnr(x, noisy).mean()), float(capped_psnr(x, restored).mean())
    return {"corrupted": corrupted_psnr, "restored": restored_psnr, "gain": restored_psnr - corrupted_psnr}


# ---- what the codes are good for ---------------------------------------------------------------------
def probe_accuracy(train_features, train_labels, test_features, test_labels) -> dict:
    """Test accuracy of a logistic regression and a 5-nearest-neighbour classifier trained on the features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat = lambda a: np.asarray(a).reshape(len(a), -1)  # noqa: E731
    classifiers = {"logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                   "knn": KNeighborsClassifier(5)}
    return {name: float(classifier.fit(flat(train_features), train_labels).score(flat(test_features), test_labels))
            for name, classifier in classifiers.items()}


def latent_probe(model, train_x, train_y, test_x, test_y) -> dict:
    """The probe on the model's codes, on raw pixels, and on PCA codes of the same size (fitted on train)."""
    from sklearn.decomposition import PCA

    size = min(model.latent_dim, train_x[0].size, len(train_x))
    pca = PCA(size, random_state=0).fit(train_x.reshape(len(train_x), -1))
    project = lambda a: pca.transform(a.reshape(len(a), -1))  # noqa: E731
    return {"codes": probe_accuracy(model.codes(train_x, train_y), train_y, model.codes(test_x, test_y), test_y),
            "pixels": probe_accuracy(train_x, train_y, test_x, test_y),
            f"pca_{size}": probe_accuracy(project(train_x), train_y, project(test_x), test_y)}


@contextlib.contextmanager
def phase(what: str):
    """Log ``evaluating: what`` before a step and how long it took after, so a slow step is never silent."""
    log.info("evaluating: %s ...", what)
    start = time.monotonic()
    yield
    log.info("evaluating: %s: %.1f s", what.split(" on ")[0].split(" over ")[0], time.monotonic() - start)


def pca_baseline(latent_dim: int, train_x, batches) -> dict:
    """The linear baseline at the model's code size: PCA fitted on ``train_x`` (as ``--model pca`` is, its
    reconstructions clipped to the pixel range), with its squared error per image and PSNR streamed over
    the test ``batches``."""
    from sklearn.decomposition import PCA

    flat = train_x.reshape(len(train_x), -1)
    size = min(latent_dim, flat.shape[1], len(flat))
    pca = PCA(size, random_state=0).fit(flat)
    squared, psnr, count = 0.0, 0.0, 0
    for batch in batches:
        x = np.asarray(batch[0] if isinstance(batch, (tuple, list)) else batch)
        x_hat = np.clip(pca.inverse_transform(pca.transform(x.reshape(len(x), -1))), 0.0, 1.0)
        x_hat = x_hat.reshape(x.shape).astype("float32")
        squared += float(np.asarray(losses.squared_error(x, x_hat), np.float64).sum())
        psnr += float(capped_psnr(x, x_hat).astype(np.float64).sum())
        count += len(x)
    return {"components": size, "squared_error": squared / max(count, 1), "psnr": psnr / max(count, 1),
            "train_images": len(flat)}


def findings(model, metrics: dict, run=None) -> list[str]:
    """What the metrics say, in words: the model's own findings (PCA beaten or not, a collapse, a density's
    exact likelihood, ...), then what the codes are good for where it was measured, and the presets that
    train this model on the literature's protocol (for figures that sit beside the papers')."""
    from keras_ae import presets

    lines = list(model.findings(metrics))
    if "probe" in metrics:
        codes, pixels = metrics["probe"]["codes"]["logistic"], metrics["probe"]["pixels"]["logistic"]
        lines.append(f"codes {'beat' if codes > pixels else 'do not beat'} pixels on the linear probe "
                     f"({codes:.3f} against {pixels:.3f})")
    compressed = metrics.get("compression")
    if compressed:
        lines.append(f"compression: {compressed['raw_bytes']} bytes of pixels -> {compressed['int8']['bytes']} bytes "
                     f"of 8-bit code ({compressed['raw_bytes'] / compressed['int8']['bytes']:.1f}x) at "
                     f"{compressed['int8']['psnr']:.1f} dB")
    if run is not None:
        dataset = Path(str(run.config["data"]["load"]["name"])).stem
        for name in presets.on_protocol(run.config["options"].get("model"), dataset):
            lines.append(f"for the published protocol, see the preset {name} ({presets.about(name)['figure']}): "
                         f"python train.py --config {name}")
    return lines


def roc_auc(inlier_scores, outlier_scores) -> float:
    """Area under the ROC curve for telling outliers (higher score) from inliers; 0.5 is chance."""
    from sklearn.metrics import roc_auc_score

    scores = np.concatenate([inlier_scores, outlier_scores])
    truth = np.concatenate([np.zeros(len(inlier_scores)), np.ones(len(outlier_scores))])
    return float(roc_auc_score(truth, scores))


def outlier_detection(model, x, labels=None, seed: int = 0) -> dict:
    """ROC AUC of the model's outlier score (``model.outlier_score``) for test images against uniform-noise
    images, inverted images (1 - x) and upside-down images (harder: a 0, 1 or 8 stays a plausible digit)."""
    rng = np.random.default_rng(seed)
    inliers = model.outlier_scores(x, labels)
    others = {"noise": rng.random(x.shape).astype("float32"), "inverted": (1.0 - x).astype("float32"),
              "upside_down": np.ascontiguousarray(x[:, ::-1])}
    return {name: roc_auc(inliers, model.outlier_scores(images, labels)) for name, images in others.items()}


def compression(model, x, labels=None) -> dict:
    """Bytes per image of the code stored as float32, float16 and 8-bit integers, and the PSNR each gives back.

    8-bit codes are quantized per latent unit between its test-set minimum and maximum (two float32 per
    unit, shared by all images, not counted per image). Raw images take H * W * C bytes as 8-bit pixels.
    """
    from keras_ae import latent

    z = model.codes(x, labels)
    integers, low, step = latent.quantize(z, bits=8)
    stored = {"float32": (z, 4), "float16": (z.astype("float16").astype("float32"), 2),
              "int8": (latent.dequantize(integers, low, step), 1)}
    result = {"raw_bytes": int(np.prod(x.shape[1:]))}
    for name, (decodable, width) in stored.items():
        restored = in_batches(model.decode, decodable, labels)
        result[name] = {"bytes": int(width * z.shape[1]), "psnr": float(capped_psnr(x, restored).mean())}
    return result


# ---- the report ---------------------------------------------------------------------------------------
def evaluate(run, likelihood_samples: int = LIKELIHOOD_SAMPLES, sample_images: int = SAMPLE_IMAGES,
             probe_images: int = PROBE_IMAGES, jacobian_images: int = 200) -> dict:
    """Every metric that applies to ``run`` (a :class:`keras_ae.runs.Run`), with notes on what was skipped.

    The reconstruction metrics stream over the whole test split; the others use at most
    ``sample_images`` test images (and ``probe_images`` training images for the probe), the whole
    split when it is smaller; ``images`` in the report says how many each used. A model without
    codes (a density such as the PixelCNN) gets its likelihood, outlier scores and sampling time only.
    """
    model, splits = run.model, run.splits
    test_x, test_y = splits.sample("test", sample_images)
    labels = test_y if model.num_classes else None
    notes, metrics, images = [], {}, {"sample of the test split": len(test_x)}
    train_x, train_y = splits.sample("train", probe_images)
    code = model.code
    if code is not None:
        with phase(f"reconstruction over the {len(splits.test)} test images"), splits.reading():
            reconstruction = reconstruction_metrics(model, splits.pipeline("test", 256, shuffle=False))
        with phase(f"denoising on {len(test_x)} test images"):
            metrics.update({"reconstruction": reconstruction,
                            "denoising": {noise: denoising_psnr(model, test_x, noise, level, labels)
                                          for noise, level in CORRUPTIONS.items()}})
        images["reconstruction"] = reconstruction["images"]
    if code is not None and code.flat:
        with phase(f"the PCA baseline over the {len(splits.test)} test images"), splits.reading():
            baseline = pca_baseline(code.size, train_x, splits.pipeline("test", 256, shuffle=False))
        with phase(f"codes, Jacobian and compression on {len(test_x)} test images"):
            metrics.update({"pca_baseline": baseline, "zero_fraction": zero_fraction(model, test_x, labels),
                            "jacobian_norm": jacobian_norm(model, test_x[:jacobian_images], None if labels is None
                                                           else labels[:jacobian_images]),
                            "compression": compression(model, test_x, labels)})
        images.update({"PCA baseline (train / test)": f"{baseline['train_images']} / {reconstruction['images']}",
                       "jacobian_norm": min(jacobian_images, len(test_x))})
    elif code is not None:
        metrics["code_bits"] = code.bits
        notes.append(f"the PCA baseline, code sparsity, the encoder Jacobian, float compression, the latent probe "
                     f"and the latent-space figures take flat real-valued codes; this code is {code.dtype} of shape "
                     f"{code.shape}" + (f" ({code.bits:g} bits per image)" if code.bits else ""))
    else:
        notes.append(f"reconstruction, PCA baseline, codes, denoising, compression, the latent probe and the "
                     f"latent-space figures do not apply: {type(model).__name__} has no code")
    with phase(f"outlier scores of {len(test_x)} test images and 3 kinds of outliers"):
        metrics.update({"outlier_auc": outlier_detection(model, test_x, labels),
                        "outlier_score": model.outlier_score_name})
    with phase("sampling time"):
        metrics["sampling"] = sampling_time(model)
    own = model.model_metrics(test_x, labels)
    if own:
        metrics["model"] = own
    likelihood = model.likelihood_report(test_x, labels, num_samples=likelihood_samples)  # (it logs its phase)
    if likelihood is not None:
        metrics["likelihood"] = likelihood.to_json()
    flat = code is not None and code.flat
    if flat and (test_y is None or not splits.train.has_labels):
        notes.append(f"latent probe skipped: dataset {splits.name!r} has no labels")
    elif flat and len(np.unique(train_y)) < 2:
        notes.append(f"latent probe skipped: the training sample of {splits.name!r} holds one class only")
    elif flat:
        with phase(f"latent probe: classifiers on {len(train_x)} training codes"):
            metrics["probe"] = latent_probe(model, train_x, train_y, test_x, test_y)
        images["probe (train / test)"] = f"{len(train_x)} / {len(test_x)}"
    report = {"run": str(run.folder), "model": run.config.get("model_class"), "options": run.config["options"],
              "dataset": {"name": splits.name, "source": splits.source, "test_images": len(splits.test),
                          "train_images": len(splits.train)},
              "architecture": model.architecture, "code": None if code is None else code.describe(),
              "images": images, "metrics": metrics, "notes": notes}
    return {**report, "findings": findings(model, metrics, run)}


def sampling_time(model, count: int = 4) -> dict:
    """Seconds per new image of ``model.sample`` (the class-0 images of a conditional model), over ``count``."""
    labels = None if model.num_classes is None else np.zeros(count, "int32")
    model.sample(count, labels=labels, seed=0)  # (traces the functions for this batch once)
    start = time.monotonic()
    model.sample(count, labels=labels, seed=0)
    seconds = time.monotonic() - start
    return {"images": count, "seconds_per_image": seconds / count}


def summary_row(report: dict) -> dict:
    """The headline figures of a report, as one row of the comparison table (blank where they do not apply)."""
    metrics, options = report["metrics"], report["options"]
    reconstruction = metrics.get("reconstruction", {})
    code = report["code"]
    row = {"run": Path(report["run"]).name, "dataset": report["dataset"]["name"],
           "train images": report["dataset"].get("train_images"), "epochs": options.get("epochs"),
           "model": options.get("model") or report["model"], "arch": report["architecture"],
           "code": None if code is None else "x".join(map(str, code["shape"])) + (
               f" of {code['levels']}" if code["levels"] else ""),
           "test squared error": reconstruction.get("squared_error"),
           "PCA squared error": (metrics.get("pca_baseline") or {}).get("squared_error"),
           "PSNR (dB)": reconstruction.get("psnr")}
    if "probe" in metrics:
        pca_key = next(k for k in metrics["probe"] if k.startswith("pca_"))
        row["probe codes (logreg / kNN)"] = _pair(metrics["probe"]["codes"])
        row["probe pixels"] = _pair(metrics["probe"]["pixels"])
        row["probe PCA"] = _pair(metrics["probe"][pca_key])
    auc = metrics["outlier_auc"]
    row["outlier AUC (noise / inverted / upside-down)"] = (f"{auc['noise']:.3f} / {auc['inverted']:.3f} / "
                                                            f"{auc['upside_down']:.3f}")
    if "zero_fraction" in metrics:
        row["zero codes"] = f"{metrics['zero_fraction']:.1%}"
        row["‖dz/dx‖_F"] = metrics["jacobian_norm"]
        row["denoising gain, Gaussian / mask (dB)"] = (f"{metrics['denoising']['gaussian']['gain']:+.2f} / "
                                                       f"{metrics['denoising']['mask']['gain']:+.2f}")
    if metrics.get("likelihood"):
        likelihood = Likelihood.from_json(metrics["likelihood"])
        row["test NLL (nats)"] = likelihood.headline()
        row["bits/dim"] = likelihood.bits_per_dim
        row.update(likelihood.details)
    if "sampling" in metrics:
        row["sampling s/image"] = metrics["sampling"]["seconds_per_image"]
    return row


def _pair(accuracies: dict) -> str:
    return f"{accuracies['logistic']:.3f} / {accuracies['knn']:.3f}"


def markdown_table(rows: list[dict]) -> str:
    """Rows (dicts) as a markdown table; columns are the union of the keys, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cell = lambda v: f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(run, report: dict, figures: list[str]) -> None:
    """report.json and report.md in the run folder (atomically)."""
    from keras_ae.io import atomic_path, write_json

    write_json(run.folder / "report.json", {**report, "figures": figures})
    lines = [f"# {report['model']} on {report['dataset']['name']}", "",
             f"Run `{report['run']}`, {report['dataset']['test_images']} test images from {report['dataset']['source']}.",
             "Images each metric used: " + ", ".join(f"{what} {count}" for what, count in report["images"].items())
             + " (the reconstruction metrics stream over the whole test split).",
             "", markdown_table([summary_row(report)])]
    lines += [f"- {finding}" for finding in report["findings"]]
    lines += [f"- note: {note}" for note in report["notes"]]
    lines += ["", "## All metrics", "", "```json", json.dumps(report["metrics"], indent=2), "```", "", "## Figures", ""]
    lines += [f"![{name}]({name})" for name in figures]
    with atomic_path(run.folder / "report.md") as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


QUICK = {"sample_images": 500, "probe_images": 1000, "likelihood_samples": 10}  # --quick-eval: a first look in seconds


def sample_settings(likelihood_samples: int | None, test_images: int | None, quick: bool) -> dict:
    """The evaluation's K and test sample: ``QUICK``'s with ``quick``, else the given ones or the defaults
    (``test_images`` 0: the whole split). ConfigError when ``quick`` comes with either: it would ignore them."""
    if quick:
        if likelihood_samples is not None or test_images is not None:
            raise ConfigError("the quick evaluation sets its own sample (500 test images, K = 10): give "
                              "--test-images and --likelihood-samples without it")
        return QUICK
    return {"likelihood_samples": LIKELIHOOD_SAMPLES if likelihood_samples is None else likelihood_samples,
            "sample_images": (SAMPLE_IMAGES if test_images is None else test_images) or None}


def report_run(run, likelihood_samples: int | None = None, figures: bool = True, quick: bool = False,
               test_images: int | None = None) -> dict:
    """Evaluate a loaded run and write its report and figures; returns the report. ``likelihood_samples`` is the
    K of an estimated likelihood (default 100), ``test_images`` the size of the test sample the sampled metrics
    use (default SAMPLE_IMAGES; 0: the whole split). ``quick`` evaluates on fewer images (``QUICK``: 500 test
    images, 1,000 probe images, K = 10), as the report then says (:func:`sample_settings`)."""
    report = evaluate(run, **sample_settings(likelihood_samples, test_images, quick))
    if quick:
        report["notes"].insert(0, "quick evaluation: at most 500 test images, 1,000 probe images and K = 10; "
                                  f"python -m keras_ae.evaluate {run.folder} gives the full one")
    written = []
    if figures:
        with phase("figures"):
            written, skipped = figure_lib.write_all(run)
        report["notes"] += skipped
    write_report(run, report, written)
    return report


def main(argv=None, prog: str = "python -m keras_ae.evaluate") -> int:
    """``python -m keras_ae.evaluate RUN_FOLDER [...]`` (``keras-ae evaluate``)."""
    console.command_started()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders written by train.py")
    parser.add_argument("--likelihood-samples", "--iwae-samples", type=positive_int, default=None, metavar="K",
                        help=f"samples per test image of an estimated likelihood (the K of a bound; default "
                             f"{LIKELIHOOD_SAMPLES}); exact ones take none")
    parser.add_argument("--test-images", type=non_negative_int, default=None, metavar="N",
                        help=f"test images (a seeded sample) the likelihood, outlier scores, codes and probe use "
                             f"(default {SAMPLE_IMAGES:,}; 0: every one)")
    parser.add_argument("--no-figures", action="store_true", help="write the report only")
    parser.add_argument("--quick", action="store_true", help="a first look in seconds: 500 test images, 1,000 "
                                                             "probe images, K = 10 (the report says so)")
    parser.add_argument("--attribute", default=None, metavar="NAME",
                        help="a binary attribute of the data for the arithmetic figure (default: the run's own)")
    args = parser.parse_args(argv)
    try:
        sample_settings(args.likelihood_samples, args.test_images, args.quick)
    except ConfigError as error:
        parser.error(str(error))
    from keras_ae.runs import load_run, locked

    def evaluate_each():
        for folder in args.runs:
            with locked(folder):
                run = load_run(folder)
                if args.attribute is not None:
                    run.splits.check_attribute(args.attribute)
                    run.config["options"]["attribute"] = args.attribute
                report = report_run(run, likelihood_samples=args.likelihood_samples, figures=not args.no_figures,
                                    quick=args.quick, test_images=args.test_images)
                console.save_native_log(folder)
            print(markdown_table([summary_row(report)]))
            for line in report["findings"] + [f"note: {note}" for note in report["notes"]]:
                print(line)

    return exit_code(evaluate_each)


if __name__ == "__main__":
    sys.exit(main())
