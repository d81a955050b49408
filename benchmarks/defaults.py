"""Does every model do its job at its default flags? One `train.py` run per row, nothing else chosen.

    KERAS_AE_DATA=../shared/datasets python benchmarks/defaults.py

Every run is `train.py --model M --dataset mnist` (the local mnist-small copy when $KERAS_AE_DATA points
at it) at the default epochs, seed 0; the conv rows add only `--arch conv --latent-dim 30`, the size of
Hinton & Salakhutdinov's comparison with PCA. Each model is judged on the test split against the plain
autoencoder of the same shape (or PCA fitted on the same training split), by what it is for:

- conv AE (30-D): squared error per image <= 0.25x PCA's at 30 components;
- sparse: >= 50% of code entries exactly zero;
- contractive: mean exact ||dz/dx||_F >= 10x lower than the plain AE's;
- denoising: PSNR of its output on corrupted test images >= +2 dB over the plain AE's, for the default
  (Gaussian) noise and for `--noise mask`, scored on the report's corruptions (evaluate.CORRUPTIONS);
- conditional VAE: >= 97% of prior samples classified as the asked digit by a CNN trained on the
  training split.

The squared error of each row beside the plain AE's is the cost of the regularizer. `--extra LABEL=FLAGS`
adds flags to one row (to measure an alternative default), `--only LABELS` runs some rows (with their
references); such a trial (or one with --epochs) only prints its table. The run at the defaults writes
``benchmarks/results/defaults.json`` (``defaults-<dataset>.json`` for another ``--dataset``, e.g. mnist60k,
the official 60,000 training images); every run prints a markdown table.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import keras
import numpy as np

from keras_ae import data, evaluate
from keras_ae.train import build_parser, run

from common import benchmark_parser, digit_classifier  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
CONV_30 = ["--arch", "conv", "--latent-dim", "30"]
# label -> (model flags, the row it is judged against)
ROWS = {
    "ae": (["--model", "ae"], None),
    "pca 30-D": (["--model", "pca", "--latent-dim", "30"], None),
    "conv ae 30-D": (["--model", "ae", *CONV_30], "pca 30-D"),
    "sparse": (["--model", "sparse"], "ae"),
    "contractive": (["--model", "contractive"], "ae"),
    "denoising": (["--model", "denoising"], "ae"),
    "denoising --noise mask": (["--model", "denoising", "--noise", "mask"], "ae"),
    "cvae": (["--model", "cvae"], None),
}


def judge(label: str, row: dict, reference: dict | None) -> dict:
    """The one figure that says whether the row's model does its job, with the target it must meet."""
    if label.startswith("conv ae"):
        return {"figure": "squared error / PCA's", "value": row["squared_error"] / reference["squared_error"],
                "target": 0.25, "better": "lower"}
    if label == "sparse":
        return {"figure": "exact zeros in the code", "value": row["exact_zeros"], "target": 0.5, "better": "higher"}
    if label == "contractive":
        return {"figure": "plain AE's ||dz/dx||_F / its own", "value": reference["jacobian_norm"] / row["jacobian_norm"],
                "target": 10.0, "better": "higher"}
    if label.startswith("denoising"):
        noise = "mask" if "mask" in label else "gaussian"
        gain = row["psnr"][noise] - reference["psnr"][noise]
        return {"figure": f"dB over the plain AE, {noise} {evaluate.CORRUPTIONS[noise]}", "value": gain, "target": 2.0,
                "better": "higher"}
    if label == "cvae":
        return {"figure": "prior samples of the asked class", "value": row["asked_class"], "target": 0.97,
                "better": "higher"}
    return {}


def measure(model, test_x, test_y, classifier, seed: int) -> dict:
    labels = test_y if model.num_classes else None
    row = {"squared_error": evaluate.reconstruction_metrics(model, [(test_x, labels)])["squared_error"]}
    if model.num_classes:
        asked = np.repeat(np.arange(model.num_classes), 100)
        drawn = np.asarray(model.sample(len(asked), labels=asked, seed=seed))
        row["asked_class"] = float(np.mean(np.argmax(classifier.predict(drawn, verbose=0), -1) == asked))
        return row
    codes = np.asarray(model.codes(test_x))
    row["exact_zeros"] = float(np.mean(codes == 0.0))
    row["jacobian_norm"] = evaluate.jacobian_norm(model, test_x[:500])
    row["psnr"] = {noise: evaluate.denoising_psnr(model, test_x, noise, level, seed=seed)["restored"]
                   for noise, level in evaluate.CORRUPTIONS.items()}
    return row


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=0)
    parser.set_defaults(epochs=None)
    parser.add_argument("--only", default=None, help="comma-separated row labels to run (their references too)")
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=FLAGS",
                        help="more train.py flags for one row, e.g. 'sparse=--penalty-weight 0.05'")
    options = parser.parse_args()
    extra = dict(item.split("=", 1) for item in options.extra)
    wanted = list(ROWS) if options.only is None else options.only.split(",")
    wanted = [label for label in ROWS if label in wanted or any(ROWS[w][1] == label for w in wanted if w in ROWS)]

    splits = data.load(options.dataset, seed=options.seed)
    train_x, train_y = splits.arrays("train")
    test_x, test_y = splits.arrays("test")
    classifier = digit_classifier(train_x, train_y, options.seed) if "cvae" in wanted else None
    rows = {}
    for label in wanted:
        flags = ROWS[label][0] + shlex.split(extra.get(label, ""))
        if options.epochs is not None:
            flags += ["--epochs", str(options.epochs)]
        start = time.monotonic()
        run_dir = run(build_parser().parse_args([
            *flags, "--dataset", options.dataset, "--seed", str(options.seed), "--overwrite", "--verbose", "2",
            "--run-dir", f"{options.run_root}/defaults-{label.replace(' ', '_')}", "--no-evaluate", "--no-export"]))
        seconds = time.monotonic() - start
        epochs = len((run_dir / "history.csv").read_text().splitlines()) - 1  # the default resolved by train.py
        model = keras.models.load_model(run_dir / "model.keras")
        rows[label] = {"flags": flags, "epochs": epochs, "train_seconds": round(seconds, 1),
                       **measure(model, test_x, test_y, classifier, options.seed)}
    for label, row in rows.items():
        reference = rows.get(ROWS[label][1])
        row["job"] = judge(label, row, reference)
        if row["job"]:
            better = row["job"]["better"] == "higher"
            row["job"]["met"] = row["job"]["value"] >= row["job"]["target"] if better else \
                row["job"]["value"] <= row["job"]["target"]

    if not extra and options.only is None and options.epochs is None:  # a trial only prints its table
        RESULTS.mkdir(exist_ok=True)
        name = "defaults.json" if options.dataset == "mnist" else f"defaults-{options.dataset}.json"
        (RESULTS / name).write_text(json.dumps({
            "dataset": splits.source, "train_images": len(train_x), "test_images": len(test_x),
            "seed": options.seed, "rows": rows}, indent=2) + "\n")
    print("| row | flags | epochs | train s | test squared error | the job | measured | target |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        job = row["job"]
        shown = "" if not job else (f"{job['value']:.1%}" if job["target"] < 1 and job["better"] == "higher"
                                    else f"{job['value']:.2f}")
        target = "" if not job else ("<= " if job["better"] == "lower" else ">= ") + (
            f"{job['target']:.0%}" if job["target"] < 1 and job["better"] == "higher" else f"{job['target']:g}")
        print(f"| {label} | `{' '.join(row['flags'])}` | {row['epochs']} | {row['train_seconds']} | "
              f"{row['squared_error']:.2f} | {job.get('figure', '')} | {shown}{' (met)' if job.get('met') else ''} "
              f"| {target} |")


if __name__ == "__main__":
    main()
