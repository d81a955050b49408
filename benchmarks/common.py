"""What the benchmark scripts share: their command line (dataset, epochs, seed, run folders) and a digit judge."""

from __future__ import annotations

import argparse


def benchmark_parser(doc: str, epochs: int, latent_dim: int | None = None) -> argparse.ArgumentParser:
    """A parser with --dataset, --epochs, --seed, --run-root (and --latent-dim when given a default)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="dataset name or path (mnist: the local mnist-small)")
    parser.add_argument("--epochs", type=int, default=epochs, help="training epochs of every model")
    parser.add_argument("--seed", type=int, default=0, help="seed of splits, shuffling and initialisation")
    parser.add_argument("--run-root", default="runs/benchmarks", help="where the run folders go")
    if latent_dim is not None:
        parser.add_argument("--latent-dim", type=int, default=latent_dim, help="code size of every model")
    return parser


def digit_classifier(x, y, seed: int):
    """A small CNN trained on the training split, to judge which digit a generated image shows."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(x.shape[1:]),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dropout(0.3), keras.layers.Dense(10),
    ])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=128, verbose=0)
    return model
