"""Trials toward the conv autoencoder's target: a 30-D code at <= 0.25x PCA's test squared error.

    KERAS_AE_DATA=../shared/datasets python benchmarks/conv_ae_trials.py VARIANT [EPOCHS]

One variant per run (about 2 to 9 min each at 24 epochs on two cores), trained with ``fit`` on the
6,300 mnist-small training images (no validation split held back from them, unlike train.py), seed 0,
and scored by the squared error per image on 1,000 of the training images and on the 1,000 test
images, beside PCA's 12.2569 at 30 components (benchmarks/results/defaults.json). It prints one JSON line.
Variants (BENCHMARKS.md, "Defaults that do their job", gives their figures):

- ``base``: the default conv networks (32, 64 filters, stride-2 convs, transposed convs);
- ``cosine`` / ``cosine-2e-3``: ``--lr-schedule cosine`` from 1e-3 / 2e-3;
- ``upsample``: ``--up upsample``; ``upsample-b32``: the same at batch 32 (4x the steps);
  ``upsample-shift-b32``: that, trained on images shifted at random by up to 2 pixels each way;
- ``three-stages`` / ``three-stages-bce``: ``--widths 32,64,128`` with the squared-error / Bernoulli loss;
- ``deeper`` / ``deeper-bce``: networks of our own with a stride-1 convolution beside every stage.
"""

from __future__ import annotations

import json
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from keras_ae import data
from keras_ae.data.dataset import shifted  # what train.py --augment-shift uses
from keras_ae.models import Autoencoder

PCA_30 = 12.2569  # test squared error of PCA at 30 components on this split (benchmarks/defaults.py)
LATENT = 30


def deeper_networks(widths=(32, 64)):
    """Encoder and decoder with a stride-1 3x3 convolution beside each stride-2 stage."""
    images = keras.Input((28, 28, 1))
    x = images
    for filters in widths:
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    encoder = keras.Model(images, {"z": layers.Dense(LATENT)(layers.Flatten()(x))})
    z = keras.Input((LATENT,))
    x = layers.Reshape((7, 7, widths[-1]))(layers.Dense(7 * 7 * widths[-1], activation="relu")(z))
    for filters in reversed(widths):
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    return encoder, keras.Model(z, layers.Conv2DTranspose(1, 3, padding="same")(x))


def main() -> None:
    variant, epochs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 24
    keras.utils.set_random_seed(0)
    splits = data.load("mnist", seed=0)
    train_x, test_x = splits.arrays("train")[0], splits.arrays("test")[0]
    batch_size = 32 if variant.endswith("b32") else 128
    loss = "bce" if variant.endswith("bce") else "mse"
    rate = 1e-3
    if variant.startswith("cosine"):
        rate = keras.optimizers.schedules.CosineDecay(2e-3 if variant.endswith("2e-3") else 1e-3,
                                                      epochs * int(np.ceil(len(train_x) / batch_size)))
    if variant.startswith("deeper"):
        encoder, decoder = deeper_networks()
        model = Autoencoder(encoder=encoder, decoder=decoder, reconstruction=loss)
    elif variant.startswith("three-stages"):
        model = Autoencoder((28, 28, 1), latent_dim=LATENT, arch="conv", widths=(32, 64, 128), reconstruction=loss)
    elif variant.startswith("upsample"):
        model = Autoencoder((28, 28, 1), latent_dim=LATENT, arch="conv", up="upsample")
    elif variant in ("base", "cosine", "cosine-2e-3"):
        model = Autoencoder((28, 28, 1), latent_dim=LATENT, arch="conv")
    else:
        sys.exit(f"error: unknown variant {variant!r}; see the docstring")
    model.compile(optimizer=keras.optimizers.Adam(rate))
    start = time.monotonic()
    if "-shift-" in variant:
        images = tf.data.Dataset.from_tensor_slices(train_x).shuffle(len(train_x), seed=0)
        model.fit(shifted(images, 2, seed=0).batch(batch_size).prefetch(2), epochs=epochs, verbose=0)
    else:
        model.fit(train_x, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    seconds = time.monotonic() - start

    def squared_error(x):
        return float(np.mean(np.sum((model.predict(x, verbose=0, batch_size=256) - x) ** 2, axis=(1, 2, 3))))

    test = squared_error(test_x)
    print(json.dumps({"variant": variant, "epochs": epochs, "train_seconds": round(seconds),
                      "train_squared_error": squared_error(train_x[:1000]), "test_squared_error": test,
                      "of_pca": test / PCA_30}))


if __name__ == "__main__":
    main()
