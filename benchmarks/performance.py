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
import datetime
import gc
import importlib.metadata
import json
import logging
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # reference_models.py sits beside this file

MIN_RUNS = 3
SECTIONS = ("training", "zoo", "flops", "pipeline", "xla", "batch", "decode", "memory")
IMAGE_SHAPE = (28, 28, 1)
NETWORK = {"latent_dim": 2, "widths": (32, 64), "dense_units": 16}  # the keras-io example VAE's sizes
KERAS_IO_VAE = {**NETWORK, "arch": "conv"}  # the same as keras_ae.models.VAE options
BATCH = 128
OURS, OURS_BFLOAT16 = "keras_ae VAE", "keras_ae VAE, bfloat16 (--mixed-precision)"
KERAS_REFERENCE, TORCH_REFERENCE = "Keras reference (keras-io train_step)", "PyTorch eager"
SWEEP = (64, 128, 256, 512)
DECODE_BATCH = 256
LEARNING_RATE = 1e-3
TARGETS = {  # what the project issue asks for; PASS/MISS is judged on the median
    "vs_keras": 1.0,  # keras_ae conv VAE / plain Keras reference, images/s
    "vs_torch": 2.0,  # keras_ae conv VAE / PyTorch eager, images/s
    "matmul_fraction": 0.60,  # training FLOP/s / float32 matmul FLOP/s
    "pipeline_cost_pct": 5.0,  # splits.pipeline epoch time over the in-memory epoch, %
    "tflite_latency_ms": 0.25,  # TFLite conv decoder (float32 or int8), batch 1, median
}


# ---------------------------------------------------------------- timing helpers


class TooFewRuns(ValueError):
    """A figure was asked for from fewer than MIN_RUNS timed runs."""


def check_repeats(repeats: int) -> None:
    """Refuse, with a clear message, to measure anything with fewer than MIN_RUNS timed runs."""
    if repeats < MIN_RUNS:
        raise TooFewRuns(f"refusing to report a figure from {repeats} timed run(s): every figure is the "
                         f"min/median/max of at least {MIN_RUNS} runs")


def summarize(samples, unit: str) -> dict:
    """min / median / max (and every sample) of at least MIN_RUNS measurements; TooFewRuns otherwise."""
    samples = [float(s) for s in samples]
    check_repeats(len(samples))
    return {"min": min(samples), "median": statistics.median(samples), "max": max(samples),
            "runs": len(samples), "unit": unit, "samples": samples}


def wall_seconds(fn) -> float:
    """Wall-clock seconds of one call of ``fn``."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed(fn, repeats: int) -> dict:
    """Seconds per call of ``fn`` over ``repeats`` timed calls, as dict(min, median, max); refuses < 3."""
    check_repeats(repeats)
    return summarize([wall_seconds(fn) for _ in range(repeats)], "s")


def round_robin(fns: dict, repeats: int, measure=wall_seconds) -> dict:
    """``measure(fn)`` of every fn, ``repeats`` rounds of one run each: {name: [one value per round]}.

    Interleaving spreads any drift of the machine's load over all contenders instead of one.
    """
    check_repeats(repeats)
    values = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            values[name].append(measure(fn))
    return values


def rate(seconds: list, work: float, unit: str) -> dict:
    """``work`` per second for each timed run, summarized."""
    return summarize([work / s for s in seconds], unit)


def paired_ratio(a: dict, b: dict) -> dict:
    """a / b per round of a round-robin (the samples of two summaries, in order), summarized."""
    return summarize([x / y for x, y in zip(a["samples"], b["samples"])], "x")


def median_latency_ms(fn, calls: int) -> float:
    """Median wall-clock milliseconds of ``calls`` single calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


# ---------------------------------------------------------------- formatting


def fmt(stat: dict | None, digits: int = 0, scale: float = 1.0) -> str:
    """'median (min-max)' of a summary."""
    if stat is None:
        return "n/a"
    m, lo, hi = (stat[k] * scale for k in ("median", "min", "max"))
    return f"{m:,.{digits}f} ({lo:,.{digits}f}–{hi:,.{digits}f})"


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# ---------------------------------------------------------------- the run's state


@dataclass
class Bench:
    """Options, data and results shared by the sections of one run."""

    options: argparse.Namespace
    tmp: Path
    splits: object = None  # keras_ae.data.DataSplits
    dataset_arg: str = ""  # what train.py / data.load get to find the same data
    dataset_label: str = ""  # the same, for people
    data_source: str = ""
    x: np.ndarray | None = None  # training images, float32 NHWC in [0, 1]
    y: np.ndarray | None = None  # their labels
    results: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def target(self, what: str, measured: dict | None, goal: str, ok: bool | None, shown: str) -> None:
        """One line of the targets table (``ok`` None: not measured)."""
        self.targets.append({"target": what, "measured": measured, "goal": goal,
                             "pass": None if ok is None else bool(ok), "shown": shown})


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


# ---------------------------------------------------------------- trainers: one timed unit = N steps


def batched(x: np.ndarray, batch: int) -> np.ndarray:
    """The first whole batches of ``x`` as one array of shape (batches, batch, ...)."""
    count = len(x) // batch
    if count == 0:
        raise SystemExit(f"error: {len(x)} training images are fewer than one batch of {batch}")
    return x[: count * batch].reshape(count, batch, *x.shape[1:])


class Trainer:
    """Runs N training steps of one contender; ``calibrate`` fixes N for the timed runs."""

    batch: int
    steps_per_run: int = 0

    def train(self, steps: int) -> None:
        raise NotImplementedError

    def calibrate(self, warmup: int, steps: int, min_seconds: float) -> None:
        """Warm up (tracing included, not timed), then pick N >= ``steps`` so a run lasts >= ``min_seconds``."""
        self.train(warmup)
        per_step = wall_seconds(lambda: self.train(steps)) / steps
        self.steps_per_run = max(steps, math.ceil(min_seconds / per_step)) if min_seconds else steps

    def run(self) -> None:
        self.train(self.steps_per_run)

    @property
    def images_per_run(self) -> int:
        return self.steps_per_run * self.batch


class KerasTrainer(Trainer):
    """``model.fit`` on batches already in memory (a dataset of whole-batch tensor slices, repeated).

    The dataset carries keras_ae's pipeline options (no autotuner): with it, every ``fit`` call ended in a
    wait of up to 2.5 s for the autotuner thread, which made timings of short runs meaningless.
    """

    def __init__(self, model, x: np.ndarray, batch: int, y: np.ndarray | None = None):
        import tensorflow as tf

        from keras_ae import data

        self.model, self.batch = model, batch
        xb = batched(x, batch)
        tensors = xb if y is None else (xb, batched(y, batch))
        self.dataset = tf.data.Dataset.from_tensor_slices(tensors).repeat().with_options(data.pipeline_options())

    def train(self, steps: int) -> None:
        self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0)


class TorchTrainer(Trainer):
    """A plain PyTorch eager loop over the same batches (NCHW)."""

    def __init__(self, x: np.ndarray, batch: int, threads: int | None = None):
        import torch
        from reference_models import torch_vae

        if threads:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        torch.manual_seed(0)
        self.batch = batch
        self.model = torch_vae(IMAGE_SHAPE, **NETWORK)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.batches = torch.from_numpy(np.ascontiguousarray(batched(x, batch).transpose(0, 1, 4, 2, 3)))
        self.position = 0

    def train(self, steps: int) -> None:
        from reference_models import torch_train_step

        for _ in range(steps):
            torch_train_step(self.model, self.optimizer, self.batches[self.position % len(self.batches)])
            self.position += 1


def compiled(model, jit_compile: bool = False):
    """``model`` compiled as train.py does: Adam(1e-3), XLA only when asked."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), jit_compile=jit_compile)
    return model


def keras_ae_vae(jit_compile: bool = False, policy: str | None = None):
    """The keras_ae conv VAE configured like the keras-io example.

    ``policy``: build it under that Keras dtype policy (``mixed_bfloat16`` is what ``train.py
    --mixed-precision`` picks on a CPU with native bfloat16); the global policy is restored after.
    """
    import keras

    from keras_ae.models import VAE

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy or previous)
    try:
        return compiled(VAE(IMAGE_SHAPE, **KERAS_IO_VAE), jit_compile)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def bfloat16_missing() -> str | None:
    """None when this CPU computes bfloat16 natively, else why the bfloat16 row is skipped."""
    from keras_ae.distribute import cpu_has_bfloat16

    if cpu_has_bfloat16():
        return None
    return "bfloat16 row skipped: this CPU has no native bfloat16 (AVX512-BF16 or AMX)"


def trainable_parameters(model) -> int:
    return sum(math.prod(weight.shape) for weight in model.trainable_weights)


def throughput(bench: Bench, trainers: dict) -> dict:
    """images/s of every trainer: calibrated and warmed up, then timed round-robin."""
    options = bench.options
    for trainer in trainers.values():
        trainer.calibrate(options.warmup, options.steps, options.min_seconds)
    seconds = round_robin({name: t.run for name, t in trainers.items()}, options.repeats)
    return {name: {"images_per_s": rate(seconds[name], t.images_per_run, "images/s"),
                   "steps_per_run": t.steps_per_run, "batch": t.batch}
            for name, t in trainers.items()}


def release() -> None:
    """Drop Keras's global state between sections (models of a finished section are unreferenced)."""
    import keras

    keras.backend.clear_session()
    gc.collect()


def torch_missing() -> str | None:
    """None when torch imports, else why not (the PyTorch column is then skipped)."""
    try:
        import torch  # noqa: F401
    except ImportError as error:
        return (f"PyTorch column skipped: torch is not installed ({error}); install torch (the CPU build is "
                "enough) to measure it")
    return None


# ---------------------------------------------------------------- section: training vs references


def measure_training(bench: Bench) -> dict:
    """keras_ae conv VAE vs the keras-io plain-Keras train_step vs PyTorch eager, batch 128, same batches."""
    from reference_models import keras_io_vae

    ours = keras_ae_vae()
    reference = compiled(keras_io_vae(IMAGE_SHAPE, **NETWORK))
    parameters = trainable_parameters(reference)
    if trainable_parameters(ours) != parameters:
        raise AssertionError(f"the references are not the same network: keras_ae has {trainable_parameters(ours)} "
                             f"trainable parameters, the keras-io reference {parameters}")
    trainers = {OURS: KerasTrainer(ours, bench.x, BATCH), KERAS_REFERENCE: KerasTrainer(reference, bench.x, BATCH)}
    no_bfloat16 = bfloat16_missing()
    if no_bfloat16:
        bench.notes.append(no_bfloat16)
    else:
        trainers[OURS_BFLOAT16] = KerasTrainer(keras_ae_vae(policy="mixed_bfloat16"), bench.x, BATCH)
    skipped = torch_missing()
    if skipped:
        bench.notes.append(skipped)
    else:
        trainers[TORCH_REFERENCE] = TorchTrainer(bench.x, BATCH, bench.options.torch_threads)
        torch_params = sum(p.numel() for p in trainers[TORCH_REFERENCE].model.parameters())
        if torch_params != parameters:
            raise AssertionError(f"torch reference has {torch_params} parameters, Keras {parameters}")
    result = {"contenders": throughput(bench, trainers), "parameters": parameters,
              "torch": skipped or "measured",
              "torch_threads": None if skipped else trainers[TORCH_REFERENCE].threads}
    ips = {name: c["images_per_s"] for name, c in result["contenders"].items()}
    ours = [name for name in (OURS, OURS_BFLOAT16) if name in ips]
    result["ratios"] = {mine: {ref: paired_ratio(ips[mine], ips[ref]) for ref in (KERAS_REFERENCE, TORCH_REFERENCE)
                               if ref in ips} for mine in ours}
    vs_keras = result["ratios"][OURS][KERAS_REFERENCE]
    bench.target("keras_ae conv VAE vs plain Keras train_step (images/s ratio, both float32)", vs_keras,
                 f">= {TARGETS['vs_keras']:.1f}x", vs_keras["median"] >= TARGETS["vs_keras"], fmt(vs_keras, 3) + "x")
    for mine in ours:
        vs_torch = result["ratios"][mine].get(TORCH_REFERENCE)
        bench.target(f"{mine} vs PyTorch eager float32 (images/s ratio)", vs_torch, f">= {TARGETS['vs_torch']:.1f}x",
                     None if vs_torch is None else vs_torch["median"] >= TARGETS["vs_torch"],
                     "not measured (torch not installed)" if vs_torch is None else fmt(vs_torch, 3) + "x")
    release()
    return result


def report_training(result: dict) -> str:
    rows = [[name, fmt(c["images_per_s"]), c["steps_per_run"]] for name, c in result["contenders"].items()]
    text = table(["implementation", "images/s, median (min–max)", "steps per timed run"], rows)
    references = [ref for ref in (KERAS_REFERENCE, TORCH_REFERENCE) if ref in result["contenders"]]
    ratio_rows = [[mine] + [fmt(ratios[ref], 2) + "x" for ref in references] for mine, ratios in result["ratios"].items()]
    text += ("\n\nSpeed-up of keras_ae over each reference (images/s ratio, paired per round):\n\n"
             + table(["keras_ae"] + [f"÷ {ref}" for ref in references], ratio_rows))
    if result["torch"] != "measured":
        text += f"\n\n{result['torch']}."
    else:
        text += (f"\n\nPyTorch ran with {result['torch_threads']} intra-op thread(s) (OpenMP; set with "
                 "--torch-threads). OpenMP threads lose badly when other processes share the cores, so on a busy "
                 "machine this column understates PyTorch.")
    return (f"Conv VAE like the keras-io example (28x28x1, Conv 32/64 stride 2, Dense 16, latent 2, mirrored "
            f"transposed-conv decoder, {result['parameters']:,} trainable parameters in all), batch {BATCH}, "
            f"Adam, no XLA, same in-memory batches. Every row computes in float32 except the bfloat16 one "
            f"(``--mixed-precision`` on this CPU: bfloat16 compute, float32 variables and losses).\n\n{text}")


# ---------------------------------------------------------------- section: the zoo


def zoo_model(name: str, **overrides):
    """A model of the zoo with its defaults for 28x28x1 images (cvae: 10 classes), compiled."""
    from keras_ae.models import MODELS

    kwargs = {"num_classes": 10} if MODELS[name].needs_labels else {}
    return compiled(MODELS[name](IMAGE_SHAPE, **kwargs, **overrides))


def measure_zoo(bench: Bench) -> dict:
    """images/s of every zoo model (default mlp architecture), plus conv ae / contractive for the penalty cost."""
    from keras_ae.models import MODELS

    trainers, skipped, methods = {}, {}, {}
    for name, cls in MODELS.items():
        if name == "pca":
            skipped[name] = "closed form (scikit-learn PCA on all images, then one reporting pass): no training step"
            continue
        model = zoo_model(name)
        trainers[name] = KerasTrainer(model, bench.x, BATCH, bench.y if cls.needs_labels else None)
        methods[name] = getattr(model, "jacobian_method", None)
    for name in ("ae", "contractive"):  # the contractive penalty with the projection estimator (conv encoder)
        model = zoo_model(name, arch="conv")
        trainers[f"{name} (conv)"] = KerasTrainer(model, bench.x, BATCH)
        methods[f"{name} (conv)"] = getattr(model, "jacobian_method", None)
    result = {"contenders": throughput(bench, trainers), "skipped": skipped, "jacobian": methods}
    ips = {name: c["images_per_s"] for name, c in result["contenders"].items()}
    result["contractive_cost"] = {
        arch: {"slowdown": paired_ratio(ips[ae], ips[cae]), "jacobian": methods[cae]}
        for arch, (ae, cae) in {"mlp": ("ae", "contractive"), "conv": ("ae (conv)", "contractive (conv)")}.items()}
    release()
    return result


def report_zoo(result: dict) -> str:
    rows = [[name, fmt(c["images_per_s"]), c["steps_per_run"]] for name, c in result["contenders"].items()]
    rows += [[name, "skipped: " + why, "–"] for name, why in result["skipped"].items()]
    cost_rows = []
    for arch, cost in result["contractive_cost"].items():
        slowdown = cost["slowdown"]
        cost_rows.append([arch, cost["jacobian"], fmt(slowdown, 2) + "x",
                          f"{(slowdown['median'] - 1) * 100:+.0f}%"])
    return ("Every model with its default architecture (mlp 512-256, 16-D code; cvae with 10 classes), "
            f"batch {BATCH}, no XLA; two conv rows for the contractive penalty's cost.\n\n"
            + table(["model", "images/s, median (min–max)", "steps per timed run"], rows)
            + "\n\nContractive penalty cost (contractive vs ae of the same architecture, paired per round):\n\n"
            + table(["architecture", "Jacobian", "ae ÷ contractive step time", "penalty's share over ae"], cost_rows))


# ---------------------------------------------------------------- section: FLOPs and matmul rate


def layer_macs(layer) -> int:
    """Multiply-accumulates of one image through a Conv2D, Conv2DTranspose or Dense layer (0 for others)."""
    from keras import layers

    if isinstance(layer, layers.Conv2DTranspose):  # every input pixel scatters a k x k x filters patch
        _, h, w, c_in = layer.input.shape
        kh, kw = layer.kernel_size
        return h * w * c_in * kh * kw * layer.filters
    if isinstance(layer, layers.Conv2D):
        _, h, w, c_out = layer.output.shape
        kh, kw = layer.kernel_size
        return h * w * c_out * kh * kw * layer.input.shape[-1] // layer.groups
    if isinstance(layer, layers.Dense):
        return math.prod(layer.input.shape[1:]) * layer.units
    return 0


def analytic_flops(model) -> dict:
    """Forward FLOPs per image (2 x MACs over encoder and decoder layers; elementwise ops left out)."""
    per_layer = {f"{net.name}/{layer.name}": 2 * layer_macs(layer)
                 for net in (model.encoder, model.decoder) for layer in net.layers if layer_macs(layer)}
    forward = sum(per_layer.values())
    return {"forward": forward, "training": 3 * forward, "per_layer": per_layer}


def profiler_flops(model) -> dict:
    """tf.profiler float_ops of one image: forward (encoder mean -> decoder) and loss + gradients."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    options = (option_builder.ProfileOptionBuilder(option_builder.ProfileOptionBuilder.float_operation())
               .with_empty_output().build())
    spec = tf.TensorSpec([1, *IMAGE_SHAPE], tf.float32)

    @tf.function
    def forward(x):
        return model.decode_logits(model.encode(x))

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = model.compute_losses(x, training=True)["loss"]
        return tape.gradient(loss, model.trainable_weights)

    return {name: int(model_analyzer.profile(fn.get_concrete_function(spec).graph, options=options).total_float_ops)
            for name, fn in (("forward", forward), ("training", gradients))}


def measure_matmul(bench: Bench, n: int = 2048) -> dict:
    """float32 FLOP/s of an n x n x n tf.linalg.matmul (2 n^3 FLOPs), the machine's practical peak."""
    import tensorflow as tf

    a, b = tf.random.normal((n, n), seed=1), tf.random.normal((n, n), seed=2)
    matmul = tf.function(lambda: tf.linalg.matmul(a, b))
    reps = bench.options.matmul_reps

    def run():
        for _ in range(reps):
            c = matmul()
        c[0, 0].numpy()

    run()  # warm-up
    seconds = timed(run, bench.options.repeats)["samples"]
    return {"n": n, "matmuls_per_run": reps, "flop_per_s": rate(seconds, 2 * n**3 * reps, "FLOP/s")}


def measure_flops(bench: Bench) -> dict:
    """FLOPs per training image of the conv VAE and achieved FLOP/s as a share of the matmul rate."""
    from reference_models import keras_io_vae

    model = keras_ae_vae()
    counted = analytic_flops(model)
    reference = analytic_flops(keras_io_vae(IMAGE_SHAPE, **NETWORK))
    if reference["forward"] != counted["forward"]:
        raise AssertionError(f"keras-io reference counts {reference['forward']} forward FLOPs, keras_ae {counted['forward']}")
    try:
        profiled = profiler_flops(model)
    except Exception as error:  # noqa: BLE001 -- the profiler is a TF1-era API; its failure must not sink the section
        profiled = {"error": f"{type(error).__name__}: {error}"}
    matmul = measure_matmul(bench)
    training = bench.results.get("training")
    if training is None:  # measure the conv VAE here when the training section is not part of this run
        training = {"contenders": throughput(bench, {OURS: KerasTrainer(model, bench.x, BATCH)})}
    peak = matmul["flop_per_s"]["median"]
    achieved = {}
    for name, contender in training["contenders"].items():
        ips = contender["images_per_s"]
        flops = summarize([s * counted["training"] for s in ips["samples"]], "FLOP/s")
        achieved[name] = {"flop_per_s": flops,
                          "matmul_fraction": summarize([f / peak for f in flops["samples"]], "fraction")}
    for mine in (OURS, OURS_BFLOAT16):
        if mine in achieved:
            fraction = achieved[mine]["matmul_fraction"]
            bench.target(f"{mine}: training FLOP/s / float32 matmul FLOP/s", fraction,
                         f">= {TARGETS['matmul_fraction']:.0%}", fraction["median"] >= TARGETS["matmul_fraction"],
                         fmt(fraction, 1, 100) + "%")
    release()
    return {"analytic": counted, "profiler": profiled, "matmul": matmul, "achieved": achieved,
            "method": "analytic: forward = 2 x MACs of Conv2D/Conv2DTranspose/Dense layers from their shapes, "
                      "training = 3 x forward (forward + input and weight gradients); elementwise ops, the loss and "
                      "the Adam update are left out. tf.profiler float_ops of one image's forward graph and of its "
                      "loss + gradient graph shown as a cross-check."}


def report_flops(result: dict) -> str:
    counted, profiled = result["analytic"], result["profiler"]
    def mflop(value):
        return f"{value / 1e6:,.2f} MFLOP"

    rows = [["analytic (layer shapes; used below)", mflop(counted["forward"]), mflop(counted["training"])]]
    if "error" in profiled:
        rows.append(["tf.profiler float_ops", "unavailable", profiled["error"]])
    else:
        rows.append(["tf.profiler float_ops (cross-check)", mflop(profiled["forward"]), mflop(profiled["training"])])
    layer_rows = [[name, mflop(v)] for name, v in counted["per_layer"].items()]
    matmul = result["matmul"]
    achieved_rows = [[name, fmt(a["flop_per_s"], 2, 1e-9), fmt(a["matmul_fraction"], 1, 100) + "%"]
                     for name, a in result["achieved"].items()]
    return ("FLOPs per image of the conv VAE:\n\n" + table(["count", "forward", "training step"], rows)
            + f"\n\n{result['method']}\n\n<details><summary>forward FLOPs per layer</summary>\n\n"
            + table(["layer", "forward"], layer_rows) + "\n\n</details>\n\n"
            + f"float32 matmul rate ({matmul['n']}x{matmul['n']} tf.linalg.matmul, {matmul['matmuls_per_run']} per "
              f"timed run): {fmt(matmul['flop_per_s'], 2, 1e-9)} GFLOP/s.\n\n"
            + "Achieved training FLOP/s (images/s of the training section x training FLOPs per image), and its share "
              "of the median matmul rate:\n\n"
            + table(["implementation", "GFLOP/s", "share of matmul rate"], achieved_rows))


# ---------------------------------------------------------------- section: input pipeline


def measure_pipeline(bench: Bench) -> dict:
    """Epoch time of the conv VAE fed by splits.pipeline vs model.fit(numpy) vs batches cached in memory."""
    import tensorflow as tf

    x = bench.x
    from keras_ae import data

    memory = tf.data.Dataset.from_tensor_slices(x).batch(BATCH).cache().with_options(data.pipeline_options())
    feeds = {
        "splits.pipeline (cache, shuffle, batch, uint8->float map, prefetch)":
            lambda model: model.fit(bench.splits.pipeline("train", BATCH, seed=0), epochs=1, shuffle=False, verbose=0),
        "model.fit(numpy arrays, batch_size=128)":
            lambda model: model.fit(x, batch_size=BATCH, epochs=1, shuffle=True, verbose=0),
        "in-memory batches (Dataset of float32 tensors, cached)":
            lambda model: model.fit(memory, epochs=1, shuffle=False, verbose=0),
    }
    models = {name: keras_ae_vae() for name in feeds}
    epochs = {name: (lambda f=feed, m=models[name]: f(m)) for name, feed in feeds.items()}
    for epoch in epochs.values():  # warm-up epoch: tracing (whole and last partial batch), filling caches
        epoch()
    seconds = round_robin(epochs, bench.options.repeats)
    floor = "in-memory batches (Dataset of float32 tensors, cached)"
    result = {"images_per_epoch": len(x), "batch": BATCH,
              "epoch_seconds": {name: summarize(s, "s") for name, s in seconds.items()}}
    result["cost_pct"] = {name: summarize([(a / b - 1) * 100 for a, b in zip(s, seconds[floor])], "%")
                          for name, s in seconds.items() if name != floor}
    cost = result["cost_pct"]["splits.pipeline (cache, shuffle, batch, uint8->float map, prefetch)"]
    bench.target("input pipeline cost (splits.pipeline epoch over the in-memory epoch)", cost,
                 f"< {TARGETS['pipeline_cost_pct']:.0f}%", cost["median"] < TARGETS["pipeline_cost_pct"],
                 fmt(cost, 1) + "%")
    release()
    return result


def report_pipeline(result: dict) -> str:
    rows = []
    for name, seconds in result["epoch_seconds"].items():
        cost = result["cost_pct"].get(name)
        rows.append([name, fmt(seconds, 3), "floor" if cost is None else fmt(cost, 1) + "%"])
    return (f"One epoch of {result['images_per_epoch']:,} images, conv VAE, batch {result['batch']}, no XLA "
            "(each feed with its own model; the cost is paired per round):\n\n"
            + table(["feed", "epoch seconds", "cost over in-memory"], rows))


# ---------------------------------------------------------------- section: XLA


def measure_xla(bench: Bench) -> dict:
    """The conv VAE compiled without and with XLA (jit_compile=True), batch 128."""
    result = {"contenders": throughput(bench, {
        "jit_compile=False": KerasTrainer(keras_ae_vae(False), bench.x, BATCH),
        "jit_compile=True (XLA)": KerasTrainer(keras_ae_vae(True), bench.x, BATCH)})}
    ips = {name: c["images_per_s"] for name, c in result["contenders"].items()}
    result["speedup"] = paired_ratio(ips["jit_compile=True (XLA)"], ips["jit_compile=False"])
    release()
    return result


def report_xla(result: dict) -> str:
    rows = [[name, fmt(c["images_per_s"]), c["steps_per_run"]] for name, c in result["contenders"].items()]
    return (f"keras_ae conv VAE, batch {BATCH}:\n\n" + table(["compile", "images/s, median (min–max)",
                                                              "steps per timed run"], rows)
            + f"\n\nXLA speed-up (paired per round): {fmt(result['speedup'], 2)}x.")


# ---------------------------------------------------------------- section: batch size


def measure_batch(bench: Bench) -> dict:
    """The conv VAE at several batch sizes; --steps is for batch 128, the others process as many images."""
    options = bench.options
    steps = options.steps
    trainers = {}
    for batch in SWEEP:
        trainers[batch] = KerasTrainer(keras_ae_vae(), bench.x, batch)
    for batch, trainer in trainers.items():
        trainer.calibrate(options.warmup, max(1, round(steps * BATCH / batch)), options.min_seconds)
    seconds = round_robin({batch: t.run for batch, t in trainers.items()}, options.repeats)
    contenders = {batch: {"images_per_s": rate(seconds[batch], t.images_per_run, "images/s"),
                          "steps_per_run": t.steps_per_run} for batch, t in trainers.items()}
    best = max(contenders, key=lambda b: contenders[b]["images_per_s"]["median"])
    release()
    return {"contenders": contenders, "best_batch": best}


def report_batch(result: dict) -> str:
    best = result["contenders"][result["best_batch"]]["images_per_s"]["median"]
    rows = [[batch, fmt(c["images_per_s"]), c["steps_per_run"], f"{c['images_per_s']['median'] / best:.2f}"]
            for batch, c in result["contenders"].items()]
    return ("keras_ae conv VAE, no XLA:\n\n" + table(["batch", "images/s, median (min–max)", "steps per timed run",
                                                       "÷ best"], rows)
            + f"\n\nBest batch size (median images/s): {result['best_batch']}.")


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
    export_dir = export_run(run_dir, out_dir=bench.tmp / "export", version=1, quantize=True)
    return keras.models.load_model(run_dir / "model.keras"), export_dir


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
    from keras_ae.generate import VARIANTS, load_decoder, read_metadata

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


# ---------------------------------------------------------------- section: peak memory


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: VmHWM from /proc/self/status, else getrusage's ru_maxrss.

    On Linux ru_maxrss survives fork + exec: a child started by this (large) benchmark process would
    report this process's peak, not its own, while VmHWM belongs to the child's fresh address space.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux (bytes on macOS)


def peak_rss_child(config: dict) -> None:
    """Child process: build the conv VAE, fit it on splits.pipeline; print its own peak RSS (MiB) as JSON."""
    import keras

    from keras_ae import data

    splits = data.load(config["dataset"], seed=0, limit=config["limit"], download=False)
    keras.utils.set_random_seed(0)
    model = keras_ae_vae()
    before = peak_rss_mib()
    model.fit(splits.pipeline("train", BATCH, seed=0), epochs=config["epochs"], shuffle=False, verbose=0)
    print(json.dumps({"before_fit_mib": before, "peak_mib": peak_rss_mib()}))


def measure_memory(bench: Bench) -> dict:
    """Peak RSS of a training run, each run in a fresh subprocess (its own peak, not this process's)."""
    config = {"dataset": bench.dataset_arg, "label": bench.dataset_label, "limit": bench.options.limit,
              "epochs": bench.options.memory_epochs}
    command = [sys.executable, str(Path(__file__).resolve()), "--peak-rss-child", json.dumps(config)]
    runs = []

    def one_run():
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"peak-RSS child failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))

    check_repeats(bench.options.repeats)
    for _ in range(bench.options.repeats):
        one_run()
    return {"config": config,
            "peak_mib": summarize([r["peak_mib"] for r in runs], "MiB"),
            "before_fit_mib": summarize([r["before_fit_mib"] for r in runs], "MiB"),
            "fit_increase_mib": summarize([r["peak_mib"] - r["before_fit_mib"] for r in runs], "MiB")}


def report_memory(result: dict) -> str:
    config = result["config"]
    rows = [["peak RSS of the whole training process", fmt(result["peak_mib"])],
            ["peak before fit (imports, data, model built)", fmt(result["before_fit_mib"])],
            ["increase during fit", fmt(result["fit_increase_mib"])]]
    return (f"A subprocess loads {config['label']}"
            + (f" (limit {config['limit']})" if config["limit"] else "")
            + f", builds the conv VAE and fits it {config['epochs']} epoch(s) on splits.pipeline at batch {BATCH}; "
              "peak RSS (VmHWM; getrusage's ru_maxrss would carry this process's peak across fork + exec), "
              "one subprocess per run.\n\n" + table(["", "MiB, median (min–max)"], rows))


# ---------------------------------------------------------------- the machine and the report


def version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    """CPU, cores, memory, load, library versions, date and commit: what the figures depend on."""
    cpu = "unknown"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = None
    try:
        memory = next(int(line.split()[1]) // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                                check=False).stdout.strip() or None
    except OSError:
        commit = None
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "memory_mib": memory,
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": {name: version(name) for name in
                         ("tensorflow", "keras", "keras_ae", "numpy", "torch", "ai-edge-litert")},
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "commit": commit,
            "load_average_start": os.getloadavg()}


REPORTS = {"training": ("1. Training throughput: keras_ae vs references", report_training),
           "zoo": ("2. Training throughput of the zoo", report_zoo),
           "flops": ("3. FLOPs and the machine's matmul rate", report_flops),
           "pipeline": ("4. Input pipeline cost", report_pipeline),
           "xla": ("5. XLA", report_xla),
           "batch": ("6. Batch size", report_batch),
           "decode": ("7. Decoding", report_decode),
           "memory": ("8. Peak memory of a training run", report_memory)}
MEASURES = {"training": measure_training, "zoo": measure_zoo, "flops": measure_flops, "pipeline": measure_pipeline,
            "xla": measure_xla, "batch": measure_batch, "decode": measure_decode, "memory": measure_memory}


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


def jsonable(value):
    """Dict keys as strings, tuples as lists, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


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
        peak_rss_child(json.loads(options.peak_rss_child))
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
