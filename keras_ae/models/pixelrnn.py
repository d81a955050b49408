"""PixelRNN (van den Oord, Kalchbrenner and Kavukcuoglu 2016): p(x) = prod_i p(x_i | x_<i) by two-dimensional LSTMs.

The pixels are generated one at a time from the upper-left corner, and the hidden state of each pixel
depends on the states and values above it and to its left. The network:

- the input layer, a 7x7 convolution with mask A (2h features: a pixel does not see itself);
- ``recurrent_layers`` (``--layers``) recurrent layers of ``hidden`` h units, each with a residual connection (its h outputs
  back to 2h by a 1x1 mask-B convolution, added to its input) and a learnable skip connection to the
  output (a 1x1 mask-B convolution of its outputs, summed over the layers);
- ``cell="row"``, the **Row LSTM**: the input-to-state part is a masked k x 1 convolution along the
  row (k = 3), computed once over the whole map; the state-to-state part a k x 1 convolution of the
  previous row's hidden state, run row by row (H sequential steps): a triangle above each pixel;
- ``cell="diagonal"``, the **Diagonal BiLSTM**: the map is skewed (row r shifted r to the right, so
  H x W becomes H x (W + H - 1)) and an LSTM runs along its columns, that is along the diagonals of
  the image (W + H - 1 sequential steps), with a 1x1 mask-B input-to-state and a 2 x 1 state-to-state
  convolution (rows r - 1 and r of the previous column), then unskewed. The right-to-left direction
  runs on the mirrored map and is mirrored back, then **shifted down one row** before it is added:
  unshifted, a pixel would see the pixels to its right (:func:`shift_down`);
- the head: ReLU and 1x1 mask-B convolutions to the logits, a Bernoulli per binarized pixel or a
  ``levels``-way softmax per colour channel.

Every mask-B layer keeps the channel order of colour images: the features are split into one group
per channel, and at a pixel group g sees the groups < g of the input layer and <= g afterwards, so R
is predicted from the past only, G also from R, and B from R and G. The four gates of an LSTM are
four masked convolutions, so that each gate feature stays in its channel's group. The objective,
the exact likelihood, sampling and the export are those of every density (:mod:`keras_ae.models.density`).
"""

from __future__ import annotations

import keras
from keras import layers, ops

from keras_ae.contract import Density
from keras_ae.errors import ConfigError
from keras_ae.models.density import DensityModel
from keras_ae.models.pixelcnn import LIKELIHOODS, MaskedConv2D, label_bias, logits_head
from keras_ae.options import Option, positive_int, random_seed

CELLS = ("diagonal", "row")
MAX_CATEGORICAL_CHANNELS = 4  # a 256-way softmax per channel: more channels than RGBA are refused
ROW_KERNEL = 3  # k of the Row LSTM's k x 1 convolutions


def skew(x):
    """(N, H, W, C) -> (N, H, W + H - 1, C) with row r shifted r positions to the right (zeros around)."""
    _, height, width, channels = x.shape
    flat = ops.reshape(ops.pad(x, ((0, 0), (0, 0), (0, height), (0, 0))), (-1, height * (width + height), channels))
    # (ops.slice, not [:, :n]: a strided slice's gradient is a slow kernel, a slice's is a pad)
    flat = ops.slice(flat, (0, 0, 0), (ops.shape(flat)[0], height * (width + height - 1), channels))
    return ops.reshape(flat, (-1, height, width + height - 1, channels))


def unskew(x, width: int):
    """The inverse of :func:`skew`: row r of (N, H, W + H - 1, C) read from position r, W long."""
    _, height, skewed, channels = x.shape
    flat = ops.pad(ops.reshape(x, (-1, height * skewed, channels)), ((0, 0), (0, height), (0, 0)))
    rows = ops.reshape(flat, (-1, height, skewed + 1, channels))
    return ops.slice(rows, (0, 0, 0, 0), (ops.shape(rows)[0], height, width, channels))


def shift_down(x):
    """Every row moved one row down (a zero row on top): what the right-to-left direction needs to see
    only the rows above its pixel."""
    return ops.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0), (0, 0)))


def _lstm(gates, c):
    """One LSTM update from the summed gate pre-activations (i, f, o, g; sigmoid, sigmoid, sigmoid, tanh)."""
    i, f, o, g = ops.split(gates, 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    return ops.sigmoid(o) * ops.tanh(c), c


def _shifted(h, offset: int, batch):
    """h (``batch``, L, h) read at position l + offset along L, zeros beyond its ends."""
    if offset == 0:
        return h
    length, units = h.shape[1], h.shape[2]
    padded = ops.pad(h, ((0, 0), (max(-offset, 0), max(offset, 0)), (0, 0)))
    return ops.slice(padded, (0, max(offset, 0), 0), (batch, length, units))


def recurrence(gates, kernel, bias, offsets):
    """An LSTM along axis 0 of ``gates`` (T, N, L, 4h): the input-to-state pre-activations of each step.

    The state-to-state part of step t is a convolution along L of step t - 1's hidden state, whose taps
    read positions l + ``offsets`` (kernel (len(offsets), h, 4h)); it runs as one matmul of the shifted
    states side by side. Returns the hidden states, (T, N, L, h). The steps are unrolled over the static
    T, so the graph has builtin TFLite ops only."""
    taps, units = kernel.shape[0], kernel.shape[1]
    kernel = ops.reshape(kernel, (taps * units, 4 * units))
    h = c = ops.zeros_like(gates[0, :, :, :units])  # (zeros_like keeps the static shape that ops.zeros loses)
    batch = ops.shape(h)[0]
    states = []
    for step_gates in ops.unstack(gates, axis=0):  # (axis 0: unstacking an inner axis cost half the step)
        neighbours = ops.concatenate([_shifted(h, offset, batch) for offset in offsets], axis=-1)
        h, c = _lstm(step_gates + ops.matmul(neighbours, kernel) + bias, c)
        states.append(h)
    return ops.stack(states, axis=0)


class _LSTMLayer(layers.Layer):
    """What both cells share: four masked input-to-state convolutions (one per gate, so that each gate
    feature stays in its channel's group) and the state-to-state kernel whose taps read ``offsets``."""

    input_kernel = None  # (rows, columns) of the input-to-state convolution
    offsets = ()  # positions of the state-to-state taps, relative to the unit they feed

    def __init__(self, hidden: int, image_channels: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.image_channels = int(hidden), int(image_channels)
        self.input_gates = [MaskedConv2D(self.hidden, self.input_kernel, "B", self.image_channels, name=f"in_{gate}")
                            for gate in "ifog"]

    def build(self, input_shape):
        for conv in self.input_gates:
            conv.build(input_shape)
        self.state_kernel = self.add_weight((len(self.offsets), self.hidden, 4 * self.hidden), "glorot_uniform",
                                            name="state_kernel")
        self.state_bias = self.add_weight((4 * self.hidden,), "zeros", name="state_bias")

    def input_to_state(self, x):
        return ops.concatenate([conv(x) for conv in self.input_gates], axis=-1)

    def run(self, gates):
        return recurrence(gates, self.state_kernel, self.state_bias, self.offsets)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:3], self.hidden)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "image_channels": self.image_channels}


@keras.saving.register_keras_serializable(package="keras_ae")
class RowLSTM(_LSTMLayer):
    """The Row LSTM: masked k x 1 input-to-state along the row, k x 1 state-to-state from the row above."""

    input_kernel = (1, ROW_KERNEL)
    offsets = tuple(range(-(ROW_KERNEL // 2), ROW_KERNEL // 2 + 1))  # columns c - 1, c, c + 1 of the row above

    def call(self, x):
        rows = ops.transpose(self.input_to_state(x), (1, 0, 2, 3))  # H sequential steps
        return ops.transpose(self.run(rows), (1, 0, 2, 3))


@keras.saving.register_keras_serializable(package="keras_ae")
class DiagonalLSTM(_LSTMLayer):
    """One direction of the Diagonal BiLSTM: 1x1 masked input-to-state, an LSTM along the skewed map's columns
    with a 2 x 1 state-to-state convolution (rows r - 1 and r of the previous column)."""

    input_kernel = (1, 1)
    offsets = (-1, 0)

    def call(self, x):
        columns = ops.transpose(skew(self.input_to_state(x)), (2, 0, 1, 3))  # W + H - 1 steps: the diagonals
        return unskew(ops.transpose(self.run(columns), (1, 2, 0, 3)), x.shape[2])


def diagonal_bilstm(x, hidden: int, channels: int, name: str):
    """Both directions: left to right, plus right to left on the mirrored map, mirrored back and shifted down."""
    forward = DiagonalLSTM(hidden, channels, name=f"{name}_forward")(x)
    backward = DiagonalLSTM(hidden, channels, name=f"{name}_backward")(ops.flip(x, axis=2))
    return forward + shift_down(ops.flip(backward, axis=2))


def build_network(image_shape, cell: str, layer_count: int, hidden: int, levels: int,
                  num_classes=None) -> keras.Model:
    """Images (and one-hot labels) -> the logits of every pixel given those before it: (H, W, C) of p(1) for
    binary pixels, (H, W, C, levels) otherwise. A label adds a learned bias to every layer's input."""
    channels = image_shape[-1]
    images = keras.Input(image_shape, name="images")
    inputs = [images] if num_classes is None else [images, keras.Input((num_classes,), name="one_hot_labels")]

    def with_label(h, name):
        return h if num_classes is None else label_bias(h, inputs[1], name)

    width = 2 * hidden
    h = with_label(MaskedConv2D(width, 7, "A", channels, name="mask_a")(layers.Rescaling(2.0, -1.0)(images)), "mask_a")
    skips = []
    for index in range(layer_count):
        name = f"layer{index}"
        out = RowLSTM(hidden, channels, name=name)(h) if cell == "row" else diagonal_bilstm(h, hidden, channels, name)
        h = with_label(layers.Add(name=f"{name}_residual")([h, MaskedConv2D(width, 1, "B", channels,
                                                                            name=f"{name}_to_input")(out)]), name)
        skips.append(MaskedConv2D(width, 1, "B", channels, name=f"{name}_skip")(out))
    h = layers.Add(name="skips")(skips) if len(skips) > 1 else skips[0]
    logits = logits_head(h, image_shape, width, levels)
    return keras.Model(inputs if num_classes is not None else images, logits, name="pixelrnn")


@keras.saving.register_keras_serializable(package="keras_ae")
class PixelRNN(DensityModel):
    """Autoregressive density over images by Row LSTMs or Diagonal BiLSTMs, trained by maximum likelihood.

    Args:
        input_shape: (H, W, C) of the images, pixels in [0, 1]; sides of at least 2.
        num_classes: p(x | y): a label in ``range(num_classes)`` is given with the images.

    Example:
        >>> model = PixelRNN((28, 28, 1), cell="diagonal")   # the paper's MNIST network: 7 layers, h = 16
        >>> model.compile(optimizer="adam")
        >>> model.fit(train_ds, epochs=10)
        >>> nats = -model.log_prob(binary_images)           # exact, per image
        >>> images = model.sample(16, seed=0)               # 784 network passes of 55 diagonal steps
    """

    test_options = {"hidden": 4, "recurrent_layers": 1}
    default_learning_rate = 3e-3  # trains it faster: 87.5 nats after 1,200 steps on binarized_mnist, 91.5 at 1e-3
    options = {
        "cell": Option("row: Row LSTM (a k x 1 recurrence row by row, H steps); diagonal: Diagonal BiLSTM (along "
                       "the diagonals in both directions, W + H - 1 steps, every pixel above and to the left in view)",
                       choices=CELLS, default="diagonal"),
        "recurrent_layers": Option("recurrent layers, each with a residual and a skip connection", positive_int,
                                   default=7, flag_name="layers"),  # (keras.Model has an attribute layers)
        "hidden": Option("h, the units of each LSTM (the input layer and the residuals have 2h)", positive_int,
                         default=16),
        "likelihood": Option("Bernoulli per pixel of binarized images, or a 256-way softmax per colour channel",
                             choices=LIKELIHOODS, default="bernoulli"),
        "seed": Option("seed of the dynamic binarization", random_seed, default=0),
    }

    def validate(self):
        super().validate()
        if self.image_shape is None or len(self.image_shape) != 3:
            raise ConfigError(f"give input_shape (H, W, C), got {self.image_shape}")
        if min(self.image_shape[:2]) < 2:
            raise ConfigError(f"a PixelRNN needs images of at least 2x2, got {self.image_shape[:2]}")
        if self.cell not in CELLS:
            raise ConfigError(f"unknown cell {self.cell!r}; choose row or diagonal")
        if self.recurrent_layers < 1 or self.hidden < 1:
            raise ConfigError(f"--layers and --hidden must be >= 1, got {self.recurrent_layers} and {self.hidden}")
        channels = self.image_shape[2]
        if self.likelihood == "categorical" and channels > MAX_CATEGORICAL_CHANNELS:
            raise ConfigError(f"a categorical PixelRNN models at most {MAX_CATEGORICAL_CHANNELS} channels (a 256-way "
                              f"softmax each), got {channels}")
        if self.hidden < channels:
            raise ConfigError(f"hidden must be >= the {channels} channels (a group of units per channel), got "
                              f"{self.hidden}")

    def build_model(self):
        self.density = Density(self.image_shape, 2 if self.likelihood == "bernoulli" else 256)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.network = build_network(self.image_shape, self.cell, self.recurrent_layers, self.hidden,
                                     self.density.levels, self.num_classes)

    @property
    def architecture(self) -> str:
        return "row-lstm" if self.cell == "row" else "diagonal-bilstm"

    @property
    def sequential_steps(self) -> int:
        """Sequential LSTM steps of one network pass: H for the Row LSTM, W + H - 1 for the Diagonal BiLSTM."""
        height, width = self.image_shape[:2]
        return height if self.cell == "row" else width + height - 1

    def findings(self, metrics: dict) -> list[str]:
        return super().findings(metrics) + [f"each network pass runs {self.sequential_steps} sequential LSTM steps "
                                            f"({self.architecture})"]



@keras.saving.register_keras_serializable(package="keras_ae")
class ConditionalPixelRNN(PixelRNN):
    """p(x | y): a PixelRNN that takes a label with the images; ``sample(n, labels=...)`` draws the asked class.

    Args:
        num_classes: number of label classes (>= 2); the training data must be labelled.
        input_shape: as for :class:`PixelRNN`.
    """

    needs_labels = True
