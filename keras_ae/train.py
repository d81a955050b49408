"""Train one model of the zoo on one dataset and write its run folder.

    python train.py --model ae --arch conv --dataset mnist --latent-dim 16 --epochs 10

The run folder holds ``config.json`` (every option, the data source, library versions),
``model.keras``, ``history.csv``, TensorBoard logs under ``logs/``, ``results.json`` (final
training, validation and test metrics) and ``reconstructions.png``.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import logging
import os
from pathlib import Path

from keras_ae.errors import ConfigError, KerasAEError, exit_code

log = logging.getLogger("keras_ae")
BACKUP = "backup"  # folder of the last good epoch, kept while training runs (see keras_ae.callbacks.Backup)

# Flags that only some models take (default None); the rest are taken by every model.
MODEL_OPTIONS = ("reconstruction", "output_std", "penalty_weight", "sparsity", "target_rate", "jacobian",
                 "projections", "noise", "noise_level", "beta", "binarize", "free_bits", "kl_warmup_epochs")


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 32,64, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"widths must be positive, got {text!r}")
    return widths


def _image_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 28x28, got {text!r}") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"image size must be positive, got {text!r}")
    return height, width


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``train.py`` command line; every flag is documented in ``--help``."""
    from keras_ae.models import MODELS
    from keras_ae.networks import ARCHITECTURES, DOWNSAMPLING, UPSAMPLING
    from keras_ae.models.base import RECONSTRUCTION_LOSSES

    parser = argparse.ArgumentParser(
        prog="train.py", description="Train an autoencoder of the keras_ae zoo and write its run folder.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    what = parser.add_argument_group("model")
    what.add_argument("--model", default="ae", choices=sorted(MODELS), help="which model of the zoo")
    what.add_argument("--arch", default="mlp", choices=ARCHITECTURES, help="encoder/decoder family")
    what.add_argument("--latent-dim", type=_positive_int, default=16, help="size of the code z")
    what.add_argument("--widths", type=_widths, default=None,
                      help="comma-separated Dense units (mlp) or conv filters per stage (conv); "
                           "default 512,256 (mlp) or 32,64 (conv)")
    what.add_argument("--dense-units", type=int, default=0,
                      help="conv only: a Dense layer of this size before the code (0: none)")
    what.add_argument("--down", default="strided", choices=DOWNSAMPLING,
                      help="conv only: stride-2 convolutions or convolution + max-pooling")
    what.add_argument("--up", default="transpose", choices=UPSAMPLING,
                      help="conv only: stride-2 transposed convolutions or upsampling + convolution")
    what.add_argument("--activation", default="relu", help="hidden activation (any Keras activation name)")
    what.add_argument("--code-activation", default="linear",
                      help="activation of the code layer: linear, or relu for codes with exact zeros")
    what.add_argument("--reconstruction", default=None, choices=RECONSTRUCTION_LOSSES,
                      help="reconstruction term, summed over pixels: squared error (mse), Bernoulli "
                           "likelihood (bce) or Gaussian likelihood (gaussian); default mse, bce for VAEs")
    what.add_argument("--output-std", type=float, default=None,
                      help="with --reconstruction gaussian: fixed standard deviation of every pixel; "
                           "omit to learn it")

    from keras_ae.models.contractive import JACOBIAN_METHODS
    from keras_ae.models.denoising import NOISES
    from keras_ae.models.sparse import SPARSITY

    regularized = parser.add_argument_group("regularized autoencoders (sparse, contractive, denoising)")
    regularized.add_argument("--penalty-weight", type=float, default=None, metavar="LAMBDA",
                             help="sparse/contractive: weight lambda of the penalty added to the reconstruction "
                                  "(model default: 0.01 sparse, 0.1 contractive)")
    regularized.add_argument("--sparsity", default=None, choices=SPARSITY,
                             help="sparse: L1 on the code (latent), L1 on every hidden activation (activations), "
                                  "or KL to a target rate (kl); default latent")
    regularized.add_argument("--target-rate", type=float, default=None, metavar="RHO",
                             help="sparse with --sparsity kl: target mean activation rho in (0, 1); default 0.05")
    regularized.add_argument("--jacobian", default=None, choices=JACOBIAN_METHODS,
                             help="contractive: exact batch Jacobian, random-projection estimate, or auto "
                                  "(exact for mlp encoders with latent <= 64); default auto")
    regularized.add_argument("--projections", type=_positive_int, default=None,
                             help="contractive: random projections per step for the estimator; default 1")
    regularized.add_argument("--noise", default=None, choices=NOISES,
                             help="denoising: additive Gaussian noise, masking noise, or salt-and-pepper; "
                                  "default gaussian")
    regularized.add_argument("--noise-level", type=float, default=None,
                             help="denoising: sigma for gaussian; fraction of pixels hit for mask and "
                                  "salt_and_pepper, in [0, 1]; default 0.3")

    variational = parser.add_argument_group("variational autoencoders (vae, cvae)")
    variational.add_argument("--beta", type=float, default=None,
                             help="weight of the KL term (>= 0): 1 is the ELBO, > 1 a beta-VAE; default 1")
    variational.add_argument("--binarize", action="store_const", const=True, default=None,
                             help="dynamic binarization: each pixel is drawn 0/1 afresh every step")
    variational.add_argument("--free-bits", type=float, default=None, metavar="NATS",
                             help="minimum KL per latent unit counted in the loss (0: off)")
    variational.add_argument("--kl-warmup-epochs", type=int, default=None, metavar="N",
                             help="ramp the KL weight linearly from 0 to 1 over N epochs (0: off)")

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits (bundled), a TFDS image dataset name (mnist, fashion_mnist, kmnist, "
                           "cifar10, ...), or a path to an IDX folder, an .npz file or a folder of images")
    data.add_argument("--data-dir", default=None,
                      help="folder searched first for local copies of named datasets "
                           "(then $KERAS_AE_DATA, then TFDS)")
    data.add_argument("--no-download", action="store_true",
                      help="never ask TFDS to download (offline, it retries for minutes before failing)")
    data.add_argument("--image-size", type=_image_size, default=None,
                      help="HxW: resize a folder of images to this size")
    data.add_argument("--validation-fraction", type=_fraction, default=0.1,
                      help="fraction of the training images held out for validation")
    data.add_argument("--limit", type=_positive_int, default=None,
                      help="train on at most this many images (quick runs)")

    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=_positive_int, default=10, help="training epochs")
    train.add_argument("--batch-size", type=_positive_int, default=128, help="images per batch")
    train.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate")
    train.add_argument("--early-stopping", type=int, default=0, metavar="PATIENCE",
                       help="stop when the validation loss has not improved for PATIENCE epochs and keep "
                            "the best weights (0: off)")
    train.add_argument("--seed", type=int, default=0, help="seed for splits, shuffling and initialisation")

    from keras_ae.distribute import STRATEGIES

    where = parser.add_argument_group("devices and distribution")
    where.add_argument("--strategy", default="default", choices=STRATEGIES,
                       help="default: one device (the GPU if any); mirrored: all GPUs (or --cpu-devices) of this "
                            "machine; multi_worker: the machines listed in $TF_CONFIG")
    where.add_argument("--cpu-devices", type=_positive_int, default=None, metavar="N",
                       help="split the CPU into N logical devices (to try --strategy mirrored without GPUs)")
    where.add_argument("--worker-timeout", type=float, default=60.0, metavar="SECONDS",
                       help="multi_worker: how long to wait for the other workers before giving up")
    where.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 on a GPU (loss scaling included), mixed_bfloat16 on a CPU with bfloat16 "
                            "(AVX512-BF16, AMX); otherwise a warning, then float32")
    where.add_argument("--jit-compile", action="store_true", help="compile the training step with XLA")

    out = parser.add_argument_group("output")
    out.add_argument("--run-dir", default=None,
                     help="run folder (default: runs/<model>-<arch>-<dataset>)")
    out.add_argument("--overwrite", action="store_true", help="replace a run folder that already holds a model")
    out.add_argument("--no-export", action="store_true",
                     help="skip the export of SavedModels and TFLite files to RUN_DIR/export/ "
                          "(python -m keras_ae.export RUN does it later)")
    out.add_argument("--no-evaluate", action="store_true",
                     help="skip the evaluation report after training (python -m keras_ae.evaluate RUN does it later); "
                          "the reconstruction, code and sample figures are still written")
    out.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                     help="0 silent, 1 progress bar, 2 one line per epoch (default: bar on a terminal)")
    return parser


def model_kwargs(model_cls, args: argparse.Namespace, input_shape) -> dict:
    """The constructor arguments of ``model_cls`` taken from the flags.

    A model takes the options of its own constructor and of its base classes. Model-specific flags
    default to ``None``; one given to a model without that option is an error, not silently ignored.
    """
    from keras_ae.models import Autoencoder

    accepted = {name for klass in model_cls.__mro__ if "__init__" in vars(klass) and issubclass(klass, Autoencoder)
                for name in inspect.signature(klass.__init__).parameters}
    for name in MODEL_OPTIONS:
        if getattr(args, name) is not None and name not in accepted:
            raise ConfigError(f"--{name.replace('_', '-')} does not apply to --model {args.model}")
    kwargs = {name: value for name, value in vars(args).items() if name in accepted and value is not None}
    return {**kwargs, "input_shape": input_shape}


def _dataset_slug(dataset: str) -> str:
    return Path(dataset).stem.replace(os.sep, "_") or "data"


def run(args: argparse.Namespace) -> Path:
    """Train as the flags say; return the run folder.

    A run folder that holds a backup but no final model is resumed from its last good epoch.
    """
    import keras

    from keras_ae import data as data_lib
    from keras_ae import distribute
    from keras_ae.callbacks import Backup
    from keras_ae.io import atomic_path
    from keras_ae.models import model_class

    model_cls = model_class(args.model)
    if args.learning_rate <= 0:
        raise ConfigError(f"--learning-rate must be > 0, got {args.learning_rate}")
    if args.cpu_devices:
        distribute.split_cpu(args.cpu_devices)
    run_dir = Path(args.run_dir or Path("runs") / f"{args.model}-{args.arch}-{_dataset_slug(args.dataset)}")
    if args.strategy == "multi_worker":
        tf_config = distribute.read_tf_config(os.environ.get("TF_CONFIG"))
        if not distribute.is_chief(tf_config):  # every worker trains; each writes its own folder
            run_dir = run_dir / f"{tf_config['task']['type']}-{tf_config['task']['index']}"
    if (run_dir / "model.keras").exists() and not args.overwrite:
        raise ConfigError(f"{run_dir} already holds a trained model; pass --overwrite or another --run-dir")
    backup = Backup(run_dir / BACKUP)
    if args.overwrite:
        backup.remove()

    keras.utils.set_random_seed(args.seed)
    splits = data_lib.load(args.dataset, data_dir=args.data_dir, validation_fraction=args.validation_fraction,
                           seed=args.seed, image_size=args.image_size, limit=args.limit,
                           download=not args.no_download)
    kwargs = model_kwargs(model_cls, args, splits.image_shape)
    if model_cls.needs_labels:
        if splits.num_classes is None:
            raise ConfigError(f"--model {args.model} needs labels, and dataset {args.dataset!r} ({splits.source}) "
                              "has none; use a labelled dataset (e.g. class sub-folders)")
        kwargs["num_classes"] = splits.num_classes
    if args.mixed_precision:
        distribute.use_mixed_precision()
    strategy = distribute.make_strategy(args.strategy, args.worker_timeout)
    with strategy.scope():
        model = model_cls(**kwargs)
        model.check_batch_size(args.batch_size)
        model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), jit_compile=args.jit_compile)
        initial_epoch = backup.restore(model)
    if initial_epoch:
        log.info("resuming %s from the end of epoch %d of %d", run_dir, initial_epoch, args.epochs)
    _write_config(run_dir, args, model, splits, strategy)

    _fit(model, splits, args, run_dir, backup, initial_epoch)
    with atomic_path(run_dir / "model.keras") as tmp:
        model.save(tmp)
    backup.remove()  # the final model supersedes it
    _report(model, splits, args, run_dir)
    if not args.no_export:
        from keras_ae.export import export_run

        log.info("exported: %s", export_run(run_dir))
    log.info("run folder: %s", run_dir)
    return run_dir


def _write_config(run_dir: Path, args, model, splits, strategy) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_ae.io import write_json

    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type in ("GPU", "CPU")]
    log.info("data: %s (%s), train/val/test = %d/%d/%d, shape %s; devices: %s; %d replica(s); precision %s",
             splits.name, splits.source, len(splits.train), len(splits.validation), len(splits.test),
             splits.image_shape, ", ".join(devices), strategy.num_replicas_in_sync, model.dtype_policy.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", {
        "options": vars(args), "model_config": model.get_config(), "model_class": type(model).__name__,
        "data": {"name": splits.name, "source": splits.source, "image_shape": splits.image_shape,
                 "num_classes": splits.num_classes,
                 "sizes": {s: len(splits.split(s)) for s in ("train", "validation", "test")}},
        "versions": {"keras_ae": _version(), "tensorflow": tf.__version__, "keras": keras.__version__,
                     "numpy": np.__version__},
    })


def _fit(model, splits, args, run_dir: Path, backup, initial_epoch: int) -> None:
    """Fit from ``initial_epoch`` with validation each epoch, backing up every good epoch; stop with a
    clear error (the last good epoch kept in the backup) when the loss turns non-finite."""
    import keras
    import numpy as np

    if initial_epoch >= args.epochs:
        return
    validation = splits.pipeline("validation", args.batch_size) if len(splits.validation) else None
    callbacks = [keras.callbacks.TerminateOnNaN(), backup,
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=initial_epoch > 0),
                 keras.callbacks.TensorBoard(str(run_dir / "logs")), *model.training_callbacks()]
    if args.early_stopping:
        if validation is None:
            raise ConfigError("--early-stopping needs a validation split; set --validation-fraction > 0")
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.early_stopping,
                                                       restore_best_weights=True))
    history = model.fit(splits.pipeline("train", args.batch_size, seed=args.seed), validation_data=validation,
                        epochs=args.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                        verbose="auto" if args.verbose is None else args.verbose)
    losses = history.history.get("loss", [])
    if not np.all(np.isfinite(losses)):
        kept = (f"the last good model (epoch {backup.epoch}) is in {backup.checkpoint}"
                if backup.epoch else "no epoch finished cleanly, so no model was kept")
        raise KerasAEError(f"training stopped: the loss became non-finite in epoch {initial_epoch + len(losses)}; "
                           f"{kept}; try a lower --learning-rate")


def _report(model, splits, args, run_dir: Path) -> None:
    """Test metrics in results.json; then the full evaluation report and figures (or, with --no-evaluate,
    only the reconstruction, code and sample figures)."""
    from keras_ae import evaluate, figures
    from keras_ae.io import write_json
    from keras_ae.runs import Run, read_config

    test_x, test_y = splits.arrays("test")
    test_metrics = model.evaluate(splits.pipeline("test", args.batch_size), verbose=0, return_dict=True)
    test_metrics.update(evaluate.reconstruction_metrics(model, test_x, test_y))
    with (run_dir / "history.csv").open() as f:
        epochs = list(csv.DictReader(f))
    write_json(run_dir / "results.json", {
        "epochs_run": len(epochs),
        "final": {k: float(v) for k, v in epochs[-1].items() if k != "epoch"} if epochs else {},
        "test": {k: float(v) for k, v in test_metrics.items()},
    })
    log.info("test: %s", ", ".join(f"{k} {v:.4g}" for k, v in test_metrics.items()))
    run = Run(run_dir, read_config(run_dir), model, splits)
    if args.no_evaluate:
        figures.write_all(run, ("reconstructions", "codes", "samples", "training_curves"))
    else:
        evaluate.report_run(run)
        log.info("report: %s", run_dir / "report.md")


def _version() -> str:
    from keras_ae import __version__
    return __version__


def main(argv=None) -> int:
    """Entry point of ``train.py`` and ``keras-ae-train``; exit code 2 with one line for a user error."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser().parse_args(argv)
    return exit_code(lambda: run(args))
