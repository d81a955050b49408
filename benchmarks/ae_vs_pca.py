"""The lectures' AE-vs-PCA point, measured: a conv autoencoder with a 30-D code against PCA with 30 components.

    KERAS_AE_DATA=../shared/datasets python benchmarks/ae_vs_pca.py --epochs 30

All three are zoo models trained by ``train.py`` (``--model pca`` is scikit-learn's PCA in closed form)
on the same training split of MNIST (the local mnist-small copy when $KERAS_AE_DATA points at it) and
scored on the same test split by squared error per image (summed over the 784 pixels;
Hinton & Salakhutdinov 2006 report 3.00 for a deep AE vs 13.87 for PCA on full MNIST). Writes
``benchmarks/results/ae_vs_pca.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    options = benchmark_parser(__doc__, epochs=30, latent_dim=30).parse_args()

    rows, timings, sizes = {}, {}, {}
    for label, flags in {"PCA": ["--model", "pca"], "AE (mlp)": ["--model", "ae", "--arch", "mlp"],
                         "AE (conv)": ["--model", "ae", "--arch", "conv"]}.items():
        slug = label.lower().replace(" ", "").replace("(", "-").replace(")", "")
        start = time.perf_counter()
        run_dir = run(build_parser().parse_args([
            *flags, "--dataset", options.dataset, "--latent-dim", str(options.latent_dim), "--epochs",
            str(options.epochs), "--seed", str(options.seed), "--run-dir", f"{options.run_root}/{slug}-{options.latent_dim}",
            "--overwrite", "--verbose", "2", "--no-evaluate", "--no-export"]))
        timings[label] = time.perf_counter() - start
        config = json.loads((run_dir / "config.json").read_text())
        sizes = config["data"]["sizes"] | {"source": config["data"]["source"]}
        rows[label] = json.loads((run_dir / "results.json").read_text())["test"]["squared_error"]

    report = {"dataset": sizes["source"], "train_images": sizes["train"], "test_images": sizes["test"],
              "latent_dim": options.latent_dim, "epochs": options.epochs, "seed": options.seed,
              "test_squared_error_per_image": rows, "seconds": timings}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ae_vs_pca.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"| model ({options.latent_dim}-D code) | test squared error per image | seconds |")
    print("| --- | --- | --- |")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} | {timings[name]:.0f} |")


if __name__ == "__main__":
    main()
