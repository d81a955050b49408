"""What every benchmark script shares: its command line (dataset, epochs, seed, run folders)."""

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
