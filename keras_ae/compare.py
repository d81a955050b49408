"""One markdown table from several evaluated runs: ``python -m keras_ae.compare RUN [RUN ...] [--out FILE]``.

One row per run folder that holds the ``report.json`` written by ``python -m keras_ae.evaluate`` (or by
``train.py``), with the headline figures of :func:`keras_ae.evaluate.summary_row`, grouped by dataset;
folders without a report are skipped with a note (``runs/*`` works).
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


def comparison_table(folders) -> tuple[str, list[str]]:
    """The markdown table comparing the evaluated runs in ``folders`` (grouped by dataset), and notes on
    the folders it skipped."""
    rows, skipped = [], []
    for folder in folders:
        if not (Path(folder) / "report.json").is_file():
            skipped.append(f"skipped {folder}: no report.json (python -m keras_ae.evaluate {folder} writes it)")
            continue
        try:
            rows.append(summary_row(read_report(folder)))
        except (KeyError, TypeError, AttributeError) as error:
            raise KerasAEError(f"{Path(folder) / 'report.json'} lacks an expected entry ({error}); evaluate the run "
                               "again") from None
    if not rows:
        raise KerasAEError(f"no report.json in {', '.join(map(str, folders[:3]))}"
                           f"{' ...' if len(folders) > 3 else ''}; run python -m keras_ae.evaluate on them first")
    order = list(dict.fromkeys(row["dataset"] for row in rows))
    return markdown_table(sorted(rows, key=lambda row: order.index(row["dataset"]))), skipped


def main(argv=None, prog: str = "python -m keras_ae.compare") -> int:
    from keras_ae import console

    console.command_started()
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="evaluated run folders")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)

    def compare():
        table, skipped = comparison_table(args.runs)
        for note in skipped:
            print(f"note: {note}", file=sys.stderr)
        if args.out:
            from keras_ae.io import atomic_path

            with atomic_path(args.out) as tmp:
                Path(tmp).write_text(table)
        print(table, end="")

    return exit_code(compare)


if __name__ == "__main__":
    sys.exit(main())
