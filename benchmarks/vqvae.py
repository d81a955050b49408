"""The VQ-VAE against the conv AE and PCA at the same bits per image, and its PixelCNN prior's samples.

    KERAS_AE_DATA=../shared/datasets python benchmarks/vqvae.py --epochs 20

Trains through train.py, seed 0, on mnist-small (6,300 training images):

- the VQ-VAE at its defaults (a 7x7 grid of indices into 64 entries: 49 x 6 = 294 bits per image),
  with its PixelCNN prior trained on the training codes as the second stage;
- a conv autoencoder whose 37-D code, stored as 8-bit integers per unit (what the report's
  compression does), takes 296 bits; and PCA with 37 components, 8-bit and float32;
- a conv VAE (16-D, binarized) for the samples beside the VQ-VAE's.

Reports the test squared error per image of each at its bits, the VQ-VAE's codebook perplexity on
the test codes, the fraction of 500 prior samples that a CNN trained on the training digits labels
with confidence >= 0.9, and whether the Keras model, the SavedModel and the TFLite file draw the same
images for the same seed. Writes ``benchmarks/results/vqvae.json``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.decomposition import PCA

from keras_ae import data, generate, latent, serving
from keras_ae.export import export_run
from keras_ae.models.base import in_batches
from keras_ae.train import parse_args, run

from common import benchmark_parser, digit_classifier  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
CONFIDENT = 0.9


def squared_error(x, x_hat) -> float:
    return float(np.mean(np.sum((np.asarray(x, np.float64) - np.asarray(x_hat, np.float64)) ** 2, axis=(1, 2, 3))))


def confident_fraction(classifier, images) -> float:
    """Share of ``images`` the classifier gives one digit with probability >= CONFIDENT."""
    probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(classifier.predict(images, verbose=0), axis=-1))
    return float(np.mean(probabilities.max(axis=-1) >= CONFIDENT))


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=20)
    parser.add_argument("--samples", type=int, default=500, help="prior samples judged per model")
    parser.add_argument("--ae-latent", type=int, default=37, help="conv AE / PCA units (8 bits each)")
    options = parser.parse_args()
    root = Path(options.run_root)
    common = ["--dataset", options.dataset, "--epochs", str(options.epochs), "--seed", str(options.seed),
              "--overwrite", "--verbose", "2", "--no-evaluate"]
    flags = {"vqvae": ["--model", "vqvae", "--prior-epochs", str(options.epochs)],
             "conv ae": ["--model", "ae", "--arch", "conv", "--latent-dim", str(options.ae_latent), "--no-export"],
             "conv vae": ["--model", "vae", "--arch", "conv", "--latent-dim", "16", "--binarize", "--no-export"]}
    runs, seconds = {}, {}
    for name, extra in flags.items():
        start = time.monotonic()
        runs[name] = run(parse_args([*extra, *common, "--run-dir", str(root / f"vqvae-bench-{name.replace(' ', '-')}"),
                                     "--export-root", str(root / "export")]))
        seconds[name] = time.monotonic() - start
    models = {name: keras.models.load_model(folder / "model.keras") for name, folder in runs.items()}

    splits = data.load(options.dataset, seed=options.seed)
    train_x, train_y = splits.arrays("train")
    test_x, _ = splits.arrays("test")
    vq, ae = models["vqvae"], models["conv ae"]
    bits = vq.code.bits
    rows = {"VQ-VAE (7x7 indices, K = 64)": {"bits": bits, "squared_error": squared_error(
        test_x, in_batches(vq.reconstruct, test_x))}}
    codes = ae.codes(test_x)
    integers, low, step = latent.quantize(codes, bits=8)
    rows[f"conv AE, {options.ae_latent}-D code at 8 bits"] = {
        "bits": 8 * options.ae_latent, "squared_error": squared_error(
            test_x, in_batches(ae.decode, latent.dequantize(integers, low, step)))}
    rows[f"conv AE, {options.ae_latent}-D code at float32"] = {
        "bits": 32 * options.ae_latent, "squared_error": squared_error(test_x, in_batches(ae.reconstruct, test_x))}
    pca = PCA(options.ae_latent, random_state=0).fit(train_x.reshape(len(train_x), -1))
    coefficients = pca.transform(test_x.reshape(len(test_x), -1))
    for label, stored in (("8 bits", latent.dequantize(*latent.quantize(coefficients, bits=8))),
                          ("float32", coefficients)):
        restored = np.clip(pca.inverse_transform(stored), 0, 1).reshape(test_x.shape)
        rows[f"PCA, {options.ae_latent} components at {label}"] = {
            "bits": (8 if label == "8 bits" else 32) * options.ae_latent, "squared_error": squared_error(test_x, restored)}
    usage = vq.code_usage(test_x)

    classifier = digit_classifier(train_x, train_y, options.seed)
    judged = {name: confident_fraction(classifier, np.asarray(models[name].sample(options.samples, seed=1)))
              for name in ("vqvae", "conv vae")}

    export_dir = export_run(runs["vqvae"], root / "export", name="vqvae-bench").parent
    keras_codes = vq.prior.sample(16, seed=7)
    keras_images = np.asarray(vq.decode(keras_codes))
    same = {}
    for backend in serving.BACKENDS:
        start = time.monotonic()
        codes16 = generate.load_prior(export_dir, backend)(16, seed=7)
        images = generate.load_decoder(export_dir, backend)(codes16)
        same[backend] = {"codes_equal": bool(np.array_equal(codes16, keras_codes)),
                         "max_abs_image_difference": float(np.abs(images - keras_images).max()),
                         "seconds_per_image": (time.monotonic() - start) / 16}

    RESULTS.mkdir(exist_ok=True)
    report = {"dataset": splits.source, "train_images": len(train_x), "test_images": len(test_x),
              "epochs": options.epochs, "seed": options.seed, "training_seconds": seconds,
              "reconstruction_at_bits": rows, "codebook_on_test": usage,
              f"prior_samples_confidence_{CONFIDENT}": judged, "samples": options.samples,
              "keras_vs_export_same_seed": same}
    (RESULTS / "vqvae.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| model | bits per image | test squared error |\n| --- | --- | --- |")
    for label, row in rows.items():
        print(f"| {label} | {row['bits']:g} | {row['squared_error']:.2f} |")
    print(f"\ncodebook perplexity on the test codes: {usage['perplexity']:.1f} of {usage['entries']} "
          f"({usage['dead_entries']} unused); log2 perplexity {math.log2(usage['perplexity']):.2f} bits per cell")
    print(f"prior samples labelled with confidence >= {CONFIDENT}: " +
          ", ".join(f"{name} {value:.1%}" for name, value in judged.items()))
    print("same seed, Keras vs export: " + json.dumps(same))


if __name__ == "__main__":
    main()
