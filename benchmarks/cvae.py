"""Does the conditional VAE draw the digit it is asked for? A sweep over beta.

    KERAS_AE_DATA=../shared/datasets python benchmarks/cvae.py --betas 1,2,4 --epochs 30

Trains one conditional conv VAE per beta (32-D latent, dynamic binarization) and a CNN classifier on
the training split, draws ``--samples-per-class`` digits per class from the prior through the decoder,
and reports the fraction the classifier assigns to the asked class. With beta = 1 the encoder keeps
much of the class in z, so prior samples often ignore the label; a larger beta makes the KL push the
class out of z and into the label. Writes ``benchmarks/results/cvae.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from keras_ae import data
from keras_ae.train import build_parser, run

from common import benchmark_parser, digit_classifier  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=30, latent_dim=32)
    parser.add_argument("--betas", default="1,2,4", help="comma-separated betas, one CVAE each")
    parser.add_argument("--samples-per-class", type=int, default=100, help="generated digits per class")
    options = parser.parse_args()

    splits = data.load(options.dataset, seed=options.seed)
    train_x, train_y = splits.arrays("train")
    test_x, test_y = splits.arrays("test")
    classifier = digit_classifier(train_x, train_y, options.seed)
    accuracy = float(np.mean(np.argmax(classifier.predict(test_x, verbose=0), -1) == test_y))
    asked = np.repeat(np.arange(splits.num_classes), options.samples_per_class)
    rows = {}
    for beta in options.betas.split(","):
        run_dir = run(build_parser().parse_args([
            "--model", "cvae", "--arch", "conv", "--binarize", "--beta", beta, "--latent-dim", str(options.latent_dim),
            "--dataset", options.dataset, "--epochs", str(options.epochs), "--seed", str(options.seed),
            "--run-dir", f"{options.run_root}/cvae-beta{beta}", "--overwrite", "--verbose", "2", "--no-evaluate",
            "--no-export"]))
        model = keras.models.load_model(run_dir / "model.keras")
        generated = np.asarray(model.sample(len(asked), labels=asked, seed=options.seed))
        predicted = np.argmax(classifier.predict(generated, verbose=0), -1)
        results = json.loads((run_dir / "results.json").read_text())["test"]
        rows[beta] = {"generated_as_asked": float(np.mean(predicted == asked)),
                      "per_class": {int(c): float(np.mean(predicted[asked == c] == c)) for c in np.unique(asked)},
                      "test_elbo": results["elbo"], "test_kl": results["kl"]}

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cvae.json").write_text(json.dumps({
        "dataset": splits.source, "epochs": options.epochs, "latent_dim": options.latent_dim, "seed": options.seed,
        "classifier_test_accuracy": accuracy, "samples": len(asked), "betas": rows}, indent=2) + "\n")
    print(f"classifier test accuracy {accuracy:.1%}\n")
    print("| beta | generated digits classified as asked | test ELBO (nats) | test KL (nats) |")
    print("| --- | --- | --- | --- |")
    for beta, row in rows.items():
        print(f"| {beta} | {row['generated_as_asked']:.1%} | {row['test_elbo']:.2f} | {row['test_kl']:.2f} |")


if __name__ == "__main__":
    main()
