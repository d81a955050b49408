"""PixelCNN, Row LSTM and Diagonal BiLSTM on real colour: 32x32 patches of scikit-learn's two photographs.

    python benchmarks/pixelrnn_colour.py --epochs 3

scikit-learn ships two real photographs (china.jpg and flower.jpg, 427x640 RGB). Each is split by region so
that no test patch overlaps a training one: the left 464 columns give the training patches (32x32, stride
16: 1,400 of them, of which 10% validate), the last 160 columns the test patches (32x32, stride 32, no overlap: 130); the 16
columns between belong to neither. Each network models the 3 x 256 levels with a 256-way softmax per
channel (``--likelihood categorical``), seed 0, batch 32, at equal epochs. Reported: the exact test
bits/dim, training images/s, and samples and completions of the bottom half (``docs/figures/pixelrnn/``).

The CIFAR-10 anchors (PixelCNN 3.14, Row LSTM 3.07, Diagonal BiLSTM 3.00 bits/dim) are on another set and
are not comparable; their ordering is what to keep in mind.

Writes ``benchmarks/results/pixelrnn-colour.json`` and ``docs/figures/pixelrnn/colour-<network>.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_ae import data, plots
from keras_ae.contract import bits_per_dim
from keras_ae.models import MODELS
from keras_ae.train import train

from common import benchmark_parser  # benchmarks/common.py, beside this script

ROOT = Path(__file__).parent.parent
RESULTS = Path(__file__).parent / "results"
FIGURES = ROOT / "docs" / "figures" / "pixelrnn"
NETWORKS = {"PixelCNN": ("pixelcnn", {}), "Row LSTM": ("pixelrnn", {"cell": "row"}),
            "Diagonal BiLSTM": ("pixelrnn", {"cell": "diagonal"})}
SIDE, TRAIN_COLUMNS, TEST_FROM = 32, 464, 480  # patches left of TRAIN_COLUMNS train; right of TEST_FROM test


def patches(image: np.ndarray, columns: slice, stride: int) -> np.ndarray:
    """The SIDE x SIDE patches of ``image[:, columns]`` at ``stride`` (uint8, N x 32 x 32 x 3)."""
    region = image[:, columns]
    return np.stack([region[r:r + SIDE, c:c + SIDE] for r in range(0, region.shape[0] - SIDE + 1, stride)
                     for c in range(0, region.shape[1] - SIDE + 1, stride)])


def photo_patches(path: Path) -> Path:
    """An .npz of the training and test patches of both photographs (x_train, x_test)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    train = np.concatenate([patches(p, slice(0, TRAIN_COLUMNS), SIDE // 2) for p in photos])
    test = np.concatenate([patches(p, slice(TEST_FROM, None), SIDE) for p in photos])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=train, x_test=test)
    return path


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=3)
    parser.add_argument("--networks", default=",".join(NETWORKS), help=f"which of {', '.join(NETWORKS)}")
    parser.add_argument("--figure-images", type=int, default=2, help="samples and completions per figure")
    parser.add_argument("--reuse", action="store_true", help="score a network already trained in its run folder")
    options = parser.parse_args()
    unknown = set(options.networks.split(",")) - set(NETWORKS)
    if unknown:
        parser.error(f"unknown networks {sorted(unknown)}; choose from {list(NETWORKS)}")
    root = Path(options.run_root)
    dataset = photo_patches(root / "photo-patches.npz")
    splits = data.load(str(dataset), seed=options.seed)
    train_count, (test_x, _) = len(splits.train), splits.arrays("test")
    FIGURES.mkdir(parents=True, exist_ok=True)
    rows = {}
    for label in options.networks.split(","):
        folder = root / f"pixelrnn-colour-{label.replace(' ', '-').lower()}"
        name, flags = NETWORKS[label]
        if not (options.reuse and (folder / "model.keras").is_file()):
            keras.utils.set_random_seed(options.seed)
            model = MODELS[name](input_shape=splits.image_shape, likelihood="categorical", seed=options.seed, **flags)
            train(model, splits, folder, epochs=options.epochs, batch_size=32, seed=options.seed, verbose=2,
                  overwrite=True)  # (the API: no figures of its own, which take long at 3,072 passes an image)
        model = keras.models.load_model(folder / "model.keras")
        train_seconds = json.loads((folder / "results.json").read_text())["training_seconds"]
        nll = -np.concatenate([np.asarray(model.log_prob(test_x[i:i + 26])) for i in range(0, len(test_x), 26)])
        shown = test_x[::len(test_x) // options.figure_images][:options.figure_images]
        start = time.monotonic()
        figure = model.figure_rows(shown)
        figure["samples"] = model.sample(options.figure_images, seed=0)
        sampling_seconds = (time.monotonic() - start) / (1.5 * options.figure_images)  # half + whole images
        picture = f"colour-{label.replace(' ', '-').lower()}.png"
        plots.image_rows(figure, FIGURES / picture, title=f"{label}, 32x32 photo patches, {options.epochs} epochs: "
                                                         f"{bits_per_dim(float(nll.mean()), model.density.positions):.2f} bits/dim")
        rows[label] = {"model": name, "options": {**flags, "likelihood": "categorical"},
                       "test_bits_per_dim": bits_per_dim(float(nll.mean()), model.density.positions),
                       "test_nll_nats": float(nll.mean()), "train_seconds": train_seconds, "epochs_run": options.epochs,
                       "train_images_per_second": train_count * options.epochs / train_seconds,
                       "sampling_seconds_per_image_keras": sampling_seconds, "figure": f"docs/figures/pixelrnn/{picture}"}
        print(label, json.dumps(rows[label]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pixelrnn-colour.json").write_text(json.dumps({
        "dataset": "sklearn load_sample_images: china.jpg and flower.jpg, 32x32 patches",
        "train_patches": train_count, "validation": "10% of the training patches", "test_patches": len(test_x),
        "split": f"columns < {TRAIN_COLUMNS} train (stride 16), >= {TEST_FROM} test (stride 32, no overlap)",
        "epochs": options.epochs, "seed": options.seed, "networks": rows}, indent=2) + "\n")
    print("| network | test bits/dim | training images/s |\n| --- | --- | --- |")
    for label, row in rows.items():
        print(f"| {label} | {row['test_bits_per_dim']:.2f} | {row['train_images_per_second']:.1f} |")


if __name__ == "__main__":
    main()
