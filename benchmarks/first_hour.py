"""A user's first hour, measured: the README's headline run against PCA, console noise, evaluation time.

    python benchmarks/first_hour.py [--out DIR]

Runs, each in a fresh process with its output redirected (not a terminal), in ``DIR`` (a temporary
folder by default):

1. the README's headline command, ``train.py --model ae --arch conv --dataset digits``, timed end to
   end (training, evaluation, export), with its test squared error beside the PCA baseline of its report;
2. ``python -m keras_ae.evaluate`` and ``python -m keras_ae.export`` of that run;
3. the evaluation of a 2-epoch conv VAE on mnist-small (when ``$KERAS_AE_DATA`` has it), in full and with ``--quick``.

For every command it counts the console lines that are not keras_ae's own (TensorFlow and absl logs,
warnings, ANSI progress bars). Prints a markdown table and writes ``benchmarks/results/first_hour.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
NOISE = re.compile(r"I0000|W0000|E0000|WARNING: All log|oneDNN|cuInit|cuda|Assets written|Warning|^  |tensorflow|"
                   r"absl|Estimated count|^To enable|\x1b\[")


def timed(command: list[str], cwd: Path) -> dict:
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's keras_ae, whatever is installed
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    lines = (result.stdout + result.stderr).splitlines()
    return {"command": " ".join(command[1:]), "seconds": round(seconds, 1), "lines": len(lines),
            "noise": sum(bool(NOISE.search(line)) for line in lines)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="first-hour-"))
    work.mkdir(parents=True, exist_ok=True)
    python, train = sys.executable, str(REPO / "train.py")
    rows = {"headline train.py": timed([python, train, "--model", "ae", "--arch", "conv", "--dataset", "digits",
                                        "--overwrite"], work)}
    run_dir = work / "runs" / "ae-conv-digits"
    metrics = json.loads((run_dir / "report.json").read_text())["metrics"]
    rows["evaluate"] = timed([python, "-m", "keras_ae.evaluate", str(run_dir)], work)
    rows["export"] = timed([python, "-m", "keras_ae.export", str(run_dir), "--out", str(work / "export")], work)
    data = Path(os.environ.get("KERAS_AE_DATA", REPO.parent / "shared" / "datasets")) / "mnist-small"
    if data.is_dir():
        vae = work / "runs" / "vae-eval"
        timed([python, train, "--model", "vae", "--arch", "conv", "--dataset", str(data), "--epochs", "2",
               "--no-evaluate", "--no-export", "--overwrite", "--run-dir", str(vae)], work)
        rows["evaluate conv VAE (mnist-small)"] = timed([python, "-m", "keras_ae.evaluate", str(vae)], work)
        rows["evaluate --quick conv VAE"] = timed([python, "-m", "keras_ae.evaluate", str(vae), "--quick"], work)
    result = {"headline": {"squared_error": metrics["reconstruction"]["squared_error"],
                           "pca_squared_error": metrics["pca_baseline"]["squared_error"],
                           "ratio": metrics["reconstruction"]["squared_error"]
                           / metrics["pca_baseline"]["squared_error"]},
              "commands": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_hour.json").write_text(json.dumps(result, indent=2) + "\n")
    head = result["headline"]
    print(f"headline: test squared error {head['squared_error']:.4f}, PCA {head['pca_squared_error']:.4f} "
          f"({head['ratio']:.2f}x)\n")
    print("| command | seconds | console lines | not keras_ae's |\n| --- | --- | --- | --- |")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds']} | {row['lines']} | {row['noise']} |")


if __name__ == "__main__":
    main()
