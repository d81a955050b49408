"""``keras-ae COMMAND [...]``: one console entry point for every command of keras_ae.

    keras-ae train --model vae --arch conv --dataset mnist
    keras-ae evaluate runs/vae-conv-mnist
    keras-ae export runs/vae-conv-mnist
    keras-ae generate export/vae-conv-mnist --num 64
    keras-ae compare runs/*
    keras-ae explore export/vae-conv-mnist

Each command is the module of the same name (``train.py`` and ``python -m keras_ae.<command>`` work too);
``keras-ae COMMAND --help`` shows its flags.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {"train": "train a model of the zoo into a run folder",
            "evaluate": "evaluate run folders: report.md, report.json and the figures",
            "export": "export a run: TF Serving SavedModels, TFLite files and metadata.json",
            "generate": "decode codes with an exported decoder (no Keras, no encoder) into a PNG grid",
            "compare": "one markdown table of evaluated runs",
            "explore": "a local web app over an export: sliders, class means, attributes, your images"}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        out = sys.stdout if argv[:1] in (["-h"], ["--help"]) else sys.stderr
        print("usage: keras-ae {" + ",".join(COMMANDS) + "} [...]\n\n" + "\n".join(
            f"  {name:<9} {what}" for name, what in COMMANDS.items()), file=out)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"keras-ae: error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if out is sys.stdout else 2
    module = importlib.import_module(f"keras_ae.{argv[0]}")
    return module.main(argv[1:], prog=f"keras-ae {argv[0]}")


def train() -> int:
    """``keras-ae-train``, the entry point of 0.2: ``keras-ae train``."""
    return main(["train", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
