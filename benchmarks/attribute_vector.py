"""An attribute from a file beside an image folder, added as z + k s by the export alone: does it make a 7?

    KERAS_AE_DATA=../shared/datasets python benchmarks/attribute_vector.py --epochs 30

Writes mnist-small's digits as a folder of PNGs beside a made-up attributes CSV (``file,is_7``, from the
digit labels) and a CelebA-style partition file (train, validation, test as mnist-small splits them),
trains a conv VAE (32-D) on the folder with ``--attribute is_7``, and exports it. Then, from the export
only (its encoder, its decoder and its ``directions.npz``, no Keras model): the codes of every test image
that is not a 7, plus k times the ``is_7`` vector, decoded, for k = 0, 1, 2, 3; and the fraction of those
images that a CNN trained on mnist-small's training digits calls a 7.

Writes ``benchmarks/results/attribute_vector.json``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from keras_ae import data, generate, serving
from keras_ae.train import parse_args, run

from common import benchmark_parser, digit_classifier  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
KS = (0, 1, 2, 3)


def write_folder(root: Path, splits) -> tuple[Path, Path, Path]:
    """The digits of each split as PNGs in ``root/images``, with ``is_7`` and partition files beside them."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    attributes, partition = ["file,is_7"], []
    for code, split in enumerate(("train", "validation", "test")):
        x, y = splits.arrays(split)
        for i, (image, label) in enumerate(zip(x, y)):
            name = f"{split}-{i:05d}.png"
            if not (images / name).exists():
                Image.fromarray(np.round(image[..., 0] * 255).astype(np.uint8)).save(images / name)
            attributes.append(f"{name},{int(label == 7)}")
            partition.append(f"{name} {code}")
    (root / "attributes.csv").write_text("\n".join(attributes) + "\n")
    (root / "partition.txt").write_text("\n".join(partition) + "\n")
    return images, root / "attributes.csv", root / "partition.txt"


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=30, latent_dim=32)
    options = parser.parse_args()
    root = Path(options.run_root)
    splits = data.load(options.dataset, seed=options.seed)
    folder, attributes, partition = write_folder(root / "is-7-folder", splits)
    run_dir, export_root = root / "attribute-vector-vae", root / "export"
    start = time.monotonic()
    run(parse_args(["--model", "vae", "--arch", "conv", "--latent-dim", str(options.latent_dim), "--binarize",
                    "--dataset", str(folder), "--attributes", str(attributes), "--partition", str(partition),
                    "--attribute", "is_7", "--epochs", str(options.epochs), "--seed", str(options.seed),
                    "--run-dir", str(run_dir), "--overwrite", "--verbose", "2", "--export-root", str(export_root),
                    "--export-name", run_dir.name]))
    train_seconds = time.monotonic() - start

    export_dir = export_root / run_dir.name  # from here on: the export alone
    metadata = serving.read_metadata(export_dir)
    found = serving.read_directions(metadata)
    test_x, test_y = splits.arrays("test")
    others = test_x[test_y != 7]
    codes = generate.load_encoder(export_dir)(others)["z_mean"]
    decode = generate.load_decoder(export_dir)
    train_x, train_y = splits.arrays("train")
    classifier = digit_classifier(train_x, train_y, options.seed)
    accuracy = float(np.mean(np.argmax(classifier.predict(test_x, verbose=0), -1) == test_y))
    fractions = {}
    for k in KS:
        edited = decode(found.edited(codes, [("is_7", k)]))
        fractions[str(k)] = float(np.mean(np.argmax(classifier.predict(edited, verbose=0), -1) == 7))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "attribute_vector.json").write_text(json.dumps({
        "dataset": f"mnist-small's digits as a folder of PNGs, attributes {attributes.name} (is_7 from the labels), "
                   f"partition {partition.name}", "train_images": len(train_x), "edited_test_images": len(others),
        "model": "conv VAE, 32-D, --binarize", "epochs": options.epochs, "seed": options.seed,
        "train_seconds": train_seconds, "classifier_test_accuracy": accuracy,
        "directions": metadata["directions"], "fraction_labelled_7_by_k": fractions}, indent=2) + "\n")
    print(f"classifier test accuracy {accuracy:.1%}; fraction of edited non-7 test digits labelled 7:")
    print("| k | " + " | ".join(map(str, KS)) + " |\n| --- |" + " --- |" * len(KS))
    print("| labelled 7 | " + " | ".join(f"{fractions[str(k)]:.1%}" for k in KS) + " |")


if __name__ == "__main__":
    main()
