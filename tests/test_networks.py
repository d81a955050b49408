"""Encoders and decoders adapt to any (H, W, C), odd sizes included, for every variant."""

import numpy as np
import pytest

from keras_ae.errors import ConfigError
from keras_ae.networks import NetworkSpec, build_decoder, build_encoder, hidden_activations

SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3), (64, 64, 3), (7, 5, 3), (1, 9, 1)]
VARIANTS = [("mlp", "strided", "transpose"), ("conv", "strided", "transpose"), ("conv", "pool", "upsample")]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("arch,down,up", VARIANTS)
def test_decoder_returns_the_encoder_input_shape(shape, arch, down, up):
    spec = NetworkSpec(shape, latent_dim=3, arch=arch, widths=(8, 16), down=down, up=up)
    encoder, decoder = build_encoder(spec), build_decoder(spec)
    codes = encoder(np.random.rand(2, *shape).astype("float32"))["z"]
    assert codes.shape == (2, 3)
    assert decoder(codes).shape == (2, *shape)


def test_conv_encoder_downsamples_with_the_chosen_method():
    spec = NetworkSpec((28, 28, 1), latent_dim=2, arch="conv", widths=(4, 8))
    assert spec.conv_sizes() == [(28, 28), (14, 14), (7, 7)]
    pooled = build_encoder(NetworkSpec((28, 28, 1), 2, "conv", (4, 8), down="pool"))
    assert sum("pool" in layer.name for layer in pooled.layers) == 2
    strided = build_encoder(spec)
    assert [layer.strides for layer in strided.layers if layer.name.endswith("_conv")] == [(2, 2), (2, 2)]


def test_heads_and_label_inputs():
    spec = NetworkSpec((8, 8, 1), latent_dim=4, arch="conv")
    encoder = build_encoder(spec, heads=("z_mean", "z_log_var"), num_classes=10)
    out = encoder([np.zeros((2, 8, 8, 1), "float32"), np.eye(10, dtype="float32")[:2]])
    assert set(out) == {"z_mean", "z_log_var"}
    decoder = build_decoder(spec, num_classes=10)
    assert decoder([np.zeros((2, 4), "float32"), np.eye(10, dtype="float32")[:2]]).shape == (2, 8, 8, 1)


def test_every_hidden_activation_is_reachable():
    spec = NetworkSpec((8, 8, 1), latent_dim=4, arch="mlp", widths=(32, 16))
    assert len(hidden_activations(build_encoder(spec))) == 2
    assert len(hidden_activations(build_decoder(spec))) == 2


@pytest.mark.parametrize("kwargs,needle", [
    ({"arch": "resnet"}, "unknown arch"),
    ({"latent_dim": 0}, "latent_dim"),
    ({"widths": (8, -1)}, "widths"),
    ({"down": "avg"}, "unknown down"),
    ({"input_shape": (8, 8)}, "input_shape"),
    ({"activation": "relux"}, "unknown activation 'relux'"),
])
def test_bad_specs_are_refused_with_a_clear_message(kwargs, needle):
    options = {"input_shape": (8, 8, 1), "latent_dim": 2, **kwargs}
    with pytest.raises(ConfigError, match=needle):
        NetworkSpec(**options)
