"""Speed sections about training: keras_ae vs references, the zoo, FLOPs, input pipeline, XLA, batch size, memory."""

from __future__ import annotations

import json
import math
import subprocess
import sys


from timing import HERE, check_repeats, fmt, paired_ratio, peak_rss_mib, rate, round_robin, summarize, table, timed
from trainers import (
    BATCH,
    Bench,
    IMAGE_SHAPE,
    KERAS_REFERENCE,
    NETWORK,
    OURS,
    OURS_BFLOAT16,
    TARGETS,
    TORCH_REFERENCE,
    KerasTrainer,
    TorchTrainer,
    bfloat16_missing,
    compiled,
    keras_ae_vae,
    release,
    throughput,
    torch_missing,
    trainable_parameters,
)

SWEEP = (64, 128, 256, 512)


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


# ---------------------------------------------------------------- section: peak memory


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
    command = [sys.executable, str(HERE / "performance.py"), "--peak-rss-child", json.dumps(config)]
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
