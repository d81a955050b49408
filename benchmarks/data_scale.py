"""Data at the field's scale: a CelebA-sized folder of JPEGs trains in bounded memory, and the pipeline keeps up.

    python ../shared/tools/make_big_folder.py /tmp/big 202599 64          # the folder (about a minute)
    KERAS_AE_DATA=../shared/datasets python benchmarks/data_scale.py --folder /tmp/big

Measures, each in a fresh process where it is a process's figure:

1. ``train.py --model vae --arch conv --dataset FOLDER --epochs 1 --steps-per-epoch 30 --no-evaluate
   --no-export``: peak RSS (``wait4``'s ru_maxrss of that child) and the seconds from the command's start
   to the end of its first training step (the progress bar's ``1/30``);
2. the pipeline alone, images/s delivered as float32 batches of 128: decoding the JPEGs (``--cache
   none``), the first pass that writes the disk cache, and reading the cache after it; against the
   conv VAE's own training rate at 64x64 (in-memory batches), as ratios;
3. mnist-small: the conv VAE's epoch time through ``splits.pipeline`` with this keras_ae and with
   another checkout (``--baseline``, e.g. a worktree of 0.2.0), timed round-robin, and that the same
   seed gives the same split (fingerprints of two loads).

Writes ``benchmarks/results/data_scale.json`` and prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
BATCH = 128

CHILD = r"""
import json, os, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
sys.path.insert(0, sys.argv[1])
import keras, numpy as np, tensorflow as tf
from keras_ae import data
from keras_ae.models import VAE
task = json.loads(sys.argv[2])

def rate(dataset, batches):
    start, images = time.perf_counter(), 0
    for batch in (dataset if batches is None else dataset.take(batches)):
        images += int((batch[0] if isinstance(batch, tuple) else batch).shape[0])
    return images / (time.perf_counter() - start)

if task["what"] == "pipeline":
    splits = data.load(task["folder"], cache=task["cache"], cache_dir=task["cache_dir"])
    print(json.dumps({"images_per_s": rate(splits.pipeline("train", task["batch"]), task["batches"])}))
elif task["what"] == "train_rate":
    model = VAE(tuple(task["shape"]), latent_dim=32, arch="conv")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    x = np.random.default_rng(0).random((task["batch"] * 8, *task["shape"])).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(x).batch(task["batch"]).cache().repeat()
    model.fit(ds, steps_per_epoch=5, epochs=1, verbose=0)  # warm-up, tracing
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=task["steps"], epochs=1, verbose=0)
    print(json.dumps({"images_per_s": task["steps"] * task["batch"] / (time.perf_counter() - start)}))
elif task["what"] == "mnist_epoch":
    splits = data.load("mnist", seed=0, download=False)
    model = VAE(splits.image_shape, latent_dim=32, arch="conv")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    train = splits.pipeline("train", task["batch"], seed=0)
    model.fit(train, epochs=1, verbose=0)  # warm-up
    start = time.perf_counter()
    model.fit(train, epochs=task["epochs"], verbose=0)
    print(json.dumps({"epoch_seconds": (time.perf_counter() - start) / task["epochs"]}))
"""


def child(code_root: Path, task: dict) -> dict:
    """Run one measurement in a fresh interpreter importing keras_ae from ``code_root``."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(code_root), json.dumps(task)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(code_root)})
    if done.returncode:
        raise SystemExit(f"error: measurement {task['what']} failed: {done.stderr.strip()[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_run(folder: str, run_dir: Path, cache_dir: Path) -> dict:
    """The issue's command in a child process: its peak RSS and the seconds to its first training step."""
    command = [sys.executable, str(REPO / "train.py"), "--model", "vae", "--arch", "conv", "--dataset", folder,
               "--epochs", "1", "--steps-per-epoch", "30", "--no-evaluate", "--no-export", "--run-dir", str(run_dir),
               "--verbose", "1"]
    env = {**os.environ, "KERAS_AE_CACHE": str(cache_dir), "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    first_step, buffer, tail = None, b"", []
    while chunk := process.stdout.read1(4096):
        buffer += chunk
        *lines, buffer = re.split(rb"[\r\n]", buffer)
        for line in lines:
            tail = (tail + [line.decode(errors="replace")])[-20:]
            if first_step is None and re.search(rb"\b1/30\b", line):
                first_step = time.perf_counter() - start
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit("error: train.py failed:\n" + "\n".join(tail))
    return {"peak_rss_mib": usage.ru_maxrss / 1024, "first_step_seconds": first_step,
            "total_seconds": time.perf_counter() - start, "command": " ".join(command[1:])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, help="the image folder (make_big_folder.py)")
    parser.add_argument("--baseline", default=None, help="another keras_ae checkout to compare mnist-small with")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each pipeline and epoch figure")
    parser.add_argument("--batches", type=int, default=200, help="batches timed per pipeline run")
    options = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="keras_ae-data-scale-"))
    report = {"folder": options.folder, "images": sum(1 for e in os.scandir(options.folder)
                                                       if e.is_file() and not e.name.startswith("."))}
    try:
        print("[data_scale] train.py on the folder ...", file=sys.stderr, flush=True)
        report["train"] = train_run(options.folder, work / "run", work / "cache-train")
        shape = json.loads((work / "run" / "config.json").read_text())["data"]["image_shape"]
        report["image_shape"] = shape

        print("[data_scale] pipeline and training rates ...", file=sys.stderr, flush=True)
        task = {"folder": options.folder, "batch": BATCH, "cache_dir": str(work / "cache")}
        decode = [child(REPO, {**task, "what": "pipeline", "cache": "none", "batches": options.batches})["images_per_s"]
                  for _ in range(options.repeats)]
        # A full pass writes the cache (a pass cut short, even by take(), leaves none).
        writing = child(REPO, {**task, "what": "pipeline", "cache": "disk", "batches": None})["images_per_s"]
        cached = [child(REPO, {**task, "what": "pipeline", "cache": "disk", "batches": options.batches})["images_per_s"]
                  for _ in range(options.repeats)]
        training = [child(REPO, {"what": "train_rate", "shape": shape, "batch": BATCH, "steps": 20})["images_per_s"]
                    for _ in range(options.repeats)]
        median = statistics.median
        report["pipeline"] = {
            "decoding_images_per_s": decode, "first_pass_writing_cache_images_per_s": writing,
            "from_disk_cache_images_per_s": cached, "conv_vae_training_images_per_s": training,
            "decoding_over_training": median(decode) / median(training),
            "cache_over_training": median(cached) / median(training)}

        print("[data_scale] mnist-small ...", file=sys.stderr, flush=True)
        roots = {"this": REPO, **({"baseline": Path(options.baseline)} if options.baseline else {})}
        epochs = {name: [] for name in roots}
        for _ in range(options.repeats):  # round-robin: a change of load hits both alike
            for name, root in roots.items():
                epochs[name].append(child(root, {"what": "mnist_epoch", "batch": BATCH, "epochs": 3})["epoch_seconds"])
        report["mnist_small_epoch_seconds"] = epochs
        fingerprints = subprocess.run([sys.executable, "-c", "import json, sys; from keras_ae import data; "
                                       "print(json.dumps([data.load('mnist', seed=0, download=False).fingerprint() "
                                       "for _ in range(2)]))"], capture_output=True, text=True,
                                      env={**os.environ, "PYTHONPATH": str(REPO)})
        first, second = json.loads(fingerprints.stdout.strip().splitlines()[-1])
        report["same_seed_same_split"] = first == second
    finally:
        shutil.rmtree(work, ignore_errors=True)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data_scale.json").write_text(json.dumps(report, indent=2) + "\n")
    train, pipe = report["train"], report["pipeline"]
    median = statistics.median
    print(f"| {report['images']:,} JPEGs, {'x'.join(map(str, report['image_shape']))} | measured | target |")
    print("| --- | --- | --- |")
    print(f"| peak RSS of the train.py run | {train['peak_rss_mib'] / 1024:.2f} GB | <= 2.5 GB |")
    print(f"| start to first training step | {train['first_step_seconds']:.1f} s | <= 20 s |")
    print(f"| pipeline decoding JPEGs / conv VAE training | {median(pipe['decoding_images_per_s']):,.0f} / "
          f"{median(pipe['conv_vae_training_images_per_s']):,.0f} images/s = {pipe['decoding_over_training']:.1f}x | >= 2x |")
    print(f"| pipeline from the disk cache / training | {median(pipe['from_disk_cache_images_per_s']):,.0f} images/s = "
          f"{pipe['cache_over_training']:.1f}x | >= 10x |")
    print(f"| first pass, writing the cache | {pipe['first_pass_writing_cache_images_per_s']:,.0f} images/s | |")
    for name, seconds in report["mnist_small_epoch_seconds"].items():
        print(f"| mnist-small conv VAE epoch, {name} | {median(seconds):.2f} s ({min(seconds):.2f}-{max(seconds):.2f}) | "
              "unchanged within noise |")
    print(f"| same seed, same split (fingerprints of two loads) | {report['same_seed_same_split']} | True |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
