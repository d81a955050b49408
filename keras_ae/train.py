"""Train one model of the zoo and write its run folder.

    python train.py --model ae --arch conv --dataset mnist --latent-dim 16 --epochs 10

The command line is built from the model registry: every model's options are flags (see
:mod:`keras_ae.options`). From Python, :func:`train` trains any model, your own networks included,
into a run folder that ``python -m keras_ae.evaluate`` and ``python -m keras_ae.export`` take::

    splits = keras_ae.data.load("digits")
    model = keras_ae.models.VAE(encoder=my_encoder, decoder=my_decoder)
    run_dir = keras_ae.train.train(model, splits, "runs/mine", epochs=10)

The run folder holds ``config.json`` (every option, the model's config, how to load the data again,
library versions), ``model.keras``, ``history.csv``, TensorBoard logs under ``logs/`` and
``results.json`` (final training, validation and test metrics); the command also writes the
evaluation report, the figures and the export.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import shutil
import sys
import warnings
from pathlib import Path

from keras_ae import options as opts
from keras_ae.errors import ConfigError, KerasAEError, exit_code

log = logging.getLogger("keras_ae")
LR_SCHEDULES = ("constant", "cosine")
MIN_EPOCHS, MIN_STEPS = 10, 1200  # the default training length: enough steps on a small dataset (digits: 100)
BUDGET_EPOCHS = 10_000  # the epochs of a --time-budget run given no --epochs: the budget ends it
PRIOR_IMAGES = 50_000  # training images whose codes a plain autoencoder's Gaussian prior is fitted on, at most
BACKUP = "backup"  # folder of the last good epoch, kept while training runs (see keras_ae.callbacks.Backup)


class _HelpFormatter(argparse.HelpFormatter):
    """Appends '(default: X)' where a flag has one real default; model flags state their own (per model)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        shown = action.default is not None and action.default is not argparse.SUPPRESS and action.default is not False
        if shown and "(default" not in help_text:
            help_text += " (default: %(default)s)"
        return help_text


class _ListPresets(argparse.Action):
    """--list-presets: print the presets and exit, as --help does."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from keras_ae import presets

        print(presets.listing())
        parser.exit()


def build_parser(prog: str = "train.py") -> argparse.ArgumentParser:
    """The ``train.py`` command line; every flag is documented in ``--help`` with its real default."""
    from keras_ae.data import CACHE_POLICIES
    from keras_ae.data.dataset import SAMPLE_IMAGES
    from keras_ae.distribute import STRATEGIES
    from keras_ae.models import MODELS, SHARED_OPTIONS

    parser = argparse.ArgumentParser(
        prog=prog, description="Train an autoencoder of the keras_ae zoo and write its run folder.",
        formatter_class=_HelpFormatter)
    parser.add_argument("--config", default=None, metavar="PRESET|FILE",
                        help="read the flags from a preset (see --list-presets), a TOML, JSON or YAML file of "
                             "flag: value, or a run's config.json to train that run again; flags given here "
                             "override it")
    parser.add_argument("--list-presets", action=_ListPresets,
                        help="list the presets: the README figure each reproduces, reached here in what time")
    parser.add_argument("--model", default="ae", choices=list(MODELS), help="which model of the zoo")
    opts.add_model_flags(parser, MODELS, SHARED_OPTIONS)

    data = parser.add_argument_group("data")
    data.add_argument("--dataset", default="digits",
                      help="digits (bundled), a TFDS image dataset name (mnist, fashion_mnist, kmnist, "
                           "cifar10, ...), or a path to an IDX folder, an .npz file or a folder of images")
    data.add_argument("--data-dir", default=None,
                      help="folder searched first for local copies of named datasets "
                           "(then $KERAS_AE_DATA, then TFDS)")
    data.add_argument("--no-download", action="store_true",
                      help="never ask TFDS to download (offline, it retries for minutes before failing)")
    data.add_argument("--image-size", type=opts.image_size, default=None,
                      help="HxW: resize a folder of images to this size")
    data.add_argument("--validation-fraction", type=opts.fraction, default=0.1,
                      help="fraction of the training images held out for validation (a source with a published "
                           "validation split, such as a .npz's x_valid, keeps that split instead)")
    data.add_argument("--limit", type=opts.positive_int, default=None,
                      help="train on at most this many images (quick runs)")
    data.add_argument("--cache", default="auto", choices=CACHE_POLICIES,
                      help="where decoded images of a folder or TFDS dataset are kept after the first pass: auto "
                           "(memory for a split of at most 1 GiB as uint8, else disk), memory, disk or none")
    data.add_argument("--cache-dir", default=None,
                      help="folder of the disk caches (default: $KERAS_AE_CACHE, else ~/.cache/keras_ae)")
    data.add_argument("--attribute", default=None, metavar="NAME",
                      help="a binary attribute of the data (CelebA: Smiling, Male, Eyeglasses, ...) for the latent "
                           "arithmetic figure: s = mean code with it - mean code without, decoded as z + k s")
    data.add_argument("--attributes", default=None, metavar="FILE",
                      help="binary attributes of a folder's images: CelebA's list_attr_celeba.txt or a CSV of "
                           "file,<attr>,... with 0/1 or -1/1 (default: list_attr_celeba.txt beside the folder)")
    data.add_argument("--partition", default=None, metavar="FILE",
                      help="the train/validation/test split of a folder's images: rows of file 0|1|2 (default: "
                           "list_eval_partition.txt beside the folder)")
    data.add_argument("--skip-corrupt", action="store_true",
                      help="read every image file once before training and leave out the unreadable ones "
                           "(counted in config.json) instead of stopping at the first")

    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=opts.positive_int, default=None,
                          help=f"training epochs (default: at least {MIN_EPOCHS} epochs and {MIN_STEPS} steps: "
                               "small datasets get more epochs)")
    training.add_argument("--batch-size", type=opts.positive_int, default=128, help="images per batch")
    training.add_argument("--steps-per-epoch", type=opts.positive_int, default=None, metavar="N",
                          help="end each epoch after N batches (the data repeats), for datasets whose epoch is "
                               "long; validation then uses at most N batches (default: one pass over the data)")
    training.add_argument("--learning-rate", type=opts.positive_float, default=None,
                          help="Adam's learning rate (default: the model's, 1e-3; 3e-3 for the PixelRNN)")
    training.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES,
                          help="constant: --learning-rate throughout; cosine: decayed from it to 0 along a half "
                               "cosine over the training's steps (BENCHMARKS.md measures both)")
    training.add_argument("--augment-shift", type=opts.non_negative_int, default=0, metavar="PIXELS",
                          help="train on images moved at random by up to PIXELS rows and columns each way (zero "
                               "border), drawn anew every epoch: a small dataset seen in more positions; validation "
                               "and test images are not moved (0: off)")
    training.add_argument("--time-budget", type=opts.positive_float, default=None, metavar="MINUTES",
                          help="train until this much wall time is spent, stopping at an epoch boundary (no epoch "
                               "is begun that would end past it); a killed run resumes with the time it had spent. "
                               "Without --epochs, the budget alone ends the training")
    training.add_argument("--early-stopping", type=opts.non_negative_int, default=0, metavar="PATIENCE",
                          help="stop when the validation loss has not improved for PATIENCE epochs and keep "
                               "the best weights (0: off)")
    training.add_argument("--seed", type=opts.random_seed, default=0,
                          help="seed for splits, shuffling and initialisation")

    where = parser.add_argument_group("devices and distribution")
    where.add_argument("--strategy", default="default", choices=STRATEGIES,
                       help="default: one device (the GPU if any); mirrored: all GPUs (or --cpu-devices) of this "
                            "machine; multi_worker: the machines listed in $TF_CONFIG")
    where.add_argument("--cpu-devices", type=opts.positive_int, default=None, metavar="N",
                       help="split the CPU into N logical devices (to try --strategy mirrored without GPUs)")
    where.add_argument("--worker-timeout", type=opts.positive_float, default=60.0, metavar="SECONDS",
                       help="multi_worker: how long to wait for the other workers before giving up")
    where.add_argument("--mixed-precision", action="store_true",
                       help="mixed_float16 on a GPU (loss scaling included), mixed_bfloat16 on a CPU with bfloat16 "
                            "(AVX512-BF16, AMX); otherwise a warning, then float32")
    where.add_argument("--jit-compile", action="store_true", help="compile the training step with XLA")

    out = parser.add_argument_group("output")
    out.add_argument("--run-dir", default=None, help="run folder (default: runs/<model>[-<arch>]-<dataset>, then "
                                                     "each option that differs from its default)")
    out.add_argument("--overwrite", action="store_true", help="replace a run folder that already holds a model")
    out.add_argument("--no-evaluate", action="store_true",
                     help="skip the evaluation report after training (python -m keras_ae.evaluate RUN does it later); "
                          "the reconstruction, code and sample figures are still written")
    out.add_argument("--likelihood-samples", "--iwae-samples", type=opts.positive_int, default=None, metavar="K",
                     help="samples per test image of a likelihood the evaluation estimates (the K of a bound, e.g. "
                          "the importance-weighted one; default 100); an exact likelihood takes none")
    out.add_argument("--test-images", type=opts.non_negative_int, default=None, metavar="N",
                     help="test images (a seeded sample) the evaluation's likelihood, outlier scores, codes and probe "
                          f"use (default {SAMPLE_IMAGES:,}; 0: every one); the reconstruction error covers them all")
    out.add_argument("--quick-eval", action="store_true",
                     help="evaluate in seconds on fewer images (500 test, 1,000 probe, K = 10; the report says so)")
    out.add_argument("--no-export", action="store_true",
                     help="skip the export (python -m keras_ae.export RUN does it later)")
    out.add_argument("--export-root", default="export",
                     help="TF Serving model root the export goes to: ROOT/NAME/{encoder,decoder[,prior]}/VERSION/, or "
                          "ROOT/NAME/density/VERSION/ for a density")
    out.add_argument("--export-name", default=None, help="model name under the export root (default: the run "
                                                         "folder's name)")
    out.add_argument("--verbose", type=int, default=None, choices=(0, 1, 2),
                     help="0 silent, 1 progress bar, 2 one line per epoch (default: bar on a terminal)")
    return parser


def model_kwargs(model_name: str, model_cls, args: argparse.Namespace, splits) -> dict:
    """The constructor arguments of ``model_cls`` from the flags and the data.

    A model flag given to a model that does not take it is an error, not silently ignored.
    """
    from keras_ae.models import MODELS

    accepted = opts.flag_options(model_cls)
    every = {name: option for cls in MODELS.values() for name, option in opts.flag_options(cls).items()}
    for name, option in every.items():
        if getattr(args, name, None) is not None and name not in accepted:
            takers = [other for other, cls in MODELS.items() if name in opts.flag_options(cls)]
            raise ConfigError(f"{option.flag_of(name)} does not apply to --model {model_name}; it is an option "
                              f"of {', '.join(takers)}")
    kwargs = {name: getattr(args, name) for name in accepted if getattr(args, name, None) is not None}
    defaults = opts.constructor_defaults(model_cls)
    for name in kwargs:
        if accepted[name].only_with:
            key, wanted = accepted[name].only_with
            if kwargs.get(key, defaults.get(key)) != wanted:
                other = every[key].flag_of(key)
                raise ConfigError(f"{accepted[name].flag_of(name)} applies only with {other} {wanted}, and --model "
                                  f"{model_name} has {other} {kwargs.get(key, defaults.get(key))}")
    kwargs["input_shape"] = splits.image_shape
    if "seed" in opts.declared_options(model_cls):
        kwargs["seed"] = args.seed
    if model_cls.needs_labels:
        if splits.num_classes is None:
            raise ConfigError(f"--model {model_name} needs labels, and dataset {splits.name!r} ({splits.source}) "
                              "has none; use a labelled dataset (e.g. class sub-folders)")
        kwargs["num_classes"] = splits.num_classes
    return kwargs


def _dataset_slug(dataset: str) -> str:
    return Path(dataset).stem.replace(os.sep, "_") or "data"


# besides the model's options: the flags a run folder's name shows
NAMED_FLAGS = ("epochs", "batch_size", "learning_rate", "lr_schedule", "augment_shift", "steps_per_epoch", "seed",
               "limit", "image_size", "validation_fraction", "time_budget")
MAX_RUN_NAME = 100  # characters; a longer name ends in a digest of what differs instead


def default_epochs(train_images: int, batch_size: int, steps_per_epoch: int | None = None) -> int:
    """At least MIN_EPOCHS epochs and MIN_STEPS training steps (1,437 digits at batch 128: 100 epochs)."""
    steps = steps_per_epoch or max(1, math.ceil(train_images / batch_size))
    return max(MIN_EPOCHS, math.ceil(MIN_STEPS / steps))


def default_run_dir(args: argparse.Namespace, model_cls) -> Path:
    """``runs/<model>-<arch>-<dataset>`` (the options declared ``in_run_name_base``; no arch for a model without
    one), then each option that differs from its default (``-latent-dim=3``, compared with its
    ``resolved_default`` if it declares one), so that runs which differ never collide; past MAX_RUN_NAME
    characters, a digest of those options."""
    import hashlib

    from keras_ae import runs

    defaults = {**vars(build_parser().parse_args([])), **opts.constructor_defaults(model_cls),
                "learning_rate": model_cls.default_learning_rate}
    declared = opts.flag_options(model_cls)
    values = {name: defaults.get(name) if getattr(args, name, None) is None else getattr(args, name)
              for name in declared}
    in_base = [name for name, option in declared.items() if option.in_run_name_base]
    base = "-".join(str(part) for part in (args.model, *(values[name] for name in in_base),
                                           _dataset_slug(args.dataset)) if part)
    differs = []
    for name in [name for name in declared if name not in in_base] + list(NAMED_FLAGS):
        value = getattr(args, name, None)
        option = declared.get(name)
        default = defaults.get(name)
        if default is None and option and option.resolved_default:
            default = option.resolved_default(values)
        if value is not None and runs.as_json(value) != runs.as_json(default):
            shown = "x".join(map(str, value)) if isinstance(value, (tuple, list)) else (
                f"{value:g}" if isinstance(value, float) else str(value))
            differs.append(f"{name.replace('_', '-')}={shown}")
    name = "-".join([base, *differs])
    if len(name) > MAX_RUN_NAME:
        name = f"{base}-{hashlib.sha256(' '.join(differs).encode()).hexdigest()[:8]}"
    return Path("runs") / name


def _check_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Refuse a run folder that is a file, or holds a model without ``overwrite``; first finish an
    ``--overwrite`` that a kill interrupted (the caller holds the folder's lock)."""
    from keras_ae import runs

    runs.recover(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder")
    if (run_dir / "model.keras").exists() and not overwrite:
        raise ConfigError(f"{run_dir} already holds a trained model; pass --overwrite or another --run-dir")


def run(args: argparse.Namespace) -> Path:
    """Train, evaluate and export as the flags say; return the run folder.

    A run folder that holds a backup but no final model is resumed from its last good epoch.
    """
    from keras_ae import console, distribute, runs
    from keras_ae.models import model_class

    model_cls = model_class(args.model)
    if args.cpu_devices:
        distribute.split_cpu(args.cpu_devices)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args, model_cls)
    if args.strategy == "multi_worker":
        tf_config = distribute.read_tf_config(os.environ.get("TF_CONFIG"))
        if not distribute.is_chief(tf_config):  # every worker trains; each writes its own folder
            run_dir = run_dir / f"{tf_config['task']['type']}-{tf_config['task']['index']}"
    with runs.locked(run_dir):
        _check_run_dir(run_dir, args.overwrite)
        _train_report_export(args, model_cls, run_dir)
        console.save_native_log(run_dir)
    log.info("run folder: %s", run_dir)
    return run_dir


def _train_report_export(args: argparse.Namespace, model_cls, run_dir: Path) -> None:
    import keras

    from keras_ae import data as data_lib
    from keras_ae import distribute

    keras.utils.set_random_seed(args.seed)
    splits = data_lib.load(args.dataset, data_dir=args.data_dir, validation_fraction=args.validation_fraction,
                           seed=args.seed, image_size=args.image_size, limit=args.limit,
                           download=not args.no_download, skip_corrupt=args.skip_corrupt, cache=args.cache,
                           cache_dir=args.cache_dir, attributes=args.attributes, partition=args.partition)
    if args.attribute is not None:
        splits.check_attribute(args.attribute)
    kwargs = model_kwargs(args.model, model_cls, args, splits)
    if args.mixed_precision:
        distribute.use_mixed_precision()
    strategy = distribute.make_strategy(args.strategy, args.worker_timeout)
    with strategy.scope():
        model = model_cls(**kwargs)
    epochs = args.epochs or (BUDGET_EPOCHS if args.time_budget else default_epochs(len(splits.train), args.batch_size,
                                                                                    args.steps_per_epoch))
    train(model, splits, run_dir, epochs=epochs, time_budget=args.time_budget,
          batch_size=args.batch_size, learning_rate=args.learning_rate, lr_schedule=args.lr_schedule,
          augment_shift=args.augment_shift, steps_per_epoch=args.steps_per_epoch,
          early_stopping=args.early_stopping, seed=args.seed, jit_compile=args.jit_compile,
          verbose=(1 if sys.stdout.isatty() else 2) if args.verbose is None else args.verbose, overwrite=args.overwrite,
          options={**vars(args), "run_dir": str(run_dir)})
    _report(model, splits, run_dir, evaluate=not args.no_evaluate, likelihood_samples=args.likelihood_samples,
            quick=args.quick_eval, test_images=args.test_images)
    if not args.no_export:
        from keras_ae.export import export_run

        log.info("exported: %s", export_run(run_dir, args.export_root, name=args.export_name))


def train(model, splits, run_dir, *, epochs: int = 10, batch_size: int = 128, learning_rate: float | None = None,
          lr_schedule: str = "constant", augment_shift: int = 0, steps_per_epoch: int | None = None,
          early_stopping: int = 0, seed: int = 0, jit_compile: bool = False, verbose="auto", overwrite: bool = False,
          options: dict | None = None, time_budget: float | None = None) -> Path:
    """Train ``model`` (any zoo model, built-in or with networks of your own) on ``splits`` into ``run_dir``.

    Writes config.json first, then trains with validation every epoch and a backup of every good
    epoch (the same call resumes a killed run from its last good epoch, after checking that the data
    is the data it was trained on), fits the model's prior to the training codes (at most
    ``PRIOR_IMAGES``), then writes model.keras (atomically) and results.json. ``lr_schedule`` is one
    of LR_SCHEDULES: ``"cosine"`` decays ``learning_rate`` (None: the model's ``default_learning_rate``) to 0
    over the ``epochs`` of the run.
    ``augment_shift`` moves each training image by up to that many pixels each way, anew every epoch.
    A NaN or infinite loss stops training with a KerasAEError naming the epoch and the last good checkpoint;
    an unreadable image file, with a DataError naming it. ``steps_per_epoch`` ends each epoch after that many batches
    (the training data repeats). ``time_budget`` (minutes) ends the training at the last epoch boundary before
    that much wall time, counted across resumes. ``options`` are recorded in config.json (the flags, for train.py).

    One process at a time trains a run folder (an OS lock; another gets a KerasAEError at once). A
    resume refuses a model or data other than the backup's. With ``overwrite``, the new run is trained
    beside the old one and replaces it only once complete: a failure leaves the old run as it was.
    """
    from keras_ae import runs

    if lr_schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if time_budget is not None and not (isinstance(time_budget, (int, float)) and math.isfinite(time_budget)
                                        and time_budget > 0):
        raise ConfigError(f"time_budget must be a finite number of minutes > 0, got {time_budget!r:.40}")
    if time_budget is not None and lr_schedule == "cosine" and epochs >= BUDGET_EPOCHS:
        raise ConfigError("--lr-schedule cosine decays over --epochs: give --epochs with --time-budget")
    learning_rate = model.default_learning_rate if learning_rate is None else learning_rate
    settings = {"epochs": epochs, "time_budget": time_budget, "batch_size": batch_size, "learning_rate": learning_rate,
                "lr_schedule": lr_schedule, "augment_shift": augment_shift, "steps_per_epoch": steps_per_epoch, "early_stopping": early_stopping,
                "seed": seed, "jit_compile": jit_compile}
    splits.check_shift(augment_shift)
    run_dir = Path(run_dir)
    with runs.locked(run_dir):
        _check_run_dir(run_dir, overwrite)
        if not (overwrite and (run_dir / "model.keras").exists()):
            return _train_into(run_dir, run_dir, model, splits, settings, options, overwrite, verbose)
        new = runs.staging(run_dir)  # the old run stays whole until the new one is complete
        shutil.rmtree(new, ignore_errors=True)
        try:
            _train_into(new, run_dir, model, splits, settings, options, True, verbose)
        except KerasAEError as error:
            raise type(error)(f"{error}; {run_dir} is unchanged (it still holds the previous model)") from None
        runs.replace(run_dir, new)
        return run_dir


def _train_into(folder: Path, run_dir: Path, model, splits, settings: dict, options, fresh: bool, verbose) -> Path:
    """What :func:`train` does, with every file written to ``folder`` (``run_dir`` or its --overwrite staging)."""
    import keras

    from keras_ae import distribute, runs, tensorboard
    from keras_ae.callbacks import Backup, budget_spent
    from keras_ae.io import atomic_path

    epochs, batch_size, seed = (settings[key] for key in ("epochs", "batch_size", "seed"))
    backup = Backup(folder / BACKUP, folder / "history.csv")
    if fresh:
        backup.remove()
    elif backup.checkpoint is not None:
        config = runs.read_config(folder)
        runs.check_same_model(folder / "config.json", config, model, "the backup to resume from is of another "
                              "model: give the flags it was trained with, or --overwrite to start again")
        runs.check_same_data(folder / "config.json", config, splits)
    model.check_batch_size(batch_size)
    shard = distribute.worker_shard(model.distribute_strategy)
    with model.distribute_strategy.scope():
        model.compile(optimizer=keras.optimizers.Adam(_learning_rate(settings, splits, shard)),
                      jit_compile=settings["jit_compile"])
        initial_epoch = backup.restore(model)
    if initial_epoch:
        log.info("resuming %s from the end of epoch %d of %d", run_dir, initial_epoch, epochs)
    recorded = {**settings, **(options or {}), "learning_rate": settings["learning_rate"]}  # (the rate as resolved)
    runs.write_config(folder, model, splits, options=recorded)
    _log_start(model, splits)

    if shard is not None:
        log.info("multi-worker: worker %d of %d reads shard %d of %d (%d of the %d training images)", shard[1],
                 shard[0], shard[1], shard[0], len(range(shard[1], len(splits.train), shard[0])), len(splits.train))
    spent = settings["time_budget"] is not None and budget_spent(backup, settings["time_budget"])
    with splits.reading():
        if initial_epoch < epochs and not spent:  # (a run killed after its last backup or its budget has only
            _fit(model, splits, folder, backup, initial_epoch, settings, shard, verbose)  # the prior left to fit)
        prior_batches = -(-PRIOR_IMAGES // batch_size)
        model.fit_prior(splits.pipeline("train", batch_size, seed=seed, shard=shard).take(prior_batches))
    with atomic_path(folder / "model.keras") as tmp:
        model.save(tmp)
    backup.remove()  # the final model supersedes it
    with splits.reading():
        test_metrics = _write_results(model, splits, folder, batch_size, backup.seconds)
        test_x, test_y = splits.sample("test", tensorboard.PROJECTED)
    tensorboard.write_summary(folder / "logs", model, recorded, test_metrics, test_x, test_y,
                              epoch=max(0, epochs - 1))
    return run_dir


def _learning_rate(settings: dict, splits, shard):
    """Adam's learning rate: the number, or for ``lr_schedule="cosine"`` a cosine decay from it to 0 over
    every step of the run (the step count is in the optimizer's state, so a resumed run continues the curve)."""
    import keras

    if settings["lr_schedule"] == "constant":
        return settings["learning_rate"]
    images = len(splits.train) if shard is None else len(range(shard[1], len(splits.train), shard[0]))
    steps = settings["steps_per_epoch"] or max(1, math.ceil(images / settings["batch_size"]))
    return keras.optimizers.schedules.CosineDecay(settings["learning_rate"], decay_steps=settings["epochs"] * steps)


def _log_start(model, splits) -> None:
    import tensorflow as tf

    devices = [d.name for d in tf.config.list_logical_devices() if d.device_type in ("GPU", "CPU")]
    log.info("data: %s (%s), train/val/test = %d/%d/%d, shape %s; devices: %s; %d replica(s); precision %s",
             splits.name, splits.source, len(splits.train), len(splits.validation), len(splits.test),
             splits.image_shape, ", ".join(devices), model.distribute_strategy.num_replicas_in_sync,
             model.dtype_policy.name)


def _fit(model, splits, run_dir: Path, backup, initial_epoch: int, settings: dict, shard, verbose) -> None:
    """Fit from ``initial_epoch`` with validation each epoch, backing up every good epoch; stop with a
    clear error (the last good epoch kept in the backup) when the loss turns non-finite."""
    import keras
    import numpy as np

    from keras_ae import tensorboard
    from keras_ae.callbacks import TimeBudget

    epochs, batch_size, steps_per_epoch, early_stopping = (
        settings[key] for key in ("epochs", "batch_size", "steps_per_epoch", "early_stopping"))
    train_data = splits.pipeline("train", batch_size, seed=settings["seed"], repeat=steps_per_epoch is not None,
                                 shard=shard, shift=settings["augment_shift"])
    validation = splits.pipeline("validation", batch_size, shard=shard) if len(splits.validation) else None
    validation_steps = None
    if validation is not None and steps_per_epoch is not None:
        validation_steps = min(steps_per_epoch, math.ceil(len(splits.validation) / batch_size))
    shown = splits.sample("validation" if len(splits.validation) else "test", tensorboard.SHOWN)
    callbacks = [keras.callbacks.TerminateOnNaN(), backup, tensorboard.EpochImages(run_dir / "logs", *shown),
                 keras.callbacks.TensorBoard(str(run_dir / "logs")), *model.training_callbacks()]
    if settings["time_budget"] is not None:
        budget = TimeBudget(settings["time_budget"], backup)
        callbacks.append(budget)
    if early_stopping:
        if validation is None:
            raise ConfigError("--early-stopping needs a validation split; set --validation-fraction > 0")
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=early_stopping,
                                                       restore_best_weights=True))
    with warnings.catch_warnings():  # our pipelines shuffle themselves; Keras warns that it does not
        warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed")
        history = model.fit(train_data, validation_data=validation, epochs=epochs, initial_epoch=initial_epoch,
                            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps, callbacks=callbacks,
                            verbose=verbose)
    losses = history.history.get("loss", [])
    if settings["time_budget"] is not None and budget.stopped:
        log.info("the time budget of %g minutes ends the training after epoch %d (%.1f minutes)",
                 settings["time_budget"], backup.epoch, backup.seconds / 60)
    if not np.all(np.isfinite(losses)):
        kept = (f"the last good model (epoch {backup.epoch}) is in {backup.checkpoint}"
                if backup.epoch else "no epoch of this training finished cleanly")
        raise KerasAEError(f"training stopped: the loss became non-finite in epoch {initial_epoch + len(losses)}; "
                           f"{kept}; try a lower --learning-rate")


def _write_results(model, splits, run_dir: Path, batch_size: int, training_seconds: float) -> dict:
    """results.json: the epochs run and their wall time, the last epoch's training and validation terms, and the
    test split's metrics (returned)."""
    from keras_ae import evaluate
    from keras_ae.io import write_json

    test_metrics = model.evaluate(splits.pipeline("test", batch_size), verbose=0, return_dict=True)
    if model.code is not None:
        reconstruction = evaluate.reconstruction_metrics(model, splits.pipeline("test", batch_size))
        test_metrics.update({k: v for k, v in reconstruction.items() if k != "images"})
    history = run_dir / "history.csv"
    epochs = list(csv.DictReader(history.open())) if history.is_file() else []
    write_json(run_dir / "results.json", {
        "epochs_run": len(epochs), "training_seconds": round(training_seconds, 3),
        "final": {k: float(v) for k, v in epochs[-1].items() if k != "epoch"} if epochs else {},
        "test": {k: float(v) for k, v in test_metrics.items()},
    })
    log.info("test: %s", ", ".join(f"{k} {v:.4g}" for k, v in test_metrics.items()))
    return test_metrics


def _report(model, splits, run_dir: Path, evaluate: bool, likelihood_samples: int | None, quick: bool,
            test_images: int | None) -> None:
    """The full evaluation report and figures, or (without ``evaluate``) the reconstruction, code and
    sample figures only."""
    from keras_ae import evaluate as evaluation
    from keras_ae import figures
    from keras_ae.runs import Run, read_config

    run = Run(run_dir, read_config(run_dir), model, splits)
    if evaluate:
        for finding in evaluation.report_run(run, likelihood_samples=likelihood_samples, quick=quick,
                                             test_images=test_images)["findings"]:
            log.info("%s", finding)
        log.info("report: %s", run_dir / "report.md")
    else:
        figures.write_all(run, ("reconstructions", "codes", "samples", "training_curves"))


RUN_ONLY = ("run_dir", "overwrite", "config", "command")  # entries of a run's options that a re-run does not take


def parse_args(argv=None, prog: str = "train.py") -> argparse.Namespace:
    """The flags, over the values of ``--config FILE`` when given; ``command`` records the command line."""
    import shlex

    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    parser = build_parser(prog)
    known, _ = parser.parse_known_args(argv)
    if known.config:
        try:
            parser.set_defaults(**config_defaults(parser, known.config))
        except KerasAEError as error:
            parser.error(str(error))
    args = parser.parse_args(argv)
    from keras_ae.evaluate import sample_settings

    try:
        sample_settings(args.likelihood_samples, args.test_images, args.quick_eval)
    except KerasAEError as error:
        parser.error(str(error))
    args.command = " ".join([prog, shlex.join(argv)]).strip()  # prog may be two words: keras-ae train
    return args


def config_defaults(parser: argparse.ArgumentParser, path) -> dict:
    """Flag values from a preset (a name of :mod:`keras_ae.presets`), a config file (``.toml``, ``.json``,
    ``.yaml``/``.yml``) or a run's config.json, as argparse defaults: text that each flag's own parser then checks."""
    from keras_ae import presets
    from keras_ae.io import read_json

    path = Path(path)
    if not path.suffix and path.name == str(path) and not path.exists():  # a bare name: a preset
        path = presets.path_of(path.name)
    if path.suffix == ".toml":
        import tomllib

        try:
            values = tomllib.loads(path.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise ConfigError(f"{path}: unreadable ({error})") from None
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML needs PyYAML (pip install pyyaml); or write it as TOML or JSON") from None
        try:
            values = yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise ConfigError(f"{path}: unreadable ({str(error).splitlines()[0]})") from None
    else:
        values = read_json(path, ConfigError)
    if isinstance(values, dict) and isinstance(values.get("options"), dict) and "model_class" in values:
        values = {k: v for k, v in values["options"].items() if k not in RUN_ONLY}  # a run's config.json
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a table of flag: value, got {type(values).__name__}")
    if path.parent == presets.FOLDER:
        values = {k: v for k, v in values.items() if k != "preset"}  # what the preset reproduces, not a flag
    actions = {action.dest: action for action in parser._actions}
    values = {str(key).replace("-", "_"): value for key, value in values.items()}
    unknown = sorted(set(values) - set(actions) - {"config"})
    if unknown:
        raise ConfigError(f"{path}: unknown flags {', '.join(unknown)} (see train.py --help)")
    defaults = {}
    for dest, value in values.items():
        action = actions[dest]
        if value is None or dest == "config":
            continue
        if action.nargs == 0:  # a switch
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: {dest} is a switch: true or false, got {value!r:.40}")
            defaults[dest] = value if action.default is False else (True if value else None)
            continue
        if isinstance(value, (list, tuple)):
            value = ("x" if dest == "image_size" else ",").join(map(str, value))
        value = str(value)
        if action.choices is not None and action.type is None and value not in action.choices:
            raise ConfigError(f"{path}: {dest} must be one of {', '.join(map(str, action.choices))}, got {value!r:.40}")
        defaults[dest] = value
    return defaults


def main(argv=None, prog: str = "train.py") -> int:
    """Entry point of ``train.py`` and ``keras-ae train``; exit code 2 with one line for a user error."""
    from keras_ae import console

    console.command_started()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv, prog)
    interrupted = ("interrupted; the run folder is unchanged" if args.overwrite else
                   "interrupted; the same command resumes from the last finished epoch")
    return exit_code(lambda: run(args), interrupted)
