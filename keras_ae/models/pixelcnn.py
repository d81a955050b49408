"""PixelCNN (van den Oord et al. 2016): an exact density p(x) = prod_i p(x_i | x_<i) over the pixels in raster order.

Masked convolutions keep the order: the first layer (mask A) sees only the pixels above and to the
left of each position, the later ones (mask B) also the position itself, so the output at a pixel
is a function of the pixels before it and ``log p(x)`` is one network evaluation, exact. With several
channels (RGB) the features are split into one group per channel and channel c of a pixel also sees
channels < c of the same pixel.

Two kinds of block: ``residual`` (the default) stacks masked 3x3 convolutions, whose receptive field
misses a wedge above and to the right (the "blind spot"); ``gated`` (van den Oord et al. 2016b,
"Conditional Image Generation with PixelCNN Decoders") keeps a vertical stack that sees every row
above, shifted down a row into a horizontal stack that sees the pixels to the left, with tanh *
sigmoid gates: nothing before the current pixel is out of sight, at about twice the cost for half
the filters. The blocks' 3x3 kernels are dilated 1, 2, 4, 8 in turn by default, so that a pixel of a
28x28 digit sees 25 rows above it instead of 10 at the same cost (-4 nats after 3 epochs on MNIST).

Two likelihoods: ``bernoulli`` for binary images (grey levels are binarized: afresh at every step in
training, once and seeded for the report, as for the VAE's likelihood), and ``categorical``, a
256-way softmax per pixel and channel over the grey levels. The conditional model p(x | y) adds a
learned per-class bias to every layer. Sampling and completion are sequential: H * W * C network
evaluations per batch of images, the price of an exact likelihood.
"""

from __future__ import annotations

import logging
import math
import time

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from keras_ae import losses
from keras_ae.errors import ConfigError
from keras_ae.models.base import ZooModel, binarize, binarized_once, in_batches
from keras_ae.options import Option, int_list, non_negative_int, positive_int

log = logging.getLogger("keras_ae")
LIKELIHOODS = ("bernoulli", "categorical")
BLOCKS = ("gated", "residual")  # the kinds of mask-B layer
LEVELS = 256  # grey levels of the categorical likelihood
MIN_SIDE = 4  # the smallest image side the model takes


@keras.saving.register_keras_serializable(package="keras_ae")
class MaskedConv2D(keras.layers.Conv2D):
    """A 'same' Conv2D whose kernel sees only the positions before the centre in raster order.

    ``mask_type`` "A" also hides the centre (the first layer: a pixel must not see itself), "B" keeps
    it. With ``image_channels`` C > 1, input and output features are split into C groups in channel
    order and at the centre group g sees groups < g (A) or <= g (B).
    """

    def __init__(self, filters, kernel_size, mask_type="B", image_channels=1, **kwargs):
        if mask_type not in ("A", "B"):
            raise ConfigError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(filters, kernel_size, padding="same", **kwargs)
        self.mask_type, self.image_channels = mask_type, int(image_channels)

    def build(self, input_shape):
        super().build(input_shape)
        rows, cols = self.kernel_size
        inputs = int(input_shape[-1])
        mask = np.ones((rows, cols, inputs, self.filters), "float32")
        mask[rows // 2 + 1:] = 0.0
        mask[rows // 2, cols // 2 + 1:] = 0.0
        in_group = np.arange(inputs) * self.image_channels // inputs
        out_group = np.arange(self.filters) * self.image_channels // self.filters
        seen = out_group[None, :] > in_group[:, None] if self.mask_type == "A" else out_group[None, :] >= in_group[:, None]
        mask[rows // 2, cols // 2] = seen
        self.mask = ops.convert_to_tensor(mask)

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, kernel * ops.cast(self.mask, kernel.dtype))

    def get_config(self):
        config = super().get_config()
        config.pop("padding", None)
        return {**config, "mask_type": self.mask_type, "image_channels": self.image_channels}


def build_network(image_shape, filters: int, blocks: int, likelihood: str, num_classes=None,
                  block: str = "residual", dilations=(1, 2, 4, 8)) -> keras.Model:
    """A first layer that does not see its pixel (mask A, 7x7), ``blocks`` mask-B layers of the kind
    ``block`` (gated stacks or residual) whose 3x3 kernels are dilated by ``dilations`` in turn, two
    1x1 layers, then the logits: (H, W, C) for bernoulli, (H, W, C, 256) for categorical. A label adds
    a learned bias to every layer."""
    if block not in BLOCKS:
        raise ConfigError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
    if not dilations or min(dilations) < 1:
        raise ConfigError(f"dilations must be integers >= 1, got {tuple(dilations)}")
    dilation_of = [int(dilations[index % len(dilations)]) for index in range(blocks)]
    channels = image_shape[-1]
    images = keras.Input(image_shape, name="images")
    inputs = [images]
    if num_classes is not None:
        inputs.append(keras.Input((num_classes,), name="one_hot_labels"))

    def with_label(h, name):
        if num_classes is None:
            return h
        bias = keras.layers.Dense(h.shape[-1], use_bias=False, name=f"{name}_label")(inputs[1])
        return keras.layers.Add(name=f"{name}_conditioned")([h, keras.layers.Reshape((1, 1, h.shape[-1]))(bias)])

    def masked(h, width, kernel, mask, name, dilation=1):
        return MaskedConv2D(width, kernel, mask, channels, dilation_rate=dilation, name=name)(h)

    scaled = keras.layers.Rescaling(2.0, -1.0)(images)
    if block == "residual":
        h = with_label(masked(scaled, filters, 7, "A", "mask_a"), "mask_a")
        for index in range(blocks):
            r = masked(keras.layers.ReLU()(h), max(filters // 2, channels), 1, "B", f"block{index}_in")
            r = masked(keras.layers.ReLU()(r), max(filters // 2, channels), 3, "B", f"block{index}_3x3",
                       dilation_of[index])
            r = masked(keras.layers.ReLU()(r), filters, 1, "B", f"block{index}_out")
            h = with_label(keras.layers.Add(name=f"block{index}")([h, r]), f"block{index}")
    else:
        width = max(filters, channels)

        def gated(v, h, kernel, mask, name, dilation=1):
            """One gated layer: the vertical stack's next features, and the horizontal stack's (before its
            residual); tanh and sigmoid halves are separate convolutions, so each keeps its channel groups."""
            reach = dilation * (kernel // 2)
            padded = keras.layers.ZeroPadding2D(((reach, 0), (reach, reach)))(v)
            v_pre = [keras.layers.Conv2D(width, (kernel // 2 + 1, kernel), dilation_rate=dilation,
                                         name=f"{name}_v{half}")(padded)
                     for half in ("tanh", "gate")]  # row i sees rows i - reach to i, the whole row i too
            below = keras.layers.ZeroPadding2D(((1, 0), (0, 0)))(keras.layers.Cropping2D(((0, 1), (0, 0)))(
                keras.layers.Concatenate()(v_pre)))  # each row sees the vertical stack of the rows above only
            h_pre = [keras.layers.Add()([masked(h, width, (1, kernel), mask, f"{name}_h{half}", dilation),
                                         keras.layers.Conv2D(width, 1, name=f"{name}_v_to_h{half}")(below)])
                     for half in ("tanh", "gate")]

            def gate(pair, stack):
                a, b = (with_label(t, f"{name}_{stack}{half}") for t, half in zip(pair, ("tanh", "gate")))
                return keras.layers.Multiply()([keras.layers.Activation("tanh")(a),
                                                keras.layers.Activation("sigmoid")(b)])

            return gate(v_pre, "v"), gate(h_pre, "h")

        v, h = gated(scaled, scaled, 7, "A", "mask_a")
        for index in range(blocks):
            v, out = gated(v, h, 3, "B", f"block{index}", dilation_of[index])
            h = keras.layers.Add(name=f"block{index}")([h, masked(out, width, 1, "B", f"block{index}_out")])
    h = masked(keras.layers.ReLU()(h), filters, 1, "B", "head")
    per_channel = 1 if likelihood == "bernoulli" else LEVELS
    logits = masked(keras.layers.ReLU()(h), channels * per_channel, 1, "B", "logits")
    if per_channel > 1:
        logits = keras.layers.Reshape((*image_shape, per_channel), name="levels")(logits)
    return keras.Model(inputs if num_classes is not None else images, logits, name="pixelcnn")


@keras.saving.register_keras_serializable(package="keras_ae")
class PixelCNN(ZooModel):
    """Autoregressive explicit density over images, trained by maximum likelihood.

    Args:
        input_shape: (H, W, C) of the images, pixels in [0, 1]; sides of at least 4.
        filters: features of the masked convolutions.
        blocks: mask-B layers after the first (mask A) one; each widens the receptive field by twice its
            dilation.
        block: ``"gated"`` (vertical and horizontal stacks, no blind spot) or ``"residual"`` (masked
            3x3 residual blocks, half the cost, a blind spot above and to the right).
        dilations: dilation of each block's 3x3 kernel, in turn (``(1, 2, 4)``: 1, 2, 4, 1, 2, ...): a
            block then widens the receptive field by twice its dilation, at the same cost.
        likelihood: ``"bernoulli"`` (binarized pixels) or ``"categorical"`` (256 grey levels).
        num_classes: p(x | y): a label in ``range(num_classes)`` is given with the images.
        seed: seed of the dynamic binarization.

    Example:
        >>> model = PixelCNN((28, 28, 1))
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, epochs=10)
        >>> nats = -model.log_prob(binary_images)           # exact, per image
        >>> images = model.sample(16, seed=0)               # 784 network evaluations
    """

    loss_terms = ("loss", "nll", "bits_per_dim")
    outlier_score_name = "negative log-likelihood (nats)"
    options = {
        "filters": Option("features of the masked convolutions", positive_int),
        "blocks": Option("mask-B layers after the first (each widens the receptive field by twice its dilation)",
                         non_negative_int),
        "block": Option("gated: vertical and horizontal stacks with tanh*sigmoid gates, no blind spot; residual: "
                        "masked 3x3 residual blocks, about half the cost, blind to a wedge above right",
                        choices=BLOCKS),
        "dilations": Option("comma-separated dilations of the blocks' 3x3 kernels, used in turn: a block widens "
                            "the receptive field by twice its dilation at the same cost (1: the plain PixelCNN)",
                            int_list),
        "likelihood": Option("Bernoulli per pixel of binarized images, or a 256-way softmax over grey "
                             "levels", choices=LIKELIHOODS),
    }

    def __init__(self, input_shape=None, filters=64, blocks=7, block="residual", dilations=(1, 2, 4, 8),
                 likelihood="bernoulli", num_classes=None, seed=0, **kwargs):
        super().__init__(**kwargs)
        if input_shape is None or len(input_shape) != 3:
            raise ConfigError(f"give input_shape (H, W, C), got {input_shape}")
        self.input_shape_ = tuple(int(d) for d in input_shape)
        if min(self.input_shape_[:2]) < MIN_SIDE:
            raise ConfigError(f"a PixelCNN needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {self.input_shape_[:2]}")
        if likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if num_classes is not None and int(num_classes) < 2:
            raise ConfigError(f"num_classes must be >= 2 for a conditional model, got {num_classes}")
        self.filters, self.blocks, self.block, self.likelihood = int(filters), int(blocks), block, likelihood
        self.dilations = tuple(int(d) for d in dilations)
        self.num_classes = None if num_classes is None else int(num_classes)
        self.seed = int(seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.network = build_network(self.input_shape_, self.filters, self.blocks, likelihood, self.num_classes,
                                     block, self.dilations)
        self.trackers = {name: self.tracker(name) for name in self.loss_terms}
        self.built = True

    # ---- shapes ------------------------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.input_shape_

    @property
    def latent_dim(self):
        return None

    @property
    def architecture(self) -> str:
        return "masked-conv"

    @property
    def dims(self) -> int:
        return int(np.prod(self.input_shape_))

    # ---- the density -------------------------------------------------------------------------------
    def observed(self, x):
        """What the density is over: binary pixels (grey ones thresholded at 0.5: binarize images first to
        score them as a binarized model is trained) or grey levels k / 255."""
        if self.likelihood == "bernoulli":
            return ops.cast(x >= 0.5, "float32")
        return ops.round(ops.clip(x, 0.0, 1.0) * (LEVELS - 1)) / (LEVELS - 1)

    def logits(self, x, labels=None, training=False):
        """Per-pixel logits: (N, H, W, C) for bernoulli, (N, H, W, C, 256) for categorical, in float32."""
        x = ops.convert_to_tensor(x, "float32")
        inputs = x if self.num_classes is None else [x, ops.one_hot(ops.cast(labels, "int32"), self.num_classes)]
        return ops.cast(self.network(inputs, training=training), "float32")

    def call(self, inputs, training=False):
        """Images (and labels) -> per-pixel logits."""
        images, labels = inputs if self.num_classes is not None else (inputs, None)
        return self.logits(images, labels, training=training)

    def nll_per_image(self, x, labels=None, training=False):
        """-log p(x) in nats per image of ``observed`` pixels (exact: one network evaluation)."""
        x = self.observed(x)
        return self.nll_from_logits(x, self.logits(x, labels, training=training))

    def nll_from_logits(self, observed, logits):
        """-log p(x) per image from the network's logits for the ``observed`` pixels (export uses it too)."""
        if self.likelihood == "bernoulli":
            return losses.bernoulli_nll(observed, logits)
        levels = ops.cast(ops.round(observed * (LEVELS - 1)), "int32")
        per_pixel = keras.losses.sparse_categorical_crossentropy(levels, logits, from_logits=True)
        return losses.sum_per_example(per_pixel)

    def log_prob(self, x, labels=None, batch_size: int = 256) -> np.ndarray:
        """log p(x) in nats per image, as NumPy, in batches (of ``observed`` pixels: binary ones for Bernoulli)."""
        labels = self.checked_labels(labels, len(x))
        return -in_batches(self.nll_per_image, np.asarray(x, "float32"), labels, batch_size)

    def compute_losses(self, x, y=None, training=False):
        if self.likelihood == "bernoulli":
            x = binarize(x, self.seed_generator)
        nll = ops.mean(self.nll_per_image(x, y, training=training))
        return {"loss": nll, "nll": nll, "bits_per_dim": nll / (self.dims * math.log(2.0))}

    def outlier_score(self, x, labels=None):
        """-log p(x) per image (of ``x`` thresholded at 0.5 for the Bernoulli likelihood: deterministic)."""
        return self.nll_per_image(x, labels)

    def likelihood_report(self, x, labels=None, num_samples: int = 100, seed: int = 0) -> dict:
        """The exact negative log-likelihood in nats per image and bits per dimension; Bernoulli models are
        scored on one fixed binarization of ``x`` (seeded), the one the VAE's report uses."""
        if self.likelihood == "bernoulli":
            x = binarized_once(x, seed)
        nll = -self.log_prob(x, labels)
        return {"nll": float(nll.mean()), "bits_per_dim": float(nll.mean() / (self.dims * math.log(2.0))),
                "exact": True, "binarized": self.likelihood == "bernoulli"}

    # ---- generation: one pixel at a time -----------------------------------------------------------
    @tf.function(reduce_retracing=True)
    def _pixel_logits(self, x, labels, row, col, channel):
        return self.logits(x, labels)[:, row, col, channel]

    def complete(self, x, given_rows: int, labels=None, seed=None) -> np.ndarray:
        """Images whose rows from ``given_rows`` on are drawn pixel by pixel given the rows above them
        (H * W * C network evaluations for whole images: ``given_rows=0`` samples new ones)."""
        x = np.array(self.observed(np.asarray(x, "float32")), "float32")
        labels = self.checked_labels(labels, len(x))
        rows, cols, channels = self.input_shape_
        if not 0 <= given_rows <= rows:
            raise ConfigError(f"given_rows must be in [0, {rows}], got {given_rows}")
        x[:, given_rows:] = 0.0
        rng = np.random.default_rng(seed)
        start = time.monotonic()
        for row in range(given_rows, rows):
            for col in range(cols):
                for channel in range(channels):
                    logits = np.asarray(self._pixel_logits(x, labels, tf.constant(row), tf.constant(col),
                                                           tf.constant(channel)), "float64")
                    if self.likelihood == "bernoulli":
                        x[:, row, col, channel] = rng.random(len(x)) < 1.0 / (1.0 + np.exp(-logits))
                    else:
                        level = np.argmax(logits + rng.gumbel(size=logits.shape), axis=-1)
                        x[:, row, col, channel] = level / (LEVELS - 1)
        evaluations, seconds = (rows - given_rows) * cols * channels, time.monotonic() - start
        if evaluations and len(x):
            log.info("sampling: %d images, %d network evaluations in %.1f s (%.3f s per image)", len(x),
                     evaluations, seconds, seconds / len(x))
        return x

    def sample(self, num: int, labels=None, seed=None) -> np.ndarray:
        """``num`` new images drawn pixel by pixel (with ``labels`` when conditional; one label is used for all)."""
        return self.complete(np.zeros((num, *self.input_shape_), "float32"), 0, labels, seed)

    def figure_rows(self, x, labels=None) -> dict:
        """Test images and their bottom halves drawn by the model given the top halves."""
        top = self.input_shape_[0] // 2
        if self.likelihood == "bernoulli":
            x = binarized_once(x)
        given = np.where(np.arange(self.input_shape_[0])[:, None, None] < top, x, 0.0)
        return {"original": x, "top half given": given, "completed": self.complete(x, top, labels, seed=0)}

    def term_units(self) -> dict:
        return {"loss": "nats / image", "nll": "nats / image", "bits_per_dim": "bits / dim"}

    @classmethod
    def from_config(cls, config):
        # a model saved before dilations existed (0.3.0.dev, before 2026-12-02) has undilated kernels
        return cls(**{"dilations": (1,), **config})

    def get_config(self):
        return {"name": self.name, "input_shape": self.input_shape_, "filters": self.filters, "blocks": self.blocks,
                "block": self.block, "dilations": self.dilations, "likelihood": self.likelihood,
                "num_classes": self.num_classes, "seed": self.seed}


@keras.saving.register_keras_serializable(package="keras_ae")
class ConditionalPixelCNN(PixelCNN):
    """p(x | y): a PixelCNN that takes a label with the images; ``sample(n, labels=...)`` draws the asked class.

    Args:
        num_classes: number of label classes (>= 2); the training data must be labelled.
        **kwargs: the options of :class:`PixelCNN`.
    """

    needs_labels = True

    def __init__(self, input_shape=None, num_classes=None, **kwargs):
        if num_classes is None:
            raise ConfigError("the conditional PixelCNN needs labels: train it on a labelled dataset (num_classes)")
        super().__init__(input_shape, num_classes=num_classes, **kwargs)
