"""VAE likelihoods and conditional generation on dynamically binarized MNIST.

    KERAS_AE_DATA=../shared/datasets python benchmarks/vae.py --epochs 50 --iwae-samples 1000

Trains an MLP VAE and a conv VAE (32-D latent, Bernoulli likelihood, dynamic binarization) and a
conditional conv VAE on the same split, then on the test split binarized once (seed 0):

- the ELBO (closed-form KL, reconstruction averaged over ``--elbo-samples`` draws) and the
  importance-weighted estimate of log p(x) with ``--iwae-samples`` samples, both in nats per image,
  as ``VAE.likelihood_report`` (what ``keras_ae.evaluate`` reports) computes them;
- for the conditional VAE, the fraction of generated digits that a CNN classifier (trained here on
  the training split) assigns to the class they were asked for (``benchmarks/cvae.py`` sweeps beta).

Writes ``benchmarks/results/vae.json`` and prints markdown tables.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import keras
import numpy as np

from keras_ae import data
from keras_ae.train import build_parser, run

from common import benchmark_parser, digit_classifier  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=50, latent_dim=32)
    parser.add_argument("--elbo-samples", type=int, default=10, help="draws averaged in the test ELBO")
    parser.add_argument("--iwae-samples", type=int, default=1000, help="K of the importance-weighted estimate")
    parser.add_argument("--samples-per-class", type=int, default=100, help="conditional samples per class")
    options = parser.parse_args()

    splits = data.load(options.dataset, seed=options.seed)
    train_x, train_y = splits.arrays("train")
    test_x, test_y = splits.arrays("test")

    report = {"dataset": splits.source, "train_images": len(train_x), "test_images": len(test_x),
              "epochs": options.epochs, "latent_dim": options.latent_dim, "iwae_samples": options.iwae_samples,
              "elbo_samples": options.elbo_samples, "seed": options.seed, "models": {}}
    models = {}
    for name, model_flags in {"vae-mlp": ["--model", "vae", "--arch", "mlp"],
                              "vae-conv": ["--model", "vae", "--arch", "conv"],
                              "cvae-conv": ["--model", "cvae", "--arch", "conv"]}.items():
        start = time.perf_counter()
        run_dir = run(build_parser().parse_args([
            *model_flags, "--binarize", "--latent-dim", str(options.latent_dim), "--dataset", options.dataset,
            "--epochs", str(options.epochs), "--seed", str(options.seed), "--run-dir",
            f"{options.run_root}/{name}", "--overwrite", "--verbose", "2", "--no-evaluate", "--no-export"]))
        seconds = time.perf_counter() - start
        models[name] = keras.models.load_model(run_dir / "model.keras")
        if name.startswith("vae"):
            start = time.perf_counter()
            # keras_ae's own evaluation: the test split binarized once (seed), ELBO and IWAE in nats per image
            report["models"][name] = models[name].likelihood_report(test_x, num_samples=options.iwae_samples,
                                                                    seed=options.seed,
                                                                    elbo_samples=options.elbo_samples).to_json()
            report["models"][name]["eval_seconds"] = time.perf_counter() - start
        report["models"].setdefault(name, {})["train_seconds"] = seconds

    classifier = digit_classifier(train_x, train_y, options.seed)
    classifier_accuracy = float(np.mean(np.argmax(classifier.predict(test_x, verbose=0), -1) == test_y))
    asked = np.repeat(np.arange(10), options.samples_per_class)
    generated = np.asarray(models["cvae-conv"].sample(len(asked), labels=asked, seed=options.seed))
    predicted = np.argmax(classifier.predict(generated, verbose=0), -1)
    per_class = {int(c): float(np.mean(predicted[asked == c] == c)) for c in range(10)}
    report["models"]["cvae-conv"].update({"classifier_test_accuracy": classifier_accuracy,
                                          "generated_as_asked": float(np.mean(predicted == asked)),
                                          "generated_as_asked_per_class": per_class})

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "vae.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"| model ({options.latent_dim}-D latent, {options.epochs} epochs) | test ELBO (nats) | "
          f"log p(x), IWAE K={options.iwae_samples} (nats) | NLL (nats) |")
    print("| --- | --- | --- | --- |")
    for name in ("vae-mlp", "vae-conv"):
        row = report["models"][name]
        print(f"| {name} | {row['details']['ELBO (nats)']:.2f} | {-row['nll']:.2f} | {row['nll']:.2f} |")
    cvae = report["models"]["cvae-conv"]
    print(f"\nconditional VAE: {cvae['generated_as_asked']:.1%} of {len(asked)} generated digits classified as asked "
          f"(classifier test accuracy {classifier_accuracy:.1%})")


if __name__ == "__main__":
    main()
