"""The contenders of the speed benchmarks (keras_ae, plain Keras, PyTorch) and the state a run shares."""

from __future__ import annotations

import argparse
import gc
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from timing import rate, round_robin, wall_seconds

IMAGE_SHAPE = (28, 28, 1)
NETWORK = {"latent_dim": 2, "widths": (32, 64), "dense_units": 16}  # the keras-io example VAE's sizes
KERAS_IO_VAE = {**NETWORK, "arch": "conv"}  # the same as keras_ae.models.VAE options
BATCH = 128
OURS, OURS_BFLOAT16 = "keras_ae VAE", "keras_ae VAE, bfloat16 (--mixed-precision)"
KERAS_REFERENCE, TORCH_REFERENCE = "Keras reference (keras-io train_step)", "PyTorch eager"
LEARNING_RATE = 1e-3
TARGETS = {  # what the project issue asks for; PASS/MISS is judged on the median
    "vs_keras": 1.0,  # keras_ae conv VAE / plain Keras reference, images/s
    "vs_torch": 2.0,  # keras_ae conv VAE / PyTorch eager, images/s
    "matmul_fraction": 0.60,  # training FLOP/s / float32 matmul FLOP/s
    "pipeline_cost_pct": 5.0,  # splits.pipeline epoch time over the in-memory epoch, %
    "tflite_latency_ms": 0.25,  # TFLite conv decoder (float32 or int8), batch 1, median
}


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
