"""The base model: uniform contract, documented loss reduction, .keras round trip, real learning."""

import keras
import numpy as np
import pytest

from keras_ae import losses
from keras_ae.errors import ConfigError
from keras_ae.models import Autoencoder, model_class

rng = np.random.default_rng(0)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_keras_round_trip_gives_identical_reconstructions(arch, tmp_path):
    model = Autoencoder((8, 8, 1), latent_dim=3, arch=arch, widths=(8, 16))
    model.compile(optimizer="adam")
    x = rng.random((32, 8, 8, 1)).astype("float32")
    model.fit(x, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded) is Autoencoder and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    np.testing.assert_array_equal(loaded.encode(x), model.encode(x))


@pytest.mark.parametrize("reconstruction", ["mse", "bce"])
def test_reconstruction_is_summed_over_pixels_and_averaged_over_the_batch(reconstruction):
    model = Autoencoder((6, 5, 2), latent_dim=2, reconstruction=reconstruction)
    x = rng.random((7, 6, 5, 2)).astype("float32")
    terms = model.compute_losses(x)
    logits = model.decode_logits(model.encode(x))
    per_image = (losses.squared_error(x, model.decode(model.encode(x))) if reconstruction == "mse"
                 else losses.bernoulli_nll(x, logits))
    np.testing.assert_allclose(float(terms["reconstruction"]), np.mean(per_image), rtol=1e-5)
    assert float(terms["loss"]) == float(terms["reconstruction"])


def test_test_step_reports_the_same_terms_as_compute_losses():
    model = Autoencoder((8, 8, 1), latent_dim=2)
    model.compile(optimizer="adam")
    x = rng.random((16, 8, 8, 1)).astype("float32")
    reported = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert set(reported) == {"loss", "reconstruction"}
    np.testing.assert_allclose(reported["loss"], float(model.compute_losses(x)["loss"]), rtol=1e-5)


def test_training_on_real_digits_lowers_the_validation_loss():
    from keras_ae import data

    splits = data.load("digits", seed=0)
    model = Autoencoder(splits.image_shape, latent_dim=8, arch="mlp", widths=(64,))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    validation = splits.pipeline("validation", 64)
    before = model.evaluate(validation, verbose=0, return_dict=True)["loss"]
    model.fit(splits.pipeline("train", 64, seed=0), epochs=5, verbose=0)
    after = model.evaluate(validation, verbose=0, return_dict=True)["loss"]
    assert after < 0.6 * before


def test_unknown_names_are_refused():
    with pytest.raises(ConfigError, match="unknown model 'gan'"):
        model_class("gan")
    with pytest.raises(ConfigError, match="unknown reconstruction loss"):
        Autoencoder((8, 8, 1), reconstruction="l1")


def test_training_on_real_mnist_lowers_the_validation_loss(mnist_small):
    from keras_ae import data

    splits = data.load(str(mnist_small), seed=0, limit=1500)
    model = Autoencoder(splits.image_shape, latent_dim=16, arch="conv", widths=(8, 16))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    history = model.fit(splits.pipeline("train", 100, seed=0), validation_data=splits.pipeline("validation", 100),
                        epochs=4, verbose=0)
    validation = history.history["val_reconstruction"]
    assert validation[-1] < 0.8 * validation[0]


def test_fit_takes_uint8_images_as_the_data_layer_scales_them_and_refuses_other_integers():
    import keras

    import keras_ae
    from keras_ae import data
    from keras_ae.errors import ConfigError

    x = data.load("digits").arrays("train")[0][:256]
    histories = []
    for images in ((x * 255).round().astype(np.uint8), np.round(x * 255).astype(np.float32) / 255):
        keras.utils.set_random_seed(0)
        model = keras_ae.models.Autoencoder(input_shape=x.shape[1:], latent_dim=4, widths=(16,))
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        histories.append(model.fit(images, epochs=2, batch_size=64, shuffle=False, verbose=0).history["loss"])
    np.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    with pytest.raises(ConfigError, match="uint8 in \\[0, 255\\], got dtype int16"):
        model.fit((x * 255).astype(np.int16), epochs=1, verbose=0)


def test_compile_refuses_a_loss_or_metrics_it_would_ignore():
    import keras_ae
    from keras_ae.errors import ConfigError

    model = keras_ae.models.VAE(input_shape=(8, 8, 1), latent_dim=2, widths=(8,))
    with pytest.raises(ConfigError, match="compile takes no loss, metrics: .* reports loss, reconstruction, kl"):
        model.compile(loss="mse", metrics=["mae"])
    model.compile(optimizer="adam")  # the optimizer and Keras's other options stay
