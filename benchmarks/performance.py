"""Performance of keras_ae on CPU: training throughput against two references, FLOP efficiency, input
pipeline cost, XLA, batch size, decoding speed and peak memory, in one run with the ratios side by side.

    KERAS_AE_DATA=/work/shared/datasets python benchmarks/performance.py                  # full run
    KERAS_AE_DATA=/work/shared/datasets python benchmarks/performance.py --quick --out /tmp/perf
    python benchmarks/performance.py --sections training,flops --repeats 7

Writes ``<out>/performance.md`` (also printed) and ``<out>/performance.json`` (every sample), ``<out>``
being ``benchmarks/results`` unless ``--out`` says otherwise. Run it on a quiet machine: the figures
are wall-clock times and move with any other load (the load average is recorded at start and end;
PyTorch's OpenMP threads suffer most from a shared CPU). A full run takes about 12-15 minutes on a
quiet 2-core machine, ``--quick`` (a smoke test, not results) 2-3 minutes.

Sections (``--sections``, comma-separated, default all):

- ``training``: images/s of ``keras_ae.models.VAE((28, 28, 1), latent_dim=2, arch="conv", widths=(32, 64),
  dense_units=16)`` at batch 128 (the keras-io example VAE) against (a) the keras-io plain-Keras
  ``train_step`` implementation of the same network and (b) the same network in PyTorch eager
  (skipped, with a note, when torch is not installed); see ``benchmarks/reference_models.py``. Plus
  the same keras_ae model in bfloat16 (what ``train.py --mixed-precision`` picks on a CPU with native
  bfloat16; skipped on other CPUs).
- ``zoo``: images/s of every model of ``keras_ae.models.MODELS`` with its default architecture (mlp
  512-256, 16-D code), and the contractive penalty's cost (contractive vs ae, mlp and conv).
- ``flops``: FLOPs per training image of the conv VAE, counted analytically from the layer shapes
  (forward = 2 x multiply-accumulates of every Conv2D, Conv2DTranspose and Dense; training = 3 x
  forward) and cross-checked with ``tf.profiler``'s ``float_ops``; the machine's float32 matmul rate
  (2048 x 2048 ``tf.linalg.matmul``, this run) and the share of it that training achieves.
- ``pipeline``: epoch time fed by ``splits.pipeline("train", 128)`` vs ``model.fit(numpy)`` vs
  batches cached in memory, as a percentage over the in-memory floor.
- ``xla``: the conv VAE compiled with ``jit_compile=False`` and ``True``.
- ``batch``: the conv VAE at batch 64, 128, 256, 512 (the same number of images per timed run).
- ``decode``: a conv VAE trained 1 epoch (``train.py``) and exported with ``keras_ae.export.export_run``:
  images/s at batch 256 and batch-1 latency of ``model.decode``, the SavedModel and every TFLite
  variant through ``keras_ae.generate.load_decoder`` (plus the bare LiteRT ``invoke``).
- ``memory``: peak RSS (VmHWM, see :func:`peak_rss_mib`) of a subprocess that builds the conv VAE and fits it on the
  ``splits.pipeline`` feed, so the figure is that training run's own peak.

How it times: every figure is the min / median / max of ``--repeats`` (>= 3) timed runs, and the
script refuses to report one from fewer (:func:`summarize`). Contenders that are compared are timed
round-robin (run 1 of each, then run 2 of each, ...) so a change of machine load hits all alike;
ratios are the min / median / max of the per-round ratios. Warm-up steps (tracing included) are never
timed. Keras models are fed pre-batched in-memory tensors through ``model.fit(dataset,
steps_per_epoch=N)``; PyTorch gets the same batches as NCHW tensors in a plain loop. A timed run lasts
``--steps`` steps, lengthened when needed to at least ``--min-seconds`` so per-call overheads stay small.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import numpy as np

import speed_decoding  # the sections and the harness sit beside this script
import speed_training
from timing import HERE, MIN_RUNS, TooFewRuns, jsonable, machine_info, table, verdict
from trainers import IMAGE_SHAPE, Bench

SECTIONS = ("training", "zoo", "flops", "pipeline", "xla", "batch", "decode", "memory")


def load_data(bench: Bench) -> None:
    """MNIST (local copy via $KERAS_AE_DATA) or, when it cannot be found, synthetic 28x28 digits-sized noise.

    Throughput does not depend on pixel values; the synthetic set goes through the same .npz loader so
    ``splits.pipeline`` (uint8 -> float conversion included) works the same way.
    """
    from keras_ae import data
    from keras_ae.errors import DataError

    limit = bench.options.limit
    try:
        bench.splits = data.load("mnist", seed=0, limit=limit, download=False)
        bench.dataset_arg = bench.dataset_label = "mnist"
    except DataError as error:
        path = bench.tmp / "synthetic-28x28.npz"
        rng = np.random.default_rng(0)
        np.savez(path, x=rng.integers(0, 256, (7000, *IMAGE_SHAPE[:2]), dtype=np.uint8),
                 y=rng.integers(0, 10, 7000).astype(np.int64))
        bench.splits = data.load(str(path), seed=0, limit=limit)
        bench.dataset_arg, bench.dataset_label = str(path), "synthetic noise images (.npz)"
        bench.notes.append(f"MNIST not found ({error}); used 7,000 synthetic uniform-noise 28x28 images")
    if bench.splits.image_shape != IMAGE_SHAPE:
        raise SystemExit(f"error: expected {IMAGE_SHAPE} images, {bench.splits.source} has {bench.splits.image_shape}")
    bench.x, bench.y = bench.splits.arrays("train")
    bench.data_source = f"{bench.splits.source}: {len(bench.splits.train)} training images"


REPORTS = {"training": ("1. Training throughput: keras_ae vs references", speed_training.report_training),
           "zoo": ("2. Training throughput of the zoo", speed_training.report_zoo),
           "flops": ("3. FLOPs and the machine's matmul rate", speed_training.report_flops),
           "pipeline": ("4. Input pipeline cost", speed_training.report_pipeline),
           "xla": ("5. XLA", speed_training.report_xla),
           "batch": ("6. Batch size", speed_training.report_batch),
           "decode": ("7. Decoding", speed_decoding.report_decode),
           "memory": ("8. Peak memory of a training run", speed_training.report_memory)}
MEASURES = {"training": speed_training.measure_training, "zoo": speed_training.measure_zoo, "flops": speed_training.measure_flops, "pipeline": speed_training.measure_pipeline,
            "xla": speed_training.measure_xla, "batch": speed_training.measure_batch, "decode": speed_decoding.measure_decode, "memory": speed_training.measure_memory}


def markdown(bench: Bench, machine: dict, failures: dict, durations: dict) -> str:
    options = bench.options
    v = machine["versions"]
    lines = ["# keras_ae performance", ""]
    if options.quick:
        lines += [("> **QUICK SMOKE TEST** (`--quick`: few steps, 3 repeats, small data): checks that the script "
                   "runs end to end. These numbers are not results."), ""]
    load = " / ".join(f"{x:.2f}" for x in machine["load_average_start"])
    load_end = " / ".join(f"{x:.2f}" for x in machine.get("load_average_end", ()))
    cores = f"{machine['cores']} cores ({machine['usable_cores']} usable), {machine['memory_mib'] or '?'} MiB"
    versions = (f"Python {machine['python']}, TensorFlow {v['tensorflow']}, Keras {v['keras']}, "
                f"keras_ae {v['keras_ae']}, NumPy {v['numpy']}, PyTorch {v['torch']}, "
                f"ai-edge-litert {v['ai-edge-litert']}")
    method = (f"median (min–max) of {options.repeats} timed runs; warm-up excluded; compared contenders timed "
              f"round-robin; a timed training run is >= {options.steps} steps and >= {options.min_seconds:g} s")
    lines += [f"- Machine: {machine['cpu']}, {cores}; load average (1/5/15 min) {load} at start, {load_end} at end",
              f"- {versions}",
              f"- Date {machine['date']}, commit {machine['commit'] or 'unknown'}",
              f"- Data: {bench.data_source}",
              f"- Every figure: {method}.",
              ""]
    if machine["load_average_start"][0] > 0.5 * machine["usable_cores"]:
        busy = (f"> Warning: the 1-minute load average was {machine['load_average_start'][0]:.2f} on "
                f"{machine['usable_cores']} cores at start: other work shared the CPU, so these timings are low "
                "and noisy.")
        lines += [busy, ""]
    if bench.targets:
        rows = [[t["target"], t["shown"], t["goal"], "–" if t["pass"] is None else verdict(t["pass"])]
                for t in bench.targets]
        lines += ["## Targets", "", table(["target", "measured, median (min–max)", "goal", "verdict"], rows), ""]
    for name in options.sections:
        title, render = REPORTS[name]
        lines += [f"## {title}", ""]
        if name in failures:
            lines += [f"**FAILED**: {failures[name]}", ""]
        elif name in bench.results:
            lines += [render(bench.results[name]), ""]
    if bench.notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in bench.notes] + [""]
    lines += ["Section wall-clock times (bookkeeping, one run each): "
              + ", ".join(f"{k} {s:.0f} s" for k, s in durations.items()), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 3 repeats, 5 steps, 1,024 images; checks the script, measures nothing")
    parser.add_argument("--repeats", type=int, default=None, help=f"timed runs per figure (default 5; at least {MIN_RUNS})")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps per timed run at batch 128 (default 50; --quick 5)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed warm-up steps (default 10; --quick 2)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="lengthen a timed training run to at least this long (default 2; --quick 0)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="PyTorch intra-op threads (default: torch's own default, the physical cores)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--out", default=str(HERE / "results"),
                        help="folder for performance.md and performance.json (default: benchmarks/results)")
    parser.add_argument("--peak-rss-child", default=None, help=argparse.SUPPRESS)
    return parser


def parse_options(argv=None) -> argparse.Namespace:
    parser = build_parser()
    options = parser.parse_args(argv)
    quick = options.quick
    defaults = {"repeats": 3 if quick else 5, "steps": 5 if quick else 50, "warmup": 2 if quick else 10,
                "min_seconds": 0.0 if quick else 2.0}
    for key, value in defaults.items():
        if getattr(options, key) is None:
            setattr(options, key, value)
    options.limit = 1024 if quick else None  # images per split
    options.matmul_reps = 2 if quick else 10
    options.decode_seconds = 0.1 if quick else 2.0
    options.latency_calls = 50 if quick else 1000
    options.memory_epochs = 1 if quick else 2
    if options.repeats < MIN_RUNS:
        parser.error(f"--repeats {options.repeats}: refusing to report figures from fewer than {MIN_RUNS} timed runs "
                     "(every figure is min/median/max of >= 3 runs)")
    if options.steps < 1 or options.warmup < 1 or options.min_seconds < 0:
        parser.error("--steps and --warmup must be >= 1, --min-seconds >= 0")
    options.sections = [s.strip() for s in options.sections.split(",") if s.strip()]
    unknown = [s for s in options.sections if s not in SECTIONS]
    if unknown or not options.sections:
        parser.error(f"unknown section(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    return options


def main(argv=None) -> int:
    options = parse_options(argv)
    if options.peak_rss_child:
        speed_training.peak_rss_child(json.loads(options.peak_rss_child))
        return 0
    # train.py's fit passes Keras's default shuffle=True with a tf.data pipeline (which shuffles itself).
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    machine = machine_info()
    tmp = Path(tempfile.mkdtemp(prefix="keras_ae-performance-"))
    bench = Bench(options, tmp)
    failures, durations = {}, {}
    try:
        load_data(bench)
        for name in options.sections:
            print(f"[performance] {name} ...", file=sys.stderr, flush=True)
            start = time.perf_counter()
            try:
                bench.results[name] = MEASURES[name](bench)
            except TooFewRuns:
                raise
            except Exception as error:  # noqa: BLE001 -- report the failure, go on with the other sections, exit non-zero
                traceback.print_exc()
                failures[name] = f"{type(error).__name__}: {error}"
            durations[name] = time.perf_counter() - start
            print(f"[performance] {name} done in {durations[name]:.0f} s", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    machine["load_average_end"] = os.getloadavg()
    report = markdown(bench, machine, failures, durations)
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "performance.md").write_text(report)
    raw = {"machine": machine, "quick": options.quick,
           "options": {k: v for k, v in vars(options).items() if k != "peak_rss_child"},
           "data": bench.data_source, "targets": bench.targets, "sections": bench.results, "failures": failures,
           "notes": bench.notes, "section_seconds": durations}
    (out / "performance.json").write_text(json.dumps(jsonable(raw), indent=2) + "\n")
    print(report)
    print(f"wrote {out / 'performance.md'} and {out / 'performance.json'}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
