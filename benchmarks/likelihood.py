"""Exact likelihood beside the bound: PixelCNNs and VAEs on the same binarized MNIST test split.

    KERAS_AE_DATA=../shared/datasets python benchmarks/likelihood.py [--rows LABELS] [--iwae-samples 1000]

Every row is one `train.py` run on mnist-small (6,300 training images after the seeded split),
binarized dynamically in training, seed 0. All are scored on the 1,000 test digits binarized once
(seed 0, as every report does): the PixelCNNs by their exact negative log-likelihood, the VAEs by
the importance-weighted bound with K = ``--iwae-samples`` (an upper bound on their NLL in nats;
the ELBO beside it). Columns: NLL in nats per image and bits per dimension, training time, and the
time to draw one new image (a PixelCNN draws 784 pixels one after another; a VAE decodes once).
The run of every row writes ``benchmarks/results/likelihood.json``; every run prints a markdown table.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import keras

from keras_ae import data, evaluate
from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
VAE = ["--model", "vae", "--binarize", "--latent-dim", "32"]
ROWS = {  # label -> (train.py flags, epochs)
    "PixelCNN": (["--model", "pixelcnn"], 30),
    "class-conditional PixelCNN": (["--model", "cpixelcnn"], 30),
    "conv VAE": ([*VAE, "--arch", "conv"], 50),
    "MLP VAE": ([*VAE, "--arch", "mlp"], 50),
}


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=0)
    parser.set_defaults(epochs=None)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row labels to run")
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=FLAGS",
                        help="more train.py flags for one row (a new row label measures an option: "
                             "'conv VAE, --iwae-k 5=--iwae-k 5' trains the conv VAE with them)")
    parser.add_argument("--iwae-samples", type=int, default=1000, help="K of the VAEs' importance-weighted bound")
    options = parser.parse_args()
    extra = dict(item.split("=", 1) for item in options.extra)
    labels = [label for label in options.rows.split(",") if label] + [label for label in extra if label not in ROWS]

    splits = data.load(options.dataset, seed=options.seed)
    test_x, test_y = splits.arrays("test")
    rows = {}
    for label in labels:
        base = label.split(",")[0]
        flags, epochs = ROWS[base]
        flags = flags + shlex.split(extra.get(label, "")) + ["--epochs", str(options.epochs or epochs)]
        slug = label.replace(" ", "_").replace(",", "").replace("-", "")
        start = time.monotonic()
        run_dir = run(build_parser().parse_args([
            *flags, "--dataset", options.dataset, "--seed", str(options.seed), "--overwrite", "--verbose", "2",
            "--run-dir", f"{options.run_root}/likelihood-{slug}", "--no-evaluate", "--no-export"]))
        train_seconds = time.monotonic() - start
        model = keras.models.load_model(run_dir / "model.keras")
        labels_given = test_y if model.num_classes else None
        # Scored as the reports score them: on the test split binarized once (seed 0).
        report = model.likelihood_report(test_x, labels_given, num_samples=options.iwae_samples, seed=0)
        rows[label] = {"flags": flags, "train_seconds": round(train_seconds, 1), **report,
                       "sampling_seconds_per_image": evaluate.sampling_time(model)["seconds_per_image"]}
        print(f"{label}: {rows[label]}", flush=True)

    if labels == list(ROWS) and options.epochs is None:  # a run of some rows (or other epochs) only prints
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "likelihood.json").write_text(json.dumps({
            "dataset": splits.source, "train_images": len(splits.train), "test_images": len(test_x),
            "binarization": "dynamic in training; the test split binarized once, seed 0",
            "iwae_samples": options.iwae_samples, "seed": options.seed, "rows": rows}, indent=2) + "\n")
    print("| model | flags | test NLL (nats) | bits/dim | ELBO (nats) | training | sampling per image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        nll = f"{row['nll']:.2f}" if row.get("exact") else f"<= {row['nll']:.2f} (K = {row['iwae_samples']})"
        elbo = f"{row['elbo']:.2f}" if "elbo" in row else ""
        print(f"| {label} | `{' '.join(row['flags'])}` | {nll} | {row['bits_per_dim']:.4f} | "
              f"{elbo} | {row['train_seconds']:.0f} s | {row['sampling_seconds_per_image'] * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
