"""Samples and completions of trained densities, one figure per run folder, drawn with seed 0.

    KERAS_AE_DATA=../shared/datasets python benchmarks/pixelrnn_figures.py runs/benchmarks/pixelrnn-bench-*

For each run folder: ``--images`` test images (of its own data), their bottom halves drawn given the top
halves, and as many new samples, written to ``docs/figures/pixelrnn/<dataset>-<run folder>.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from keras_ae import plots
from keras_ae.runs import load_data, read_config

FIGURES = Path(__file__).parent.parent / "docs" / "figures" / "pixelrnn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of trained densities")
    parser.add_argument("--images", type=int, default=6, help="test images completed, and samples drawn")
    options = parser.parse_args()
    FIGURES.mkdir(parents=True, exist_ok=True)
    for folder in options.runs:
        config = read_config(folder)
        model = keras.models.load_model(folder / "model.keras")
        test_x, _ = load_data(folder, config).arrays("test")
        shown = test_x[np.linspace(0, len(test_x) - 1, options.images).astype(int)]
        rows = {**model.figure_rows(shown), "samples": model.sample(options.images, seed=0)}
        path = FIGURES / f"{Path(config['data']['name']).stem}-{folder.name}.png"
        plots.image_rows(rows, path, title=f"{folder.name}: completions of test images' bottom halves, and samples")
        print(path)


if __name__ == "__main__":
    main()
