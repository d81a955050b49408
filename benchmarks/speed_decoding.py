"""The speed section about decoding: the Keras decoder, the SavedModel and every TFLite variant."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from timing import fmt, median_latency_ms, rate, round_robin, summarize, table, verdict, wall_seconds
from trainers import BATCH, TARGETS, Bench, release

DECODE_BATCH = 256


# ---------------------------------------------------------------- section: decoding


def train_and_export(bench: Bench):
    """A conv VAE trained 1 epoch by train.py and exported (SavedModels + 4 TFLite decoders): (model, export dir)."""
    import keras

    from keras_ae.export import export_run
    from keras_ae.train import build_parser, run

    flags = ["--model", "vae", "--arch", "conv", "--latent-dim", "2", "--widths", "32,64", "--dense-units", "16",
             "--dataset", bench.dataset_arg, "--no-download", "--epochs", "1", "--batch-size", str(BATCH),
             "--run-dir", str(bench.tmp / "run"), "--no-export", "--no-evaluate", "--verbose", "0"]
    if bench.options.limit:
        flags += ["--limit", str(bench.options.limit)]
    logging.getLogger("keras_ae").setLevel(logging.WARNING)
    run_dir = run(build_parser().parse_args(flags))
    version_dir = export_run(run_dir, out_dir=bench.tmp / "export", version=1, quantize=True)
    return keras.models.load_model(run_dir / "model.keras"), version_dir.parent


def bare_tflite(path: Path):
    """``decode(z)`` for one code straight through the LiteRT interpreter (default threads, no checks)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.allocate_tensors()

    def decode(z):
        interpreter.set_tensor(inp["index"], z)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return decode


def calls_for(fn, seconds: float, low: int, high: int) -> int:
    """How many calls of ``fn`` (already warm) fill about ``seconds``, clamped to [low, high]."""
    return max(low, min(high, math.ceil(seconds / max(wall_seconds(fn), 1e-9))))


def measure_decode(bench: Bench) -> dict:
    """Images/s at batch 256 and batch-1 latency of each way to run the decoder.

    A timed run makes as many calls as fill about 2 s (``--quick``: 0.1 s): a batch-256 run at least 1
    call, a latency run 40 to 1,000 calls (``--quick``: 5 to 50), so one slow decoder cannot stretch the
    section to hours.
    """
    from keras_ae.generate import load_decoder
    from keras_ae.serving import VARIANTS, read_metadata

    options = bench.options
    model, export_dir = train_and_export(bench)
    metadata = read_metadata(export_dir)
    latent = metadata["latent_dim"]

    def decoders():  # fresh instances: the batch-256 and batch-1 loops each keep their own TFLite buffers
        found = {"Keras model.decode (eager)": lambda z: np.asarray(model.decode(z)),
                 "SavedModel (generate.load_decoder)": load_decoder(export_dir, "saved_model")}
        found.update({f"TFLite {v} (generate.load_decoder)": load_decoder(export_dir, "tflite", v) for v in VARIANTS})
        return found

    rng = np.random.default_rng(0)
    z_batch = rng.standard_normal((DECODE_BATCH, latent)).astype(np.float32)
    z_one = rng.standard_normal((1, latent)).astype(np.float32)
    batched_decoders, single = decoders(), decoders()
    for variant in VARIANTS:
        entry = next(name for name, e in metadata["artifacts"].items()
                     if (e.get("kind"), e.get("network"), e.get("variant")) == ("tflite", "decoder", variant))
        single[f"TFLite {variant} (bare interpreter invoke)"] = bare_tflite(export_dir / entry)
    for decode in batched_decoders.values():  # warm-up (tracing, buffer allocation), not timed
        decode(z_batch)
    for decode in single.values():
        for _ in range(5):
            decode(z_one)
    batch_calls = {name: calls_for(lambda d=d: d(z_batch), options.decode_seconds, 1, 10_000)
                   for name, d in batched_decoders.items()}
    latency_calls = {name: calls_for(lambda d=d: d(z_one), options.decode_seconds,
                                     max(5, options.latency_calls // 25), options.latency_calls)
                     for name, d in single.items()}
    batch_fns = {name: (lambda d=d, n=batch_calls[name]: [d(z_batch) for _ in range(n)])
                 for name, d in batched_decoders.items()}
    latency_fns = {name: (lambda d=d, n=latency_calls[name]: median_latency_ms(lambda: d(z_one), n))
                   for name, d in single.items()}
    seconds = round_robin(batch_fns, options.repeats)
    latencies = round_robin(latency_fns, options.repeats, measure=lambda fn: fn())
    sizes = {e["variant"] if e["kind"] == "tflite" else "saved_model": e.get("bytes")
             for e in metadata["artifacts"].values() if e.get("network") == "decoder"}
    result = {"batch": DECODE_BATCH, "batch_calls_per_run": batch_calls, "latency_calls_per_run": latency_calls,
              "images_per_s": {name: rate(s, DECODE_BATCH * batch_calls[name], "images/s")
                               for name, s in seconds.items()},
              "latency_ms": {name: summarize(v, "ms") for name, v in latencies.items()},
              "artifact_bytes": sizes}
    for variant in ("float32", "int8"):  # the target: "a TFLite conv decoder (float32 or int8)"
        latency = result["latency_ms"][f"TFLite {variant} (generate.load_decoder)"]
        bench.target(f"TFLite conv decoder batch-1 latency ({variant}, generate.load_decoder)", latency,
                     f"< {TARGETS['tflite_latency_ms']} ms", latency["median"] < TARGETS["tflite_latency_ms"],
                     fmt(latency, 3) + " ms")
    release()
    return result


def report_decode(result: dict) -> str:
    rows = []
    for name, latency in result["latency_ms"].items():
        ips = result["images_per_s"].get(name)
        goal = verdict(latency["median"] < TARGETS["tflite_latency_ms"]) if name.startswith("TFLite") else "–"
        calls = f"{result['batch_calls_per_run'].get(name, '–')} / {result['latency_calls_per_run'][name]}"
        rows.append([name, fmt(ips) if ips else "–", fmt(latency, 3), goal, calls])
    sizes = ", ".join(f"{k} {v / 1024:,.0f} KiB" for k, v in sorted(result["artifact_bytes"].items()) if v)
    return ("Conv VAE (latent 2) trained 1 epoch by train.py and exported by export_run. Batch-1 latency: the median "
            "of the calls of one timed run; the table gives min/median/max of those medians. TFLite files have a "
            "fixed batch of 1, so generate.load_decoder decodes a batch of 256 row by row; it runs LiteRT with one "
            "thread per core, the bare-invoke rows with LiteRT's default (one thread).\n\n"
            + table(["decoder", f"images/s at batch {result['batch']}", "batch-1 latency ms",
                     f"< {TARGETS['tflite_latency_ms']} ms", "calls per timed run (batch / latency)"], rows)
            + f"\n\nDecoder artifact sizes: {sizes}.")
