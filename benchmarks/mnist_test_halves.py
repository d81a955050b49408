"""A binarized VAE's bound on the two halves of MNIST's test set: what mnist60k's 8,000 test images say of 10,000.

    KERAS_AE_DATA=../shared/datasets python benchmarks/mnist_test_halves.py runs/RUN [--iwae-samples 500]

MNIST's official test set is two halves of 5,000: the first from NIST's SD-3 (Census Bureau employees, "cleaner
and easier" to classify), the last from SD-1 (students). mnist60k's test split holds the first 8,000, so it has
all 5,000 of SD-3 and only 3,000 of SD-1: if the halves differ in likelihood, a mean over it differs from a mean
over the papers' 10,000 (for the conv VAE of preset vae-mnist60k they hardly do: 83.84 against 83.55).

This scores every one of the 8,000 with the importance-weighted bound at K = ``--iwae-samples`` (binarized
once, seed 0, as the report does), takes each half's mean, and weights the halves 1:1 as the full test set
does (the missing 2,000 taken to be like the other 3,000 of SD-1). It also scores the report's seeded sample
(``--test-images``) at the same K, so that the report's K = 5,000 figure can be moved by the difference.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from keras_ae.models.base import binarized_once, in_batches
from keras_ae.runs import load_run

EASY = 5000  # the first 5,000 official test images come from SD-3


def bound(model, x, num_samples: int) -> np.ndarray:
    """Per-image -log p(x) upper bounds (nats) of images ``x`` binarized once with seed 0, as the report does."""
    x = binarized_once(x, 0)
    return -in_batches(lambda b, y: model.importance_weighted_log_likelihood(b, y, num_samples, chunk=100, seed=0),
                       x, batch_size=50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder of a binarized VAE trained on mnist60k")
    parser.add_argument("--iwae-samples", type=int, default=500, help="K of the bound")
    parser.add_argument("--test-images", type=int, default=1000, help="size of the report's seeded test sample")
    args = parser.parse_args()
    run = load_run(args.run)
    x, _ = run.splits.sample("test", None)
    if len(x) <= EASY:
        parser.error(f"{args.run}: its test split has {len(x)} images; this needs MNIST's official test order "
                     f"beyond the first {EASY}")
    nll = bound(run.model, x, args.iwae_samples)
    sampled = bound(run.model, run.splits.sample("test", args.test_images)[0], args.iwae_samples)
    easy, hard = nll[:EASY].mean(), nll[EASY:].mean()
    print(json.dumps({"K": args.iwae_samples, "test images": len(x), "all": float(nll.mean()),
                      f"first {EASY} (SD-3)": float(easy), f"the other {len(x) - EASY} (SD-1)": float(hard),
                      "10,000 estimate (halves 1:1)": float((easy + hard) / 2),
                      f"the report's seeded {args.test_images}": float(sampled.mean())}, indent=1))


if __name__ == "__main__":
    main()
