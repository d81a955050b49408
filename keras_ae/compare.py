"""One markdown table from several evaluated runs: ``python -m keras_ae.compare RUN [RUN ...] [--out FILE]``.

Each run folder must hold the ``report.json`` written by ``python -m keras_ae.evaluate`` (or by
``train.py``); one row per run, with the headline figures of :func:`keras_ae.evaluate.summary_row`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from keras_ae.errors import KerasAEError, exit_code
from keras_ae.evaluate import markdown_table, summary_row
from keras_ae.io import read_json


def read_report(folder) -> dict:
    return read_json(Path(folder) / "report.json", KerasAEError, f"run python -m keras_ae.evaluate {folder} first")


def comparison_table(folders) -> str:
    """The markdown table comparing the runs in ``folders``."""
    try:
        return markdown_table([summary_row(read_report(folder)) for folder in folders])
    except (KeyError, TypeError) as error:
        raise KerasAEError(f"a report.json lacks an expected entry ({error}); evaluate the run again") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m keras_ae.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="evaluated run folders")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    def compare():
        table = comparison_table(args.runs)
        if args.out:
            from keras_ae.io import atomic_path

            with atomic_path(args.out) as tmp:
                Path(tmp).write_text(table)
        print(table, end="")

    return exit_code(compare)


if __name__ == "__main__":
    sys.exit(main())
