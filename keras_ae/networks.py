"""Encoder and decoder networks for any image shape (H, W, C).

Architectures live apart from objectives: every model of the zoo builds its encoder and decoder
here, so any objective trains with either network. Two families:

- ``mlp``: flatten -> Dense(widths[0]) -> ... -> Dense heads; the decoder mirrors it.
- ``conv``: (strided conv | conv + max-pool) per width -> flatten -> [Dense(dense_units)] -> heads;
  the decoder mirrors it with (transposed conv | upsampling + conv), cropping after each step so odd
  sizes (e.g. 7x7 -> 4x4 -> 7x7) come back exactly.

The encoder maps images to a dict of named heads (``{"z": ...}`` for plain autoencoders,
``{"z_mean": ..., "z_log_var": ...}`` for VAEs). The decoder maps a code to *logits*; models turn
them into images in [0, 1] with a sigmoid, so Bernoulli losses can use the stable logit form.
A conditional model passes ``num_classes``: both networks then take a one-hot ``label`` input.
Hidden activations are named ``hidden_*`` so regularizers can reach every one of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

from keras_ae.errors import ConfigError

ARCHITECTURES = ("mlp", "conv")
DOWNSAMPLING = ("strided", "pool")
UPSAMPLING = ("transpose", "upsample")
DEFAULT_WIDTHS = {"mlp": (512, 256), "conv": (32, 64)}
MAX_WEIGHTS = 500_000_000  # more would not train in memory here (2 GB of float32 weights, 6 GB with Adam)


@dataclass(frozen=True)
class NetworkSpec:
    """What an encoder/decoder pair is built from; stored in every model's config.

    Args:
        input_shape: (H, W, C) of the images.
        latent_dim: size of the code z.
        arch: ``"mlp"`` or ``"conv"``.
        widths: Dense units per layer (mlp) or filters per down-sampling stage (conv);
            ``None`` takes ``DEFAULT_WIDTHS[arch]``.
        dense_units: conv only: a Dense layer of this size between the conv stack and the code
            (0 for none).
        down: conv only: ``"strided"`` (stride-2 conv) or ``"pool"`` (conv + 2x2 max-pool).
        up: conv only: ``"transpose"`` (stride-2 transposed conv) or ``"upsample"`` (2x nearest
            upsampling + conv).
        activation: hidden activation.
        code_activation: activation of the code layer; ``"linear"`` (the default) or e.g.
            ``"relu"`` for codes whose zeros are exact (sparse autoencoders).
    """

    input_shape: tuple[int, int, int]
    latent_dim: int
    arch: str = "mlp"
    widths: tuple[int, ...] | None = None
    dense_units: int = 0
    down: str = "strided"
    up: str = "transpose"
    activation: str = "relu"
    code_activation: str = "linear"

    def __post_init__(self):
        shape = tuple(int(s) for s in self.input_shape)
        object.__setattr__(self, "input_shape", shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ConfigError(f"input_shape must be (H, W, C) with positive sizes, got {shape}")
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}")
        if self.down not in DOWNSAMPLING:
            raise ConfigError(f"unknown down {self.down!r}; choose one of {', '.join(DOWNSAMPLING)}")
        if self.up not in UPSAMPLING:
            raise ConfigError(f"unknown up {self.up!r}; choose one of {', '.join(UPSAMPLING)}")
        if int(self.latent_dim) < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        widths = DEFAULT_WIDTHS[self.arch] if self.widths is None else tuple(int(w) for w in self.widths)
        if not widths or min(widths) < 1:
            raise ConfigError(f"widths must be positive integers, got {self.widths}")
        object.__setattr__(self, "widths", widths)
        object.__setattr__(self, "latent_dim", int(self.latent_dim))
        if int(self.dense_units) < 0:
            raise ConfigError(f"dense_units must be >= 0, got {self.dense_units}")
        weights = self.weight_count()
        if weights > MAX_WEIGHTS:
            raise ConfigError(f"these networks would hold about {weights:.3g} weights ({4 * weights / 2**30:.3g} GiB "
                              f"as float32, three times that while Adam trains), over the {MAX_WEIGHTS:.0e} limit; "
                              "use smaller widths, latent_dim, dense_units or images")
        for option in ("activation", "code_activation"):
            try:
                keras.activations.get(getattr(self, option))
            except ValueError:
                raise ConfigError(f"unknown {option} {getattr(self, option)!r}; use a Keras activation name "
                                  "such as relu, elu, tanh, linear") from None

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    def weight_count(self) -> int:
        """About how many weights the encoder and the decoder hold together (kernels; biases are few)."""
        code = 2 * int(self.latent_dim)  # a VAE's two heads
        if self.arch == "mlp":
            sizes = [self.input_dim, *self.widths]
            return 2 * (sum(a * b for a, b in zip(sizes, sizes[1:])) + self.widths[-1] * code)
        channels = [self.input_shape[2], *self.widths]
        h, w = self.conv_sizes()[-1]
        flat = h * w * self.widths[-1]
        dense = int(self.dense_units)
        head = flat * dense + dense * code if dense else flat * code
        return 2 * (sum(9 * a * b for a, b in zip(channels, channels[1:])) + head)

    def conv_sizes(self) -> list[tuple[int, int]]:
        """Spatial size after each down-sampling stage, starting with the input's."""
        sizes = [self.input_shape[:2]]
        for _ in self.widths:
            h, w = sizes[-1]
            sizes.append((math.ceil(h / 2), math.ceil(w / 2)))
        return sizes


def _dense(x, units: int, spec: NetworkSpec, name: str):
    """Dense + a named activation (``hidden_<name>``), so regularizers can find it."""
    x = layers.Dense(units, name=f"{name}_dense")(x)
    return layers.Activation(spec.activation, name=f"hidden_{name}")(x)


def build_encoder(spec: NetworkSpec, heads: tuple[str, ...] = ("z",), num_classes: int | None = None,
                  name: str = "encoder") -> keras.Model:
    """Images (and a one-hot label when ``num_classes``) -> dict of ``latent_dim``-sized heads."""
    images = keras.Input(spec.input_shape, name="images")
    inputs = [images]
    if spec.arch == "mlp":
        x = layers.Flatten(name="flatten")(images)
        if num_classes:
            label = keras.Input((num_classes,), name="label")
            inputs.append(label)
            x = layers.Concatenate(name="with_label")([x, label])
        for i, width in enumerate(spec.widths):
            x = _dense(x, width, spec, f"enc_{i}")
    else:
        x = images
        for i, filters in enumerate(spec.widths):
            strides = 2 if spec.down == "strided" else 1
            x = layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"enc_{i}_conv")(x)
            x = layers.Activation(spec.activation, name=f"hidden_enc_{i}")(x)
            if spec.down == "pool":
                x = layers.MaxPooling2D(2, padding="same", name=f"enc_{i}_pool")(x)
        x = layers.Flatten(name="flatten")(x)
        if num_classes:
            label = keras.Input((num_classes,), name="label")
            inputs.append(label)
            x = layers.Concatenate(name="with_label")([x, label])
        if spec.dense_units:
            x = _dense(x, spec.dense_units, spec, "enc_dense")
    outputs = {head: layers.Dense(spec.latent_dim, activation=spec.code_activation, name=head)(x) for head in heads}
    return keras.Model(inputs if num_classes else images, outputs, name=name)


def build_decoder(spec: NetworkSpec, num_classes: int | None = None, name: str = "decoder") -> keras.Model:
    """A code ``z`` (and a one-hot label when ``num_classes``) -> logits of shape (H, W, C)."""
    z = keras.Input((spec.latent_dim,), name="z")
    inputs = [z]
    x = z
    if num_classes:
        label = keras.Input((num_classes,), name="label")
        inputs.append(label)
        x = layers.Concatenate(name="with_label")([z, label])
    height, width, channels = spec.input_shape
    if spec.arch == "mlp":
        for i, units in enumerate(reversed(spec.widths)):
            x = _dense(x, units, spec, f"dec_{i}")
        x = layers.Dense(spec.input_dim, name="logits_dense")(x)
        logits = layers.Reshape(spec.input_shape, name="logits")(x)
    else:
        sizes = spec.conv_sizes()
        if spec.dense_units:
            x = _dense(x, spec.dense_units, spec, "dec_dense")
        (h, w), top = sizes[-1], spec.widths[-1]
        x = _dense(x, h * w * top, spec, "dec_project")
        x = layers.Reshape((h, w, top), name="dec_reshape")(x)
        stages = list(zip(reversed(spec.widths), reversed(sizes[:-1])))
        for i, (filters, (target_h, target_w)) in enumerate(stages):
            if spec.up == "transpose":
                x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"dec_{i}_conv")(x)
            else:
                x = layers.UpSampling2D(2, name=f"dec_{i}_up")(x)
                x = layers.Conv2D(filters, 3, padding="same", name=f"dec_{i}_conv")(x)
            x = layers.Activation(spec.activation, name=f"hidden_dec_{i}")(x)
            extra_h, extra_w = x.shape[1] - target_h, x.shape[2] - target_w
            if extra_h or extra_w:
                x = layers.Cropping2D(((0, extra_h), (0, extra_w)), name=f"dec_{i}_crop")(x)
        # A stride-1 "same" transposed convolution is a 3x3 convolution with a flipped kernel: the same
        # function and parameters as Conv2D, but oneDNN computes its gradients for few output channels
        # far faster (BENCHMARKS.md, "What the profile showed").
        logits = layers.Conv2DTranspose(channels, 3, padding="same", name="logits")(x)
    return keras.Model(inputs if num_classes else z, logits, name=name)


def hidden_activations(network: keras.Model) -> list:
    """The symbolic outputs of every ``hidden_*`` activation layer of a network."""
    return [layer.output for layer in network.layers if layer.name.startswith("hidden_")]
