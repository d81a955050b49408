"""The base classes of the zoo: the shared training step, and the autoencoder (encoder, decoder, prior).

Every model of keras_ae is a :class:`ZooModel`: named loss terms, one ``train_step``/``test_step``,
``outlier_score``, ``likelihood_report`` and ``findings``. What it is it declares
(:mod:`keras_ae.contract`): its ``code`` (None for a model without one), its ``density`` (an
autoregressive density, :mod:`keras_ae.models.density`) and its ``sampling_passes``, so training,
evaluation, figures and export never ask which model they hold. The autoencoders (a ``code``,
subclasses of :class:`Autoencoder`) also keep this contract:

- ``encode(x)``, ``decode(z)``, ``reconstruct(x)``, ``codes(x)`` (batched, NumPy) and ``sample(n)``;
- ``prior``: how new codes are drawn (:mod:`keras_ae.models.priors`), fitted by ``fit_prior`` when
  training ends and saved with the model;
- ``compute_losses(x, y)``: a dict of named, batch-averaged terms whose ``"loss"`` entry is
  minimised, named in ``loss_terms``; the shared ``train_step``/``test_step`` turn it into gradients
  and per-epoch metrics, correctly under a ``tf.distribute`` strategy;
- ``outlier_score(x)`` per image and ``likelihood_report(x)`` (None without a density);
- ``options``: its options, each declared once with its default (:mod:`keras_ae.options`): the
  constructor takes them by name and sets each as an attribute before anything is built, then calls
  ``validate()`` and ``build_model()``; ``get_config`` and the docstring's "Options:" block come from them.

Reduction rule (see :mod:`keras_ae.losses`): terms are summed over pixels / latent units per
example and averaged over the batch.

Your own networks: pass ``encoder=`` and/or ``decoder=`` Keras models. The encoder maps images
(N, H, W, C) in [0, 1] -- or ``[images, one_hot_labels]`` for a conditional model -- to a dict of the
model's ``heads`` (``{"z": ...}``; a VAE's ``{"z_mean": ..., "z_log_var": ...}``), each (N, latent_dim).
The decoder maps codes (N, latent_dim) -- or ``[z, one_hot_labels]`` -- to logits shaped like the
images (the model applies the sigmoid). The model is then saved, loaded, evaluated and exported like
a built-in one, and its config holds the networks' own configs.
"""

from __future__ import annotations

import inspect
import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import distribute, losses, serving
from keras_ae import options as opts
from keras_ae.contract import Code, Likelihood
from keras_ae.errors import ConfigError, one_line
from keras_ae.models.priors import FittedGaussian
from keras_ae.networks import (
    ARCHITECTURES,
    DEFAULT_WIDTHS,
    DOWNSAMPLING,
    UPSAMPLING,
    NetworkSpec,
    build_decoder,
    build_encoder,
)
from keras_ae.options import Option, finite_float, int_list, non_negative_int, positive_int

RECONSTRUCTION_LOSSES = ("mse", "bce", "gaussian")
NETWORK_OPTIONS = ("arch", "widths", "dense_units", "down", "up", "activation", "code_activation")  # of built ones
# Keras's own constructor arguments (name, dtype, trainable, ...), which every model passes on to keras.Model
KERAS_ARGUMENTS = tuple(name for name, parameter in inspect.signature(keras.layers.Layer.__init__).parameters.items()
                        if parameter.kind is parameter.KEYWORD_ONLY)
DEAD_OUTPUT = 0.01  # reconstructions whose variance over the images is below this share of the inputs' ignore them


def non_negative(option: str, value) -> float:
    """``value`` as a float, or a ConfigError naming ``option`` when it is negative, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{option} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and number >= 0):
        raise ConfigError(f"{option} must be a finite number >= 0, got {value!r}")
    return number


def in_batches(fn, x, labels=None, batch_size: int = 256) -> np.ndarray:
    """``fn(images, labels)`` over ``x`` in batches of ``batch_size``, concatenated as NumPy."""
    return np.concatenate([np.asarray(fn(x[start:start + batch_size],
                                         None if labels is None else labels[start:start + batch_size]))
                           for start in range(0, len(x), batch_size)])


def as_pixels(x):
    """Images as float pixels in [0, 1]: uint8 images (0..255, as files hold them) are scaled as the data
    layer scales them; other integer types are refused (which range would they have?)."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if dtype == "uint8":
        return ops.cast(x, "float32") / 255.0
    if "int" in dtype or dtype == "bool":
        raise ConfigError(f"images must be float pixels in [0, 1] or uint8 in [0, 255], got dtype {dtype}")
    return x


def binarize(x, seed):
    """Dynamic binarization: each pixel becomes 1 with probability equal to its intensity (idempotent on {0, 1})."""
    return ops.cast(keras.random.uniform(ops.shape(x), seed=seed) < x, x.dtype)


def binarized_once(x, seed: int = 0) -> np.ndarray:
    """One fixed binarization of images ``x`` (NumPy, seeded): the test split a binarized model is scored on."""
    return (np.random.default_rng(seed).random(np.shape(x)) < x).astype("float32")


def _share_of_global_batch(loss, batch_size):
    """This replica's batch-mean ``loss`` weighted by its share of the global batch.

    Keras (TensorFlow backend) sums gradients over replicas; weighting each replica's mean by
    local / global batch size makes the sum the gradient of the global-batch mean, as on one device,
    also when the last batch splits unevenly across replicas.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return loss
    local = ops.cast(batch_size, loss.dtype)
    return loss * local / context.all_reduce(tf.distribute.ReduceOp.SUM, local)


def _network(network, role: str):
    """A user's ``encoder=`` / ``decoder=``: a Keras model, or its serialized config (from a .keras file)."""
    if network is None or isinstance(network, keras.layers.Layer):
        return network
    if isinstance(network, dict):
        return keras.saving.deserialize_keras_object(network)
    raise ConfigError(f"{role} must be a Keras model, got {type(network).__name__}")


def _input_size(network, position: int = 0):
    """The feature shape of a functional network's input, or None when it cannot be read without calling it."""
    inputs = getattr(network, "inputs", None)
    return None if not inputs else tuple(int(d) for d in inputs[position].shape[1:])


def _call(network, inputs, what: str):
    """``network(inputs)``, or a ConfigError saying that the network does not take ``what``."""
    conditional = " with one-hot labels" if isinstance(inputs, list) else ""
    try:
        return network(inputs)
    except Exception as error:  # Keras raises ValueError, TypeError, ... for inputs of the wrong shape
        raise ConfigError(f"{network.name} does not take {what}{conditional}: {one_line(error)[:200]}") from None


class ZooModel(keras.Model):
    """What every member of the zoo shares: its options, named loss terms, the training and test steps, the metrics.

    A subclass sets ``loss_terms`` and ``options``, declares ``code`` or ``density``, checks its options in
    ``validate()`` and builds its networks in ``build_model()``, and defines ``compute_losses``,
    ``outlier_score``, ``term_units`` and (with a density) ``likelihood_report``. :class:`Autoencoder` is
    the family with an encoder, a decoder and codes; :class:`keras_ae.models.pixelcnn.PixelCNN` the
    family with an exact density and no code.

    Args:
        input_shape: (H, W, C) of the images.
        num_classes: make the model conditional on a label in ``range(num_classes)`` (refused by a model
            that cannot be).
        encoder, decoder: networks of your own, for a model that takes them (the autoencoders).
        **options: the model's options by name (listed under "Options:"), and Keras's own arguments
            (``name``, ``dtype``, ``trainable``, ...).
    """

    loss_terms = ("loss",)
    test_options: dict = {}  # a tiny configuration that the registry-driven tests train in seconds
    needs_labels = False  # conditional models must be trained on labelled data
    code = None  # a Code (keras_ae.contract): encode/decode/codes/prior/reconstruct exist (the autoencoder contract)
    density = None  # a Density: the model is an autoregressive density (keras_ae.models.density)
    sampling_passes = 1  # sequential network passes that one new image takes
    default_learning_rate = 1e-3  # Adam's, when train.py's --learning-rate (or train()'s) is not given
    options: dict = {}
    num_classes = None

    def __init_subclass__(cls, **kwargs):
        """Add the "Options:" block of the class's options to its docstring (before its example), so that
        ``help()`` documents every option, as declared."""
        super().__init_subclass__(**kwargs)
        if cls.__doc__:
            head, example, tail = cls.__doc__.rstrip().partition("\n\n    Example:")
            cls.__doc__ = f"{head}\n\n{opts.options_doc(cls)}{example}{tail}\n"

    def __init__(self, input_shape=None, *, num_classes=None, encoder=None, decoder=None, **kwargs):
        options = opts.declared_options(type(self))
        unknown = [name for name in kwargs if name not in options and name not in KERAS_ARGUMENTS]
        if unknown:
            raise ConfigError(f"{type(self).__name__} takes no option {', '.join(map(repr, unknown))}; its options "
                              f"are: {', '.join(options)}")
        super().__init__(**{name: value for name, value in kwargs.items() if name in KERAS_ARGUMENTS})
        for name, value in opts.option_values(type(self), kwargs).items():
            setattr(self, name, value)
        try:
            self.image_shape = None if input_shape is None else tuple(int(side) for side in input_shape)
        except (TypeError, ValueError):
            raise ConfigError(f"input_shape must be (H, W, C), got {input_shape!r}") from None
        self.num_classes = None if num_classes is None else int(num_classes)
        self.custom = {"encoder": encoder is not None, "decoder": decoder is not None}  # the user's, not built
        for role, network in (("encoder", encoder), ("decoder", decoder)):
            if network is not None:
                setattr(self, role, _network(network, role))
        self.validate()
        self.build_model()
        self.trackers = {name: self.tracker(name) for name in self.loss_terms}
        self.built = True  # the networks are built at construction; lets .keras files restore optimizer state

    def validate(self) -> None:
        """Refuse, with a ConfigError that says why, option values this model cannot take; every option is set
        (a subclass adds its own checks and calls this)."""
        if self.needs_labels and self.num_classes is None:
            raise ConfigError(f"{type(self).__name__} needs labels: train it on a labelled dataset (num_classes)")
        if self.num_classes is not None and self.num_classes < 2:
            raise ConfigError(f"num_classes must be >= 2 for a conditional model, got {self.num_classes}")

    def conditioned(self, tensor, labels):
        """The network input for ``tensor``: itself, or ``[tensor, one_hot(labels)]`` for a conditional model
        (the one place where labels become the networks' one-hot input)."""
        if self.num_classes is None:
            return tensor
        if labels is None:
            raise ConfigError(f"{self.name} is conditional on labels (num_classes={self.num_classes}); "
                              "give labels with the images or codes")
        return [ops.convert_to_tensor(tensor), ops.one_hot(ops.cast(labels, "int32"), self.num_classes)]

    def build_model(self) -> None:
        """Build the networks and the weights, once every option is set and validated (nothing here)."""

    def get_config(self):
        """What rebuilds this model (``from_config`` is ``cls(**config)``): its name, input shape and classes,
        and the value of every option."""
        return {"name": self.name, "input_shape": self.image_shape, "num_classes": self.num_classes,
                **{name: getattr(self, name) for name in opts.declared_options(type(self))}}

    def tracker(self, term: str) -> keras.metrics.Metric:
        """The metric that gathers a reported term over an epoch: the mean over its images by default."""
        return keras.metrics.Mean(name=term)

    def checked_labels(self, labels, count: int):
        """``labels`` as int32 of length ``count`` (None for an unconditional model), or an InputError."""
        return serving.check_labels(labels, count, self.num_classes, self.name)

    def check_batch_size(self, batch_size: int) -> None:
        """Refuse, before training starts, a batch size this model cannot train with (no limit here)."""

    def training_callbacks(self) -> list:
        """Keras callbacks this model needs during ``fit`` (e.g. a KL warm-up schedule)."""
        return []

    def likelihood_report(self, x, labels=None, num_samples: int = 100, seed: int = 0) -> Likelihood | None:
        """The model's log-likelihood figures on images ``x`` (:class:`keras_ae.contract.Likelihood`), or None:
        it has no density. ``num_samples`` is the K of an estimator (the VAE's importance-weighted bound)."""
        return None

    def outlier_scores(self, x, labels=None, batch_size: int = 256) -> np.ndarray:
        """``self.outlier_score`` of images ``x`` (higher: less like the training data), in batches, as NumPy."""
        return in_batches(self.outlier_score, x, labels, batch_size)

    def model_metrics(self, x, labels=None) -> dict:
        """Figures of this model's own on test images ``x`` (a VQ-VAE's codebook usage), for the report's
        ``metrics.model``; none by default."""
        return {}

    def findings(self, metrics: dict) -> list[str]:
        """What this model's own metrics say, in words, for the report (its ``metrics`` as evaluation wrote them)."""
        return []

    def fit_prior(self, x, y=None, batch_size: int = 256) -> None:
        """Fit what generation draws from to the training data once training has ended (nothing here)."""

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Keras's compile, without ``loss``/``metrics``: a zoo model's objective is its ``compute_losses``
        and what it reports its ``loss_terms``; a loss or metrics given here would be ignored, so they
        are refused."""
        given = [name for name in ("loss", "metrics", "loss_weights", "weighted_metrics")
                 if {"loss": loss, "metrics": metrics}.get(name, kwargs.get(name)) is not None]
        if given:
            raise ConfigError(f"{type(self).__name__}.compile takes no {', '.join(given)}: the model trains on its "
                              f"own objective and reports {', '.join(self.loss_terms)}; choose the objective with "
                              "its options (e.g. reconstruction='bce')")
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        """Compile a loaded model as it was saved (Keras's own, which skips a model whose compile is its own)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = as_pixels(x)
        with tf.GradientTape() as tape:
            terms = self.compute_losses(x, y, training=True)
            loss = self.optimizer.scale_loss(_share_of_global_batch(terms["loss"], ops.shape(x)[0]))
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return self._track(terms, x)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Build only the optimizer, in the strategy's scope.

        Keras's own version (TensorFlow trainer) draws one batch from the training iterator when a
        distribution strategy is set, to trace the model: that shifts the seeded shuffle by one
        epoch (so a mirrored run would see other batches than a single-device one) and fails under
        MultiWorkerMirroredStrategy. Our networks and metrics are built at construction, so only the
        optimizer's variables remain to be created.
        """
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def test_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        x = as_pixels(x)
        return self._track(self.compute_losses(x, y, training=False), x)

    def _track(self, terms, x):
        """Update the per-epoch means (summed across replicas by Keras) and return them for the progress bar."""
        batch = ops.cast(ops.shape(x)[0], "float32")
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name], sample_weight=batch)
        results = {name: tracker.result() for name, tracker in self.trackers.items()}
        workers = distribute.worker_shard(tf.distribute.get_strategy())
        if workers is not None and workers[0] > 1:
            # Keras 3.15 reduces step outputs of multi-worker training along axis 0, which scalars lack
            # (a one-worker cluster is not reduced: its outputs stay scalars, as TensorBoard needs).
            results = {name: ops.reshape(value, (1,)) for name, value in results.items()}
        return results

    @property
    def metrics(self):
        return list(self.trackers.values())

@keras.saving.register_keras_serializable(package="keras_ae")
class Autoencoder(ZooModel):
    """Undercomplete autoencoder: ``x -> z = e(x) -> x_hat = sigmoid(d(z))``.

    The reconstruction term is ``"mse"`` (squared error summed over pixels), ``"bce"`` (Bernoulli negative
    log-likelihood in nats, summed over pixels) or ``"gaussian"`` (Gaussian negative log-likelihood in nats
    with mean sigmoid(logits) and one variance for all pixels: ``output_std``, or learned). The network
    options (``arch``, ``widths``, ...; see :class:`keras_ae.networks.NetworkSpec`) make the built
    networks and do not apply to a network you give.

    Args:
        input_shape: (H, W, C) of the images, pixels in [0, 1] (read from ``encoder`` when given).
        num_classes: make the model conditional: encoder and decoder also take a label in
            ``range(num_classes)``, given to them one-hot.
        encoder, decoder: your own networks (see the module docstring) instead of built ones; ``latent_dim``
            is then read from them.

    Example:
        >>> model = Autoencoder((28, 28, 1), latent_dim=30, arch="conv")
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, validation_data=val_ds, epochs=10)
        >>> model.fit_prior(train_ds)               # the Gaussian of the training codes, for sample()
        >>> codes, images = model.codes(test_images), model.sample(16)
    """

    heads = ("z",)
    loss_terms = ("loss", "reconstruction")
    outlier_score_name = "squared reconstruction error"
    test_options = {"latent_dim": 8}  # (the default 512,256 widths: weights enough for int8 TFLite to show)
    options = {
        "latent_dim": Option("size of the code z", positive_int, default=16),
        "arch": Option("encoder/decoder family", choices=ARCHITECTURES, default="mlp", in_run_name_base=True),
        "widths": Option("comma-separated Dense units (mlp) or conv filters per stage (conv)", int_list,
                         default_text=" for mlp, ".join(",".join(map(str, DEFAULT_WIDTHS[a])) for a in ARCHITECTURES)
                         + " for conv", resolved_default=lambda values: DEFAULT_WIDTHS[values["arch"]]),
        "dense_units": Option("conv: a Dense layer of this size before the code (0: none)", non_negative_int,
                              default=0, only_with=("arch", "conv")),
        "down": Option("conv: stride-2 convolutions or convolution + max-pooling", choices=DOWNSAMPLING,
                       default="strided", only_with=("arch", "conv")),
        "up": Option("conv: stride-2 transposed convolutions or upsampling + convolution", choices=UPSAMPLING,
                     default="transpose", only_with=("arch", "conv")),
        "activation": Option("hidden activation (any Keras activation name)", default="relu"),
        "code_activation": Option("activation of the code layer: linear, or relu for codes with exact zeros",
                                  default="linear"),
        "reconstruction": Option("reconstruction term, summed over pixels: squared error (mse), Bernoulli "
                                 "likelihood (bce) or Gaussian likelihood (gaussian)", choices=RECONSTRUCTION_LOSSES,
                                 default="mse"),
        "output_std": Option("with --reconstruction gaussian: fixed standard deviation of every pixel",
                             finite_float, default_text="learned", only_with=("reconstruction", "gaussian")),
    }

    def validate(self):
        """Read the shapes from networks of your own, check the options (those of the networks in
        :class:`~keras_ae.networks.NetworkSpec`, which also gives ``widths`` its arch's default)."""
        super().validate()
        if self.image_shape is None:
            self.image_shape = _input_size(self.encoder) if self.custom["encoder"] else None
            if self.image_shape is None:
                raise ConfigError("give input_shape (H, W, C): there is no encoder to read it from")
        if self.custom["decoder"] and _input_size(self.decoder) is not None:
            self.latent_dim = _input_size(self.decoder)[0]
        # The spec of the built networks; with both networks given it still checks the shapes.
        self.spec = NetworkSpec(self.image_shape, self.latent_dim, self.arch, self.widths, self.dense_units, self.down,
                                self.up, self.activation, self.code_activation)
        self.image_shape, self.latent_dim, self.widths = self.spec.input_shape, self.spec.latent_dim, self.spec.widths
        if self.reconstruction not in RECONSTRUCTION_LOSSES:
            raise ConfigError(f"unknown reconstruction loss {self.reconstruction!r}; choose one of "
                              f"{', '.join(RECONSTRUCTION_LOSSES)}")
        if self.output_std is not None and not self.output_std > 0:
            raise ConfigError(f"output_std must be > 0, got {self.output_std}")
        if self.output_std is not None and self.reconstruction != "gaussian":
            raise ConfigError(f"output_std applies only to reconstruction='gaussian', not {self.reconstruction!r}")

    def build_model(self):
        """The output variance of a Gaussian likelihood, the networks not given (``build_networks``), checked
        with those given, then the prior (``build_prior``)."""
        if self.reconstruction == "gaussian":
            initial = 0.0 if self.output_std is None else 2.0 * math.log(self.output_std)
            self.output_log_var = self.add_weight(shape=(), initializer=keras.initializers.Constant(initial),
                                                  trainable=self.output_std is None, name="output_log_var")
        if not all(self.custom.values()):
            built = dict(zip(("encoder", "decoder"), self.build_networks()))
            for role, custom in self.custom.items():
                if not custom:
                    setattr(self, role, built[role])
        if any(self.custom.values()):
            self._check_networks()
        self.prior = self.build_prior()

    def build_networks(self):
        """The (encoder, decoder) pair for ``self.spec``; PCA overrides it with its linear maps."""
        return build_encoder(self.spec, self.heads, self.num_classes), build_decoder(self.spec, self.num_classes)

    def build_prior(self):
        """How this model draws new codes: the Gaussian of its training codes (fitted when training ends)."""
        return FittedGaussian(self.latent_dim, name="prior")

    def _check_networks(self) -> None:
        """A ConfigError unless the networks keep the contract of the module docstring (one test batch)."""
        x = np.zeros((2, *self.image_shape), "float32")
        labels = None if self.num_classes is None else np.zeros(2, "int32")
        heads = _call(self.encoder, self.conditioned(x, labels), f"images of shape {self.image_shape}")
        if not isinstance(heads, dict) or not set(self.heads) <= set(heads):
            found = sorted(heads) if isinstance(heads, dict) else type(heads).__name__
            raise ConfigError(f"the encoder must return a dict with {', '.join(map(repr, self.heads))} (the heads of "
                              f"{type(self).__name__}), got {found}")
        for name in self.heads:
            if tuple(heads[name].shape) != (2, self.latent_dim):
                raise ConfigError(f"the encoder's {name!r} has shape {tuple(heads[name].shape[1:])} per image; the "
                                  f"decoder takes codes of size {self.latent_dim}")
        logits = _call(self.decoder, self.conditioned(np.zeros((2, self.latent_dim), "float32"), labels),
                       f"codes of size {self.latent_dim}")
        if tuple(logits.shape) != (2, *self.image_shape):
            raise ConfigError(f"the decoder returns {tuple(logits.shape[1:])} per code; it must return logits "
                              f"shaped like the images, {self.image_shape}")

    # ---- shapes --------------------------------------------------------------------------------
    @property
    def code(self) -> Code:
        """A real-valued vector of ``latent_dim`` per image."""
        return Code((self.latent_dim,))

    @property
    def sampling_passes(self) -> int:
        return self.prior.sampling_passes

    @property
    def input_dim(self) -> int:
        return self.spec.input_dim

    @property
    def architecture(self) -> str:
        """What reports show: the built networks' family, or "custom" for networks of your own."""
        return "custom" if any(self.custom.values()) else self.spec.arch

    # ---- the uniform contract: encode, decode, reconstruct, sample ------------------------------
    def encode(self, x, labels=None, training=False):
        """Images -> code z (deterministic: a VAE returns its posterior mean)."""
        return self.encode_heads(x, labels, training)[self.heads[0]]

    def encode_heads(self, x, labels=None, training=False) -> dict:
        """Every head of the encoder, in float32 whatever the compute precision (mixed precision)."""
        return self.code_outputs(self.encoder(self.conditioned(x, labels), training=training))

    def code_outputs(self, heads: dict) -> dict:
        """What the encoder's network gives, as the model (and its exported encoder) returns it: its heads in
        float32 (a VQ-VAE returns the indices of the nearest codebook entries)."""
        return {name: ops.cast(heads[name], "float32") for name in self.heads}

    @property
    def code_variables(self) -> list:
        """The variables ``code_outputs`` and ``code_vectors`` use besides the networks' (a VQ-VAE's codebook)."""
        return []

    def code_vectors(self, z):
        """What the decoder's network takes for codes ``z``: ``z`` itself (a VQ-VAE looks its indices up in
        the codebook)."""
        return z

    def decode_logits(self, z, labels=None, training=False):
        """Decoder logits in float32 (losses are computed in float32 under mixed precision)."""
        return ops.cast(self.decoder(self.conditioned(self.code_vectors(z), labels), training=training), "float32")

    def decode(self, z, labels=None, training=False):
        """Code z -> images in [0, 1]."""
        return ops.sigmoid(self.decode_logits(z, labels, training=training))

    def reconstruct(self, x, labels=None, training=False):
        return self.decode(self.encode(x, labels, training=training), labels, training=training)

    def call(self, inputs, training=False):
        """Images -> reconstructions; a conditional model takes ``(images, labels)``."""
        images, labels = inputs if self.num_classes is not None else (inputs, None)
        return self.reconstruct(images, labels, training=training)

    def codes(self, x, labels=None, batch_size: int = 256) -> np.ndarray:
        """The deterministic codes (a VAE's posterior means) of images ``x``, in batches, as NumPy."""
        return in_batches(self.encode, x, labels, batch_size)

    def sample(self, num: int, labels=None, seed=None):
        """``num`` new images from the decoder alone, codes drawn from ``self.prior`` (with ``labels`` when
        conditional; one label is used for all)."""
        return self.decode(self.prior.sample(num, seed), self.checked_labels(labels, num))

    def figure_rows(self, x, labels=None) -> dict:
        """Rows of images that show what this model does to ``x`` (for the run folder's figure)."""
        return {"original": x, "reconstructed": self.reconstruct(x, labels)}

    # ---- the objective ---------------------------------------------------------------------------
    def reconstruction_error(self, x, logits):
        """Per-image reconstruction term of this model's loss, from decoder logits."""
        if self.reconstruction == "bce":
            return losses.bernoulli_nll(x, logits)
        if self.reconstruction == "gaussian":
            return losses.gaussian_nll(x, ops.sigmoid(logits), self.output_log_var)
        return losses.squared_error(x, ops.sigmoid(logits))

    def compute_losses(self, x, y=None, training=False) -> dict:
        """Named loss terms, averaged over the batch; ``"loss"`` is what training minimises.

        ``y`` holds the labels; only conditional models use them.
        """
        logits = self.decode_logits(self.encode(x, y, training=training), y, training=training)
        reconstruction = ops.mean(self.reconstruction_error(x, logits))
        return {"loss": reconstruction, "reconstruction": reconstruction}

    # ---- what evaluation asks of every model ------------------------------------------------------
    def outlier_score(self, x, labels=None):
        """Per-image outlier score (higher: less like the training data); here the squared reconstruction error."""
        return losses.squared_error(x, self.reconstruct(x, labels))

    # ---- the shared training mechanics -------------------------------------------------------
    def fit_prior(self, x, y=None, batch_size: int = 256) -> None:
        """Fit ``self.prior`` to the codes of the training images ``x``, once training has ended.

        ``x``: an array of images (``y`` its labels) or a finite tf.data pipeline of ``images`` or
        ``(images, labels)`` batches. :func:`keras_ae.train.train` calls it after ``fit``; after a
        ``fit`` of your own, call it before sampling from a plain autoencoder. A fixed prior (a VAE's
        N(0, I)) never asks for the codes, so this costs nothing there.
        """
        if isinstance(x, tf.data.Dataset):
            batches = (keras.utils.unpack_x_y_sample_weight(batch)[:2] for batch in x)
        else:
            x = np.asarray(x)
            batches = ((x[i:i + batch_size], None if y is None else np.asarray(y)[i:i + batch_size])
                       for i in range(0, len(x), batch_size))
        self.prior.fit(np.asarray(self.encode(images, labels if self.num_classes else None))
                       for images, labels in batches)

    def findings(self, metrics: dict) -> list[str]:
        """PCA beaten or not at the same code size, and a warning when the reconstructions ignore the images."""
        lines = []
        pca, spread = metrics.get("pca_baseline"), metrics.get("reconstruction", {})
        if pca:
            model_se = spread["squared_error"]
            verdict = "beats" if model_se < pca["squared_error"] else "does NOT beat"
            lines.append(f"{verdict} PCA at the same code size: test squared error {model_se:.4g} against PCA's "
                         f"{pca['squared_error']:.4g} ({model_se / max(pca['squared_error'], 1e-12):.2f}x)")
        if spread.get("output_variance", np.inf) < DEAD_OUTPUT * spread.get("input_variance", 0.0):
            lines.append(f"WARNING: the reconstructions hardly vary from image to image (variance "
                         f"{spread['output_variance']:.3g} against the images' {spread['input_variance']:.3g}): "
                         "the network ignores its input (dead ReLUs or saturated outputs); try --reconstruction bce, "
                         "a lower --learning-rate or other --widths")
        return lines

    def term_units(self) -> dict:
        """The unit of each reported term (each is per image, summed over pixels), for figure labels."""
        unit = "squared error / image" if self.reconstruction == "mse" else "nats / image"
        return {"loss": unit, "reconstruction": unit}

    # ---- export and serialization --------------------------------------------------------------
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kwargs):
        """Keras's own export of the whole model: images (and labels) -> reconstructions, one artifact.

        For serving an autoencoder use :func:`keras_ae.export.export_model`: encoder and decoder apart
        (generation without the encoder), TFLite variants, metadata and checksums.
        """
        if input_signature is None:
            images = keras.InputSpec(shape=(None, *self.image_shape), dtype="float32")
            labels = keras.InputSpec(shape=(None,), dtype="int32")
            input_signature = [images] if self.num_classes is None else [(images, labels)]
        return super().export(filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs)

    def get_config(self):
        """The options and, for networks of your own, their configs; with both your own, no network option
        (nothing is built from them)."""
        config = super().get_config()
        if all(self.custom.values()):
            config = {name: value for name, value in config.items() if name not in NETWORK_OPTIONS}
        for role, custom in self.custom.items():
            if custom:
                config[role] = keras.saving.serialize_keras_object(getattr(self, role))
        return config
