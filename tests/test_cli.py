"""train.py end to end in a subprocess, as a user runs it."""

import csv
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import REPO


def train(*flags, cwd=REPO):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *flags], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = train("--model", "ae", "--arch", "conv", "--dataset", "digits", "--latent-dim", "8",
                   "--epochs", "3", "--batch-size", "64", "--limit", "400", "--run-dir", str(folder), "--verbose", "0",
                   "--export-root", str(folder.parent / "export"))
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.slow
def test_run_folder_holds_everything_a_user_needs(run_dir):
    for name in ("config.json", "model.keras", "history.csv", "results.json", "reconstructions.png"):
        assert (run_dir / name).stat().st_size > 0, name
    figure = np.asarray(Image.open(run_dir / "reconstructions.png").convert("L"), np.float32)
    assert figure.shape[1] > 300 and figure.std() > 10  # two rows of ten digits, not a blank canvas
    assert any((run_dir / "logs").rglob("events.out.tfevents.*"))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_config"]["arch"] == "conv" and config["data"]["image_shape"] == [8, 8, 1]
    assert config["data"]["load"] == {"name": "digits", "data_dir": None, "validation_fraction": 0.1,
                                      "test_fraction": 0.1, "seed": 0, "image_size": None, "limit": 400,
                                      "download": True, "skip_corrupt": False}
    assert config["data"]["fingerprint"]["sizes"] == {"train": 400, "validation": 180, "test": 180}
    assert (run_dir / "report.md").is_file()  # evaluated at the end of training
    export = run_dir.parent / "export" / "run"  # and exported to the export root: version 1 for a first export
    assert (export / "decoder" / "1" / "saved_model.pb").is_file() and (export / "1" / "decoder.tflite").is_file()
    assert json.loads((run_dir / "exports.json").read_text())[0]["version"] == 1


@pytest.mark.slow
def test_validation_runs_every_epoch_and_the_loss_falls(run_dir):
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert len(rows) == 3
    val = [float(row["val_loss"]) for row in rows]
    assert val[-1] < val[0]


@pytest.mark.slow
def test_saved_model_reloads_and_matches_the_reported_test_error(run_dir):
    from keras_ae import data, losses

    model = keras.models.load_model(run_dir / "model.keras")
    results = json.loads((run_dir / "results.json").read_text())
    x, _ = data.load("digits", seed=0).arrays("test")
    error = float(np.mean(losses.squared_error(x, model.reconstruct(x))))
    assert error == pytest.approx(results["test"]["squared_error"], rel=1e-4)


@pytest.mark.slow
def test_an_existing_run_is_not_overwritten_silently(run_dir):
    before = (run_dir / "model.keras").read_bytes()
    result = train("--dataset", "digits", "--epochs", "1", "--run-dir", str(run_dir))
    assert result.returncode == 2 and "already holds a trained model" in result.stderr
    assert (run_dir / "model.keras").read_bytes() == before


@pytest.mark.slow
@pytest.mark.parametrize("flags,needle", [
    (["--dataset", "no_such_dataset"], "no_such_dataset"),
    (["--dataset", "/nonexistent/folder/"], "/nonexistent/folder"),
    (["--model", "gan"], "invalid choice: 'gan'"),
    (["--epochs", "0"], "--epochs"),
    (["--learning-rate", "-1"], "--learning-rate"),
    (["--batch-size", "100000"], "100000"),
    (["--model", "sparse", "--penalty-weight", "-1"], "penalty_weight (lambda) must be a finite number >= 0"),
    (["--model", "contractive", "--penalty-weight", "abc"], "--penalty-weight: expected a number, got 'abc'"),
    (["--model", "sparse", "--sparsity", "l0"], "invalid choice: 'l0'"),
    (["--model", "denoising", "--noise", "mask", "--noise-level", "1.5"], "in [0, 1], got 1.5"),
    (["--model", "ae", "--noise", "mask"], "--noise does not apply to --model ae"),
    (["--model", "contractive", "--jacobian", "exact", "--image-size", "128x128", "--latent-dim", "100",
      "--batch-size", "256"], "use --jacobian projection"),
])
def test_bad_input_gives_one_clear_line(flags, needle, tmp_path):
    result = train("--epochs", "1", "--run-dir", str(tmp_path / "run"), *flags)  # the last flag given wins
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_help_explains_every_flag():
    from keras_ae.train import build_parser

    parser = build_parser()
    undocumented = [action.dest for action in parser._actions if not action.help]
    assert undocumented == []
    result = train("--help")
    assert result.returncode == 0 and "--latent-dim" in result.stdout and "--early-stopping" in result.stdout


def test_non_finite_loss_stops_with_a_message_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    from keras import ops

    from keras_ae.errors import KerasAEError
    from keras_ae.models import MODELS, Autoencoder
    from keras_ae.train import build_parser, run

    @keras.saving.register_keras_serializable(package="keras_ae_tests")
    class BlowsUpInEpochTwo(Autoencoder):
        def compute_losses(self, x, y=None, training=False):
            terms = super().compute_losses(x, y, training)
            poison = ops.where(self.optimizer.iterations > 4, float("nan"), 0.0)  # 4 steps per epoch
            return {name: value + poison for name, value in terms.items()}

    monkeypatch.setitem(MODELS, "explodes", BlowsUpInEpochTwo)
    args = build_parser().parse_args(["--model", "explodes", "--limit", "400", "--batch-size", "100", "--epochs", "5",
                                      "--run-dir", str(tmp_path / "run"), "--verbose", "0"])
    with pytest.raises(KerasAEError, match=r"non-finite in epoch 2; the last good model \(epoch 1\)"):
        run(args)
    assert not (tmp_path / "run" / "model.keras").exists()
    kept = keras.models.load_model(tmp_path / "run" / "backup" / "epoch-0001.keras")
    assert np.all(np.isfinite(kept.get_weights()[0]))


@pytest.mark.slow
def test_conditional_vae_needs_a_labelled_dataset(tmp_path):
    np.savez(tmp_path / "unlabelled.npz", x=np.random.default_rng(0).integers(0, 255, (50, 8, 8), dtype=np.uint8))
    result = train("--model", "cvae", "--dataset", str(tmp_path / "unlabelled.npz"), "--epochs", "1",
                   "--batch-size", "8", "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 2 and "needs labels" in result.stderr and "unlabelled.npz" in result.stderr
