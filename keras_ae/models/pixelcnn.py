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
28x28 digit sees 25 rows above it instead of 10 at the same cost (BENCHMARKS.md measures both).

Two likelihoods: ``bernoulli`` for binary images (grey levels are binarized: afresh at every step in
training, once and seeded for the report, as for the VAE's likelihood), and ``categorical``, a
softmax per pixel and channel over ``levels`` values (256 grey levels; the K entries of a codebook
for a prior over a VQ-VAE's code grid, fed in one-hot). The conditional model p(x | y) adds a
learned per-class bias to every layer. The objective, the likelihood and sampling are those of
every density (:mod:`keras_ae.models.density`): sampling and completion are sequential, H * W * C
network passes per batch of images, the price of an exact likelihood.
"""

from __future__ import annotations

import logging
import math

import keras
import numpy as np
from keras import ops

from keras_ae.contract import Density
from keras_ae.errors import ConfigError
from keras_ae.models.density import DensityModel
from keras_ae.models.priors import Prior
from keras_ae.options import Option, int_list, non_negative_int, positive_int, random_seed

log = logging.getLogger("keras_ae")
LIKELIHOODS = ("bernoulli", "categorical")
BLOCKS = ("gated", "residual")  # the kinds of mask-B layer
MIN_SIDE = 2  # the smallest image side the model takes (a VQ-VAE of 8x8 digits has a 2x2 code grid)


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


@keras.saving.register_keras_serializable(package="keras_ae")
class OneHotLevels(keras.layers.Layer):
    """Values k / (levels - 1) of (N, H, W, C) -> one-hot vectors of k, (N, H, W, C * levels) grouped by channel."""

    def __init__(self, levels: int, **kwargs):
        super().__init__(**kwargs)
        self.levels = int(levels)

    def call(self, values):
        one_hot = ops.one_hot(ops.cast(ops.round(values * (self.levels - 1)), "int32"), self.levels)
        return ops.reshape(one_hot, (*ops.shape(values)[:3], values.shape[3] * self.levels))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], input_shape[3] * self.levels)

    def get_config(self):
        return {**super().get_config(), "levels": self.levels}


def label_bias(h, one_hot_labels, name: str):
    """``h`` plus a learned bias per class (a Dense of the one-hot label): how a conditional density's layers
    are told the class."""
    bias = keras.layers.Dense(h.shape[-1], use_bias=False, name=f"{name}_label")(one_hot_labels)
    return keras.layers.Add(name=f"{name}_conditioned")([h, keras.layers.Reshape((1, 1, h.shape[-1]))(bias)])


def logits_head(h, image_shape, width: int, levels: int):
    """The head of a masked density network: ReLU, a 1x1 mask-B layer of ``width``, ReLU, and the 1x1 mask-B
    logits: (H, W, C) of p(1) for binary elements (``levels`` 2), (H, W, C, levels) otherwise."""
    channels = image_shape[-1]
    h = MaskedConv2D(width, 1, "B", channels, name="head")(keras.layers.ReLU()(h))
    per_channel = 1 if levels == 2 else levels
    logits = MaskedConv2D(channels * per_channel, 1, "B", channels, name="logits")(keras.layers.ReLU()(h))
    if per_channel > 1:
        logits = keras.layers.Reshape((*image_shape, per_channel), name="levels")(logits)
    return logits


def build_network(image_shape, filters: int, blocks: int, levels: int, num_classes=None,
                  block: str = "residual", dilations=(1, 2, 4, 8), one_hot_inputs: bool = False) -> keras.Model:
    """A first layer that does not see its pixel (mask A, 7x7), ``blocks`` mask-B layers of the kind
    ``block`` (gated stacks or residual) whose 3x3 kernels are dilated by ``dilations`` in turn, two
    1x1 layers, then the logits: (H, W, C) of p(1) for binary elements (``levels`` 2), (H, W, C, levels)
    otherwise. The elements come in as values in [0, 1] (scaled to [-1, 1]), or as one-hot vectors of their
    ``levels`` (grouped by channel, so that the masks keep the channel order). A label adds a learned bias
    to every layer."""
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
        return h if num_classes is None else label_bias(h, inputs[1], name)

    def masked(h, width, kernel, mask, name, dilation=1):
        return MaskedConv2D(width, kernel, mask, channels, dilation_rate=dilation, name=name)(h)

    if one_hot_inputs:
        scaled = OneHotLevels(levels, name="one_hot")(images)
    else:
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
    logits = logits_head(h, image_shape, filters, levels)
    return keras.Model(inputs if num_classes is not None else images, logits, name="pixelcnn")


@keras.saving.register_keras_serializable(package="keras_ae")
class PixelCNN(DensityModel):
    """Autoregressive explicit density over images (or a code grid), trained by maximum likelihood.

    Args:
        input_shape: (H, W, C) of the images, pixels in [0, 1]; sides of at least 2.
        num_classes: p(x | y): a label in ``range(num_classes)`` is given with the images.

    Example:
        >>> model = PixelCNN((28, 28, 1))
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, epochs=10)
        >>> nats = -model.log_prob(binary_images)           # exact, per image
        >>> images = model.sample(16, seed=0)               # 784 network passes
    """

    test_options = {"filters": 8, "blocks": 1, "dilations": (1, 2)}
    options = {
        "filters": Option("features of the masked convolutions", positive_int, default=64),
        "blocks": Option("mask-B layers after the first (each widens the receptive field by twice its dilation)",
                         non_negative_int, default=7),
        "block": Option("gated: vertical and horizontal stacks with tanh*sigmoid gates, no blind spot; residual: "
                        "masked 3x3 residual blocks, about half the cost, blind to a wedge above right",
                        choices=BLOCKS, default="residual"),
        "dilations": Option("comma-separated dilations of the blocks' 3x3 kernels, used in turn: a block widens "
                            "the receptive field by twice its dilation at the same cost (1: the plain PixelCNN)",
                            int_list, default=(1, 2, 4, 8)),
        "likelihood": Option("Bernoulli per pixel of binarized images, or a softmax over --levels values per pixel "
                             "and channel", choices=LIKELIHOODS, default="bernoulli"),
        "levels": Option("values of an element under the categorical likelihood (256 grey levels; K for a codebook)",
                         positive_int, default=256, only_with=("likelihood", "categorical")),
        "one_hot_inputs": Option("feed each element as a one-hot vector of its level, not its value (for codebook "
                                 "indices, which have no order)", default=False, flag=True),
        "seed": Option("seed of the dynamic binarization", random_seed, default=0),
    }

    def validate(self):
        super().validate()
        if self.image_shape is None or len(self.image_shape) != 3:
            raise ConfigError(f"give input_shape (H, W, C), got {self.image_shape}")
        if min(self.image_shape[:2]) < MIN_SIDE:
            raise ConfigError(f"a PixelCNN needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {self.image_shape[:2]}")
        if self.likelihood not in LIKELIHOODS:
            raise ConfigError(f"unknown likelihood {self.likelihood!r}; choose one of {', '.join(LIKELIHOODS)}")
        if self.likelihood == "categorical" and self.levels < 2:
            raise ConfigError(f"a categorical likelihood needs levels >= 2, got {self.levels}")

    def build_model(self):
        self.density = Density(self.image_shape, 2 if self.likelihood == "bernoulli" else self.levels)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.network = build_network(self.image_shape, self.filters, self.blocks, self.density.levels,
                                     self.num_classes, self.block, self.dilations, self.one_hot_inputs)

    @property
    def architecture(self) -> str:
        return "masked-conv"



@keras.saving.register_keras_serializable(package="keras_ae")
class ConditionalPixelCNN(PixelCNN):
    """p(x | y): a PixelCNN that takes a label with the images; ``sample(n, labels=...)`` draws the asked class.

    Args:
        num_classes: number of label classes (>= 2); the training data must be labelled.
        input_shape: as for :class:`PixelCNN`.
    """

    needs_labels = True


@keras.saving.register_keras_serializable(package="keras_ae")
class PixelCNNPrior(Prior):
    """p(code) of a discrete code grid (a VQ-VAE's indices) as a PixelCNN over it: a prior that is a model of its own.

    Its network sees each cell's index one-hot (indices have no order) and gives a ``levels``-way softmax
    per cell given the cells before it. :meth:`fit` trains it on the codes of the training images (the
    second stage of a VQ-VAE, when training ends); it is saved with the model, exported beside the
    decoder as the ``prior`` network (``export/<name>/prior/<v>/`` and ``<v>/prior.tflite``) and sampled
    there by the one sampler, with no encoder and no Keras.
    """

    label = "the PixelCNN prior over the code grid"

    def __init__(self, grid, levels: int, filters: int = 64, blocks: int = 5, epochs: int = 10, seed: int = 0,
                 **kwargs):
        grid = tuple(int(side) for side in grid)
        super().__init__(math.prod(grid), **kwargs)
        self.grid, self.levels, self.filters, self.blocks = grid, int(levels), int(filters), int(blocks)
        self.epochs, self.seed = int(epochs), int(seed)
        self.pixelcnn = PixelCNN((*grid, 1), filters=self.filters, blocks=self.blocks, dilations=(1, 2),
                                 likelihood="categorical", levels=self.levels, one_hot_inputs=True, seed=self.seed,
                                 name="prior_pixelcnn")
        self.pixelcnn.trainable = False  # trained by its own fit, not by the autoencoder's objective
        self.trained = self.add_weight(shape=(), initializer="zeros", trainable=False, name="trained")

    @property
    def density_model(self) -> PixelCNN:
        return self.pixelcnn

    @property
    def sampling_passes(self) -> int:
        return self.pixelcnn.sampling_passes

    @property
    def fitted(self) -> bool:
        return bool(self.trained.numpy())

    def fit(self, code_batches) -> None:
        """Train the PixelCNN on every code of ``code_batches`` (integer grids (N, H', W')) for ``epochs``."""
        codes = np.concatenate([np.asarray(batch).reshape(len(batch), *self.grid) for batch in code_batches])
        values = (codes[..., None] / (self.levels - 1)).astype("float32")
        log.info("prior: a PixelCNN over the %dx%d code grid (%d entries), trained on the codes of %d training "
                 "images for %d epochs", *self.grid, self.levels, len(codes), self.epochs)
        self.pixelcnn.trainable = True
        try:
            self.pixelcnn.compile(optimizer=keras.optimizers.Adam(1e-3))
            self.pixelcnn.fit(values, epochs=self.epochs, batch_size=64, verbose=0,
                              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: log.info(
                                  "prior: epoch %d/%d: %.3f nats per code grid", epoch + 1, self.epochs, logs["nll"]))])
        finally:
            self.pixelcnn.trainable = False
        self.trained.assign(1.0)

    def sample(self, num: int, seed: int | None = 0) -> np.ndarray:
        """``num`` code grids (int32 indices) drawn cell by cell, as the exported ``prior`` draws them."""
        if not self.fitted:
            raise ConfigError("this model's prior has not been trained: call model.fit_prior(training images) "
                              "after training (keras_ae.train.train does)")
        values = self.pixelcnn.sample(num, seed=seed)
        return np.rint(values[..., 0] * (self.levels - 1)).astype(np.int32)

    def describe(self) -> dict:
        return {"prior": "autoregressive", "network": "prior", "density": self.pixelcnn.density.describe(),
                "model": {"filters": self.filters, "blocks": self.blocks, "epochs": self.epochs}}

    def principal_plane(self):
        raise ConfigError("a prior over a grid of codebook indices has no principal plane")

    def get_config(self):
        config = {**super().get_config(), "grid": self.grid, "levels": self.levels, "filters": self.filters,
                  "blocks": self.blocks, "epochs": self.epochs, "seed": self.seed}
        config.pop("latent_dim")
        return config
