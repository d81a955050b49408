"""Do the regularized autoencoders do their job? Each against a plain autoencoder of the same shape.

    KERAS_AE_DATA=../shared/datasets python benchmarks/regularized.py --epochs 20

Every model has the same over-complete MLP (784 -> 512 -> 1024-unit ReLU code -> 512 -> 784), the
same epochs and seed, one run each, on MNIST (the local mnist-small copy when $KERAS_AE_DATA points
at it). Measured on the test split: squared error per image, the fraction of zero code entries,
the mean exact Jacobian Frobenius norm ||dz/dx||_F, and the PSNR of each model's output when fed
test images corrupted by Gaussian noise (sigma 0.3) and by masking noise (40% of pixels zeroed),
the same corruptions for every model. Writes ``benchmarks/results/regularized.json`` and prints a
markdown table.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras

from keras_ae import data, evaluate
from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
# table label -> (run folder name, model flags)
MODELS = {
    "ae (plain)": ("ae", ["--model", "ae"]),
    "sparse (latent L1)": ("sparse-latent", ["--model", "sparse", "--sparsity", "latent", "--penalty-weight", "0.05"]),
    "sparse (activations L1)": ("sparse-activations", ["--model", "sparse", "--sparsity", "activations",
                                                      "--penalty-weight", "0.01"]),
    "contractive": ("contractive", ["--model", "contractive", "--penalty-weight", "0.3"]),
    "denoising (Gaussian 0.3)": ("denoising-gaussian", ["--model", "denoising", "--noise", "gaussian",
                                                        "--noise-level", "0.3"]),
    "denoising (mask 0.4)": ("denoising-mask", ["--model", "denoising", "--noise", "mask", "--noise-level", "0.4"]),
}


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=20)
    parser.add_argument("--jacobian-images", type=int, default=500, help="test images for the exact Jacobian norm")
    options = parser.parse_args()

    splits = data.load(options.dataset, seed=options.seed)
    test_x, _ = splits.arrays("test")
    rows = {}
    for label, (slug, flags) in MODELS.items():
        run_dir = run(build_parser().parse_args([
            *flags, "--arch", "mlp", "--widths", "512", "--latent-dim", "1024",
            "--code-activation", "relu", "--dataset", options.dataset, "--epochs", str(options.epochs),
            "--seed", str(options.seed), "--run-dir", f"{options.run_root}/regularized-{slug}", "--overwrite",
            "--verbose", "2", "--no-evaluate", "--no-export"]))
        model = keras.models.load_model(run_dir / "model.keras")
        rows[label] = {
            "squared_error": evaluate.reconstruction_metrics(model, test_x)["squared_error"],
            "zero_fraction": evaluate.zero_fraction(model, test_x),
            "jacobian_norm": evaluate.jacobian_norm(model, test_x[:options.jacobian_images]),
            **{f"psnr_{noise}": evaluate.denoising_psnr(model, test_x, noise, level, seed=options.seed)
               for noise, level in evaluate.CORRUPTIONS.items()},
            "flags": flags,
        }

    RESULTS.mkdir(exist_ok=True)
    report = {"dataset": splits.source, "train_images": len(splits.train), "test_images": len(test_x),
              "epochs": options.epochs, "seed": options.seed, "corruptions": evaluate.CORRUPTIONS, "models": rows}
    (RESULTS / "regularized.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| model | test squared error | zero code entries | mean ‖dz/dx‖_F | PSNR out, Gaussian 0.3 | PSNR out, mask 0.4 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, row in rows.items():
        print(f"| {label} | {row['squared_error']:.2f} | {row['zero_fraction']:.1%} | {row['jacobian_norm']:.3f} | "
              f"{row['psnr_gaussian']['restored']:.2f} dB | {row['psnr_mask']['restored']:.2f} dB |")
    first = next(iter(rows.values()))
    print(f"\nPSNR of the corrupted inputs themselves: Gaussian {first['psnr_gaussian']['corrupted']:.2f} dB, "
          f"mask {first['psnr_mask']['corrupted']:.2f} dB")


if __name__ == "__main__":
    main()
