"""Exact likelihood beside the bound: PixelCNNs and VAEs on the same binarized MNIST test split.

    KERAS_AE_DATA=../shared/datasets python benchmarks/likelihood.py [--row LABEL ...] [--iwae-samples 1000]

(every row: about 4.5 hours on two cores; one row: ``--row "conv VAE, --batch-size 32 --mixture-prior 10"``)

Every row is one `train.py` run on mnist-small (6,300 training images after the seeded split),
binarized dynamically in training, seed 0. All are scored on the 1,000 test digits binarized once
(seed 0, as every report does): the PixelCNNs by their exact negative log-likelihood, the VAEs by
the importance-weighted bound with K = ``--iwae-samples`` (an upper bound on their NLL in nats;
the ELBO beside it). Columns: NLL in nats per image and bits per dimension, training time, and the
time to draw one new image (a PixelCNN draws 784 pixels one after another; a VAE decodes once).
A run of rows as declared (``--row``, no ``--extra`` or ``--epochs``) writes them into
``benchmarks/results/likelihood.json`` beside the rows measured before; every run prints a markdown table.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import keras

from keras_ae import data, evaluate
from keras_ae.contract import Likelihood
from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
VAE = ["--model", "vae", "--binarize", "--latent-dim", "32"]
PIXELCNN, CONV_VAE, BATCH_32 = ["--model", "pixelcnn"], [*VAE, "--arch", "conv"], ["--batch-size", "32"]
COSINE, UNDILATED = ["--lr-schedule", "cosine"], ["--dilations", "1"]  # (undilated: the default until 2026-12-02)
ROWS = {  # label -> (train.py flags, epochs): the models, then each option that moves them as a row of its own
    "PixelCNN": (PIXELCNN, 30),
    "PixelCNN, --batch-size 32 --lr-schedule cosine": ([*PIXELCNN, *BATCH_32, *COSINE], 15),
    "PixelCNN, --dilations 1": ([*PIXELCNN, *UNDILATED], 30),
    "PixelCNN, --dilations 1 --batch-size 32": ([*PIXELCNN, *UNDILATED, *BATCH_32], 30),
    "PixelCNN, --dilations 1 --batch-size 32 --lr-schedule cosine": ([*PIXELCNN, *UNDILATED, *BATCH_32, *COSINE], 40),
    "class-conditional PixelCNN": (["--model", "cpixelcnn"], 30),
    "class-conditional PixelCNN, --dilations 1": (["--model", "cpixelcnn", *UNDILATED], 30),
    "conv VAE": (CONV_VAE, 50),
    "conv VAE, --iwae-k 5": ([*CONV_VAE, "--iwae-k", "5"], 50),
    "conv VAE, --batch-size 32": ([*CONV_VAE, *BATCH_32], 50),
    "conv VAE, --batch-size 32 --lr-schedule cosine": ([*CONV_VAE, *BATCH_32, "--lr-schedule", "cosine"], 50),
    "conv VAE, --batch-size 32 --mixture-prior 10": ([*CONV_VAE, *BATCH_32, "--mixture-prior", "10"], 50),
    "MLP VAE": ([*VAE, "--arch", "mlp"], 50),
}


def save(rows: dict, protocol: dict) -> None:
    """Write ``rows`` into results/likelihood.json, keeping the other rows of a run under the same protocol
    (so that one row can be measured again without the others), in the order of ROWS."""
    path = RESULTS / "likelihood.json"
    kept = json.loads(path.read_text()) if path.is_file() else {}
    if any(kept.get(key) != value for key, value in protocol.items()):
        kept = {}  # another dataset, K or seed: the old rows do not compare
    merged = {**kept.get("rows", {}), **rows}
    RESULTS.mkdir(exist_ok=True)
    path.write_text(json.dumps({**protocol, "rows": {label: merged[label] for label in ROWS if label in merged}},
                               indent=2) + "\n")


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=0)
    parser.set_defaults(epochs=None)
    parser.add_argument("--row", action="append", default=[], choices=list(ROWS), metavar="LABEL",
                        help="a row to run (repeatable; default: every row, or none when --extra is given): "
                             + "; ".join(ROWS))
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=FLAGS",
                        help="more train.py flags for one row, a trial (a new label measures an option on "
                             "the row its label starts with: 'conv VAE, --free-bits 0.1=--free-bits 0.1')")
    parser.add_argument("--iwae-samples", type=int, default=1000, help="K of the VAEs' importance-weighted bound")
    options = parser.parse_args()
    extra = dict(item.split("=", 1) for item in options.extra)
    labels = options.row or ([] if extra else list(ROWS))
    labels += [label for label in extra if label not in labels]

    splits = data.load(options.dataset, seed=options.seed)
    test_x, test_y = splits.arrays("test")
    rows = {}
    for label in labels:
        flags, epochs = ROWS[label if label in ROWS else label.split(",")[0]]  # (a new label: its base row's)
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
        rows[label] = {"flags": flags, "measured": time.strftime("%Y-%m-%d"), "train_seconds": round(train_seconds, 1),
                       **report.to_json(),
                       "sampling_seconds_per_image": evaluate.sampling_time(model)["seconds_per_image"]}
        print(f"{label}: {rows[label]}", flush=True)

    if not extra and options.epochs is None:  # rows as declared update theirs; a trial only prints
        save(rows, {"dataset": splits.source, "train_images": len(splits.train), "test_images": len(test_x),
                    "binarization": "dynamic in training; the test split binarized once, seed 0",
                    "iwae_samples": options.iwae_samples, "seed": options.seed})
    print("| model | flags | test NLL (nats) | bits/dim | ELBO (nats) | training | sampling per image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        likelihood = Likelihood.from_json(row)
        nll, elbo = likelihood.headline(), likelihood.details.get("ELBO (nats)")
        elbo = "" if elbo is None else f"{elbo:.2f}"
        print(f"| {label} | `{' '.join(row['flags'])}` | {nll} | {row['bits_per_dim']:.4f} | "
              f"{elbo} | {row['train_seconds']:.0f} s | {row['sampling_seconds_per_image'] * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
