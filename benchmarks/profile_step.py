"""Where a training step of the keras-io-sized conv VAE spends its time, op by op (tf.profiler).

    python benchmarks/profile_step.py                      # keras_ae's VAE, float32
    python benchmarks/profile_step.py --model reference    # the plain-Keras keras-io reference
    python benchmarks/profile_step.py --policy mixed_bfloat16

Traces ``--steps`` training steps (after a warm-up) with ``tf.profiler.experimental``, reads the trace
with xprof's ``framework_op_stats`` tool (``pip install ".[bench]"``) and prints the ops that took the
most CPU time: self time per step summed over threads, and its share of all ops' time. ``--out``
also writes the table (markdown). Compare a layer's share here with its share of the FLOPs (the
``flops`` section of performance.py lists them per layer) to find the ops that run far below the
machine's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from timing import check_repeats, table  # beside this script (python puts a script's folder on sys.path)
from trainers import BATCH, IMAGE_SHAPE, KerasTrainer, compiled, keras_ae_vae


def op_stats(logdir: Path) -> list[dict]:
    """Rows of xprof's framework_op_stats for the host (CPU) ops of the trace in ``logdir``."""
    from xprof.convert import raw_to_tool_data

    traces = sorted(logdir.glob("**/*.xplane.pb"))
    if not traces:
        raise SystemExit(f"error: tf.profiler wrote no trace under {logdir}")
    data, _ = raw_to_tool_data.xspace_to_tool_data([str(t) for t in traces], "framework_op_stats", {})
    stats = json.loads(data)[0]
    columns = [column["id"] for column in stats["cols"]]
    rows = [dict(zip(columns, [cell.get("v") if cell else None for cell in row["c"]])) for row in stats["rows"]]
    return [row for row in rows if row["host_or_device"] == "Host" and row["type"] != "IDLE"
            and not row["type"].startswith("__inference")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("keras_ae", "reference"), default="keras_ae")
    parser.add_argument("--policy", default=None, help="Keras dtype policy, e.g. mixed_bfloat16 (keras_ae only)")
    parser.add_argument("--steps", type=int, default=20, help="traced training steps (default 20, at least 3)")
    parser.add_argument("--top", type=int, default=15, help="ops to list (default 15)")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    check_repeats(args.steps)

    import tensorflow as tf

    if args.model == "reference":
        from reference_models import keras_io_vae

        model = compiled(keras_io_vae(IMAGE_SHAPE, latent_dim=2, widths=(32, 64), dense_units=16))
    else:
        model = keras_ae_vae(policy=args.policy)
    x = np.random.default_rng(0).random((20 * BATCH, *IMAGE_SHAPE), dtype=np.float32)
    trainer = KerasTrainer(model, x, BATCH)
    trainer.train(10)  # warm-up: tracing and oneDNN primitive creation stay out of the profile
    with tempfile.TemporaryDirectory(prefix="keras_ae-profile-") as logdir:
        tf.profiler.experimental.start(logdir)
        trainer.train(args.steps)
        tf.profiler.experimental.stop()
        rows = op_stats(Path(logdir))
    total = sum(row["total_self_time"] for row in rows)
    top = sorted(rows, key=lambda row: -row["total_self_time"])[: args.top]
    lines = [[row["type"], row["operation"].split("StatefulPartitionedCall/")[-1],
              f"{row['total_self_time'] / args.steps / 1000:.2f}", f"{row['total_self_time'] / total:.1%}"]
             for row in top]
    text = (f"{args.model} conv VAE (keras-io sizes), batch {BATCH}, policy {args.policy or 'float32'}: CPU self "
            f"time of all ops {total / args.steps / 1000:.1f} ms per step (summed over threads), top {args.top}:\n\n"
            + table(["op", "name", "ms per step", "share"], lines) + "\n")
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
