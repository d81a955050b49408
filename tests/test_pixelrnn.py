"""The PixelRNN is a density: each output sees only the pixels and channels before it (both cells, both
directions of the BiLSTM, grey and colour, odd sizes), it sums to one, it round-trips, and its export
scores as Keras does."""

import itertools
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import option_flags
from keras_ae import serving, train
from keras_ae.errors import ConfigError
from keras_ae.export import export_model
from keras_ae.models import ConditionalPixelRNN, PixelRNN, model_class
from keras_ae.models import pixelrnn as pixelrnn_module
from keras_ae.models.base import in_batches

EVERY_4x4 = np.array(list(itertools.product([0.0, 1.0], repeat=16)), "float32").reshape(-1, 4, 4, 1)


def dependence(model, shape) -> np.ndarray:
    """|d output_i / d input_j| over raster positions (row, column, channel): a (P, P) matrix."""
    x = tf.constant(np.random.default_rng(0).random((1, *shape)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model.density_logits(x)
        if logits.shape.rank == 5:  # a 256-way softmax per channel: one random projection of its logits
            logits = tf.reduce_sum(logits * tf.random.stateless_normal(logits.shape, (1, 2)), axis=-1)
        flat = tf.reshape(logits, (-1,))
    positions = int(np.prod(shape))
    return np.abs(tf.reshape(tape.jacobian(flat, x), (positions, positions)).numpy())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", ["row", "diagonal"])
def test_each_output_depends_only_on_the_pixels_and_channels_before_it(cell, channels):
    model = PixelRNN((5, 7, channels), cell=cell, hidden=6, recurrent_layers=2,
                     likelihood="bernoulli" if channels == 1 else "categorical")
    jacobian = dependence(model, (5, 7, channels))
    assert np.triu(jacobian).max() == 0  # nothing at or after its own position, in raster and channel order
    assert np.tril(jacobian, -1).max() > 0  # and it does see the past
    if channels == 3:  # G sees R of its pixel, B sees R and G (somewhere: a random init may close one pixel's path)
        pixel = np.arange(0, jacobian.shape[0], 3)
        assert jacobian[pixel + 1, pixel].max() > 0 and jacobian[pixel + 2, pixel].max() > 0
        assert jacobian[pixel + 2, pixel + 1].max() > 0


def test_the_bilstm_sees_above_right_through_its_right_to_left_direction_shifted_down(monkeypatch):
    """The right-to-left direction brings the pixels above and to the right (the forward one cannot); without
    the shift down it also brings the pixels to the right in the same row, which the test catches."""
    model = PixelRNN((5, 7, 1), cell="diagonal", hidden=4, recurrent_layers=1)
    jacobian = dependence(model, (5, 7, 1))
    at = lambda row, col: row * 7 + col  # noqa: E731
    assert jacobian[at(2, 3), at(1, 6)] > 0  # above, three to the right: only the backward direction reaches it
    assert jacobian[at(2, 3), at(2, 2)] > 0  # left, same row: the forward direction
    monkeypatch.setattr(pixelrnn_module, "shift_down", lambda x: x)  # the published mistake
    broken = PixelRNN((5, 7, 1), cell="diagonal", hidden=4, recurrent_layers=1)
    assert np.triu(dependence(broken, (5, 7, 1))).max() > 0  # it sees its own row's right side


@pytest.mark.parametrize("cell", ["row", "diagonal"])
def test_exp_log_prob_sums_to_one_over_all_65536_binary_4x4_images(cell):
    model = PixelRNN((4, 4, 1), cell=cell, hidden=4, recurrent_layers=2)
    total = np.exp(in_batches(model.log_prob, EVERY_4x4, batch_size=8192).astype("float64")).sum()
    assert abs(total - 1.0) < 1e-4


def test_it_learns_and_round_trips_and_its_export_scores_as_keras_does(tmp_path):
    keras.utils.set_random_seed(0)
    patterns = (np.random.default_rng(0).random((2, 4, 4, 1)) < 0.5).astype("float32")
    x = patterns[np.r_[np.zeros(600, int), np.ones(200, int)]]
    model = PixelRNN((4, 4, 1), cell="diagonal", hidden=8, recurrent_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(x, epochs=15, batch_size=64, verbose=0)
    drawn = model.sample(200, seed=1)
    which = [(drawn == p).all(axis=(1, 2, 3)) for p in patterns]
    assert np.mean(which[0] | which[1]) > 0.8 and np.mean(which[0]) > np.mean(which[1])
    model.save(tmp_path / "rnn.keras")
    loaded = keras.models.load_model(tmp_path / "rnn.keras")
    np.testing.assert_allclose(np.asarray(loaded.log_prob(EVERY_4x4[:64])), np.asarray(model.log_prob(EVERY_4x4[:64])),
                               atol=1e-6)
    version = export_model(model, tmp_path / "export", "rnn")
    saved = tf.saved_model.load(str(tmp_path / "export" / "rnn" / "density" / "1"))
    np.testing.assert_allclose(saved.signatures["log_prob"](images=tf.constant(EVERY_4x4[:64]))["log_prob"].numpy(),
                               np.asarray(model.log_prob(EVERY_4x4[:64])), atol=1e-4)
    from keras_ae import generate

    for backend in serving.BACKENDS:  # the TFLite step file converts: the recurrence is unrolled
        sample, _ = generate.load_density(version.parent, backend)
        assert np.array_equal(sample(20, seed=1), drawn[:20]), backend


@pytest.mark.parametrize("options, message", [
    ({"cell": "column"}, "unknown cell"),
    ({"hidden": 0}, "--hidden must be >= 1"),
    ({"recurrent_layers": 0}, "--layers and --hidden must be >= 1"),
    ({"input_shape": (4, 4, 5), "likelihood": "categorical", "hidden": 8}, "at most 4 channels"),
    ({"input_shape": (1, 6, 1)}, "at least 2x2"),
])
def test_bad_options_are_refused_in_one_line(options, message):
    with pytest.raises(ConfigError, match=message):
        PixelRNN(**{"input_shape": (4, 4, 1), **options})


@pytest.mark.parametrize("flags, message", [(["--cell", "column"], "invalid choice: 'column'"),
                                            (["--layers", "0"], "expected an integer >= 1"),
                                            (["--hidden", "0"], "expected an integer >= 1")])
def test_the_command_line_refuses_bad_flags_in_one_line(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--model", "pixelrnn", *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("model, flags, rate", [("pixelrnn", [], 3e-3), ("pixelcnn", [], 1e-3),
                                                 ("pixelrnn", ["--learning-rate", "0.02"], 0.02)])
def test_each_model_trains_at_its_own_default_learning_rate_and_the_run_records_it(tmp_path, model, flags, rate):
    np.savez(tmp_path / "tiny.npz", x=np.random.default_rng(0).integers(0, 2, (40, 4, 4), np.uint8) * 255)
    assert train.main(["--model", model, *option_flags(model_class(model)), "--dataset", str(tmp_path / "tiny.npz"),
                       "--epochs", "1", "--batch-size", "8", "--no-evaluate", "--no-export", "--run-dir",
                       str(tmp_path / "r"), *flags]) == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["options"]["learning_rate"] == rate
    trained = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert float(trained.optimizer.learning_rate.numpy()) == pytest.approx(rate)
    given = train.parse_args(["--model", model, "--learning-rate", str(rate)])
    named = train.default_run_dir(given, model_class(model))
    assert ("learning-rate" in named.name) == bool(flags)  # (a model's own default rate, given, is no difference)


def test_the_conditional_model_needs_labels(tmp_path, capsys):
    np.savez(tmp_path / "plain.npz", x=np.zeros((20, 4, 4), np.uint8))
    assert train.main(["--model", "cpixelrnn", "--dataset", str(tmp_path / "plain.npz"), "--epochs", "1",
                       "--run-dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "needs labels" in error[0]
    with pytest.raises(ConfigError, match="needs labels"):
        ConditionalPixelRNN((4, 4, 1))


@pytest.mark.parametrize("cell", ["row", "diagonal"])
def test_a_long_run_keeps_every_batch_loss_finite(cell):
    """igul222's reference PixelRNN met NaNs in long runs: ~340 steps on real digits at a brisk rate stay finite."""
    from sklearn.datasets import load_digits

    keras.utils.set_random_seed(0)
    digits = (load_digits().images[..., None] > 8).astype("float32")
    losses = []
    model = PixelRNN((8, 8, 1), cell=cell, hidden=8, recurrent_layers=1)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(digits, epochs=3, batch_size=16, verbose=0, callbacks=[keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: losses.append(float(logs["loss"])))])
    assert len(losses) == 3 * 113 and np.isfinite(losses).all()
    assert np.mean(losses[-50:]) < 0.8 * np.mean(losses[:50])
