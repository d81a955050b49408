"""PixelRNN beside the PixelCNN on binarized digits: speed, sequential steps, and the exact NLL at equal epochs.

    KERAS_AE_DATA=../shared/datasets python benchmarks/pixelrnn.py --epochs 1
    KERAS_AE_DATA=../shared/datasets python benchmarks/pixelrnn.py --dataset binarized_mnist --epochs 2 \
        --test-images 0 --learning-rate 3e-3

Three networks at their defaults (the PixelCNN; the Row LSTM and the Diagonal BiLSTM at the paper's MNIST
setting, 7 layers of h = 16), on 28x28 digits (mnist-small by default, dynamically binarized), seed 0:

- training images per second (batch 32, Adam at ``--learning-rate`` or each network's own, measured over the
  run's epochs) and the sequential LSTM steps of one network pass (1 for the PixelCNN, H for the Row LSTM,
  W + H - 1 for the Diagonal BiLSTM);
- the exact test NLL (nats, on ``--test-images`` test digits binarized once; 0: all) after ``--epochs`` epochs,
  and the validation NLL after each epoch with the wall time it had taken (for the figure at equal wall time);
- the sampling time per 28x28 image from the Keras model, the SavedModel and the TFLite step file,
  each measured on the last ``--rows`` rows of an image (``complete``) and scaled to the whole image.

Writes ``benchmarks/results/pixelrnn.json`` (mnist-small) or ``pixelrnn-<dataset>.json``.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_ae import data, generate, serving
from keras_ae.export import export_run
from keras_ae.models.base import binarized_once
from keras_ae.train import parse_args, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
NETWORKS = {"PixelCNN": ["--model", "pixelcnn"], "Row LSTM": ["--model", "pixelrnn", "--cell", "row"],
            "Diagonal BiLSTM": ["--model", "pixelrnn", "--cell", "diagonal"]}


def per_image_sampling(seconds: float, rows: int, height: int) -> float:
    return seconds / rows * height


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=1)
    parser.add_argument("--test-images", type=int, default=500, help="test digits the exact NLL is measured on")
    parser.add_argument("--rows", type=int, default=2, help="rows drawn to time sampling (scaled to the image)")
    parser.add_argument("--networks", default=",".join(NETWORKS), help=f"which of {', '.join(NETWORKS)}")
    parser.add_argument("--learning-rate", default=None,
                        help="Adam's learning rate for every network (default: each network's own)")
    options = parser.parse_args()
    unknown = set(options.networks.split(",")) - set(NETWORKS)
    if unknown:
        parser.error(f"unknown networks {sorted(unknown)}; choose from {list(NETWORKS)}")
    root = Path(options.run_root)
    splits = data.load(options.dataset, seed=options.seed)
    test_x, _ = splits.arrays("test")
    test_x = binarized_once(test_x[:options.test_images or None], 0)
    height = splits.image_shape[0]
    rows = {}
    for label in options.networks.split(","):
        flags = NETWORKS[label]
        folder = root / f"pixelrnn-bench-{label.replace(' ', '-').lower()}"
        start = time.monotonic()
        run(parse_args([*flags, "--dataset", options.dataset, "--epochs", str(options.epochs), "--batch-size", "32",
                        *(["--learning-rate", options.learning_rate] if options.learning_rate else []),
                        "--seed", str(options.seed), "--run-dir", str(folder), "--overwrite", "--verbose", "2",
                        "--no-evaluate", "--export-root", str(root / "export"), "--export-name", folder.name]))
        train_seconds = time.monotonic() - start  # (with the export and the figures: an upper bound)
        model = keras.models.load_model(folder / "model.keras")
        nll = float(-np.mean(np.concatenate([np.asarray(model.log_prob(test_x[i:i + 50]))
                                             for i in range(0, len(test_x), 50)])))
        given = height - options.rows
        start = time.monotonic()
        model.complete(test_x[:1], given, seed=0)
        keras_seconds = per_image_sampling(time.monotonic() - start, options.rows, height)
        timings = {"keras": keras_seconds}
        metadata = serving.read_metadata(root / "export" / folder.name)
        for backend in serving.BACKENDS:
            sample, _ = generate.load_density(metadata["model_dir"], backend)
            start = time.monotonic()
            sample(1, seed=0)  # a whole image: what a client pays
            timings[backend] = time.monotonic() - start
        history = json.loads((folder / "results.json").read_text())
        with (folder / "history.csv").open() as f:
            val_nll = [float(row["val_nll"]) for row in csv.DictReader(f)]
        config = json.loads((folder / "config.json").read_text())
        rows[label] = {"flags": flags, "learning_rate": config["options"]["learning_rate"], "test_nll_exact": nll,
                       "train_seconds": train_seconds,
                       "train_images_per_second": len(splits.train) * options.epochs / train_seconds,
                       "sequential_steps_per_pass": getattr(model, "sequential_steps", 1),
                       "network_passes_per_image": model.sampling_passes, "sampling_seconds_per_image": timings,
                       "final_train_nll": history["final"].get("nll"), "final_val_nll": history["final"].get("val_nll"),
                       "val_nll_per_epoch": val_nll,
                       "seconds_per_epoch": train_seconds / options.epochs}  # (epochs of equal size)
        print(label, json.dumps(rows[label]), flush=True)

    RESULTS.mkdir(exist_ok=True)
    name = "pixelrnn.json" if options.dataset == "mnist" else f"pixelrnn-{Path(options.dataset).stem}.json"
    (RESULTS / name).write_text(json.dumps({
        "dataset": splits.source, "train_images": len(splits.train), "test_images": len(test_x),
        "binarization": "dynamic in training; the test images binarized once, seed 0 (a fixed binarization such "
                         "as binarized_mnist's stays as it is)", "epochs": options.epochs,
        "batch_size": 32,
        "seed": options.seed, "networks": rows}, indent=2) + "\n")
    print("| network | test NLL (exact, nats) | training images/s | sequential steps per pass | sampling s/image "
          "(Keras / SavedModel / TFLite) |\n| --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        t = row["sampling_seconds_per_image"]
        print(f"| {label} | {row['test_nll_exact']:.2f} | {row['train_images_per_second']:.1f} | "
              f"{row['sequential_steps_per_pass']} | {t['keras']:.1f} / {t['saved_model']:.1f} / {t['tflite']:.1f} |")


if __name__ == "__main__":
    main()
