"""The whole zoo on one table: same data, same latent size, same epochs, one run each.

    KERAS_AE_DATA=../shared/datasets python benchmarks/zoo.py --epochs 20

Trains PCA and every autoencoder with the conv architecture and a 32-D code on MNIST (the local
mnist-small copy when $KERAS_AE_DATA points at it), evaluates each run (``keras_ae.evaluate``:
reconstruction, probe accuracy on codes vs pixels vs PCA codes, outlier AUC, the model's own
figure) and writes the comparison to ``benchmarks/results/zoo.md`` (+ the reports as JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

from keras_ae.compare import comparison_table, read_report
from keras_ae.train import build_parser, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
ZOO = {
    "pca": ["--model", "pca"],
    "ae": ["--model", "ae"],
    "sparse": ["--model", "sparse", "--code-activation", "relu", "--penalty-weight", "0.005"],
    "contractive": ["--model", "contractive", "--penalty-weight", "0.3"],
    "denoising": ["--model", "denoising", "--noise", "mask", "--noise-level", "0.4"],
    "vae": ["--model", "vae", "--binarize"],
}


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=20, latent_dim=32)
    parser.add_argument("--arch", default="conv", help="architecture of every autoencoder")
    options = parser.parse_args()

    folders = []
    for name, flags in ZOO.items():
        folders.append(run(build_parser().parse_args([
            *flags, "--arch", options.arch, "--latent-dim", str(options.latent_dim), "--dataset", options.dataset,
            "--epochs", str(options.epochs), "--seed", str(options.seed), "--run-dir",
            f"{options.run_root}/zoo-{name}", "--overwrite", "--verbose", "2", "--no-export"])))
    table, _ = comparison_table(folders)
    RESULTS.mkdir(exist_ok=True)
    header = (f"{options.dataset}, --arch {options.arch}, {options.latent_dim}-D code, {options.epochs} epochs, "
              f"seed {options.seed}\n\n")
    (RESULTS / "zoo.md").write_text(header + table)
    (RESULTS / "zoo.json").write_text(json.dumps({name: read_report(folder)["metrics"]
                                                  for name, folder in zip(ZOO, folders)}, indent=2) + "\n")
    print(header + table)


if __name__ == "__main__":
    main()
