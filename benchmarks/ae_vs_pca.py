"""The lectures' AE-vs-PCA point, measured: a conv autoencoder with a 30-D code against PCA with 30 components.

    KERAS_AE_DATA=../shared/datasets python benchmarks/ae_vs_pca.py --epochs 30

Both see the same training split of MNIST (the local mnist-small copy when $KERAS_AE_DATA points at
it) and are scored on the same test split by squared error per image (summed over the 784 pixels;
Hinton & Salakhutdinov 2006 report 3.00 for a deep AE vs 13.87 for PCA on full MNIST). Writes
``benchmarks/results/ae_vs_pca.json`` and prints a markdown table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA

from keras_ae import data, losses
from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    options = benchmark_parser(__doc__, epochs=30, latent_dim=30).parse_args()

    splits = data.load(options.dataset, seed=options.seed)
    train_x, _ = splits.arrays("train")
    test_x, _ = splits.arrays("test")
    flat = train_x.reshape(len(train_x), -1)
    pca = PCA(options.latent_dim, random_state=options.seed).fit(flat)
    pca_test = pca.inverse_transform(pca.transform(test_x.reshape(len(test_x), -1))).reshape(test_x.shape)
    rows = {"PCA": float(np.mean(losses.squared_error(test_x, pca_test.astype("float32"))))}

    timings = {}
    for arch in ("mlp", "conv"):
        flags = ["--model", "ae", "--arch", arch, "--dataset", options.dataset, "--latent-dim",
                 str(options.latent_dim), "--epochs", str(options.epochs), "--seed", str(options.seed),
                 "--run-dir", f"{options.run_root}/ae-{arch}-{options.latent_dim}", "--overwrite", "--verbose", "2", "--no-evaluate", "--no-export"]
        start = time.perf_counter()
        run_dir = run(build_parser().parse_args(flags))
        timings[arch] = time.perf_counter() - start
        rows[f"AE ({arch})"] = json.loads((run_dir / "results.json").read_text())["test"]["squared_error"]

    report = {"dataset": splits.source, "train_images": len(train_x), "test_images": len(test_x),
              "latent_dim": options.latent_dim, "epochs": options.epochs, "seed": options.seed,
              "test_squared_error_per_image": rows, "train_seconds": timings}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ae_vs_pca.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"| model ({options.latent_dim}-D code) | test squared error per image |")
    print("| --- | --- |")
    for name, value in rows.items():
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
