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
def trained(tmp_path_factory):
    """(run folder, completed process) of a conv AE trained, evaluated and exported by train.py."""
    folder = tmp_path_factory.mktemp("cli") / "run"
    result = train("--model", "ae", "--arch", "conv", "--dataset", "digits", "--latent-dim", "8",
                   "--epochs", "3", "--batch-size", "64", "--limit", "400", "--run-dir", str(folder),
                   "--export-root", str(folder.parent / "export"))
    assert result.returncode == 0, result.stderr
    return folder, result


@pytest.fixture(scope="module")
def run_dir(trained):
    return trained[0]


NOISE = ("I0000", "W0000", "E0000", "WARNING: All log messages", "oneDNN", "cuInit", "cuda", "Assets written",
         "UserWarning", "Function `serve`", "tensorflow", "absl", "Estimated count", "\x1b[")


@pytest.mark.slow
def test_the_console_shows_keras_ae_and_keras_lines_only_and_tensorflow_logs_go_to_the_run_folder(trained):
    folder, result = trained
    noise = [line for line in (result.stdout + result.stderr).splitlines() if any(n in line for n in NOISE)]
    assert noise == []
    assert "\x1b" not in result.stdout  # not a terminal: one line per epoch, no progress bar
    assert result.stdout.count("Epoch ") == 3 and "val_loss" in result.stdout
    assert result.stderr.splitlines()[-1] == f"run folder: {folder}"
    log = (folder / "logs" / "tensorflow.log").read_text()
    assert "oneDNN" in log or "I0000" in log  # what TensorFlow printed is kept, not lost


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
                                      "download": True, "skip_corrupt": False,
                                      "attributes": None, "partition": None}
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
    (["--augment-shift", "8"], "a shift of 8 pixels leaves nothing of its 8x8 images"),
    (["--model", "contractive", "--jacobian", "exact", "--image-size", "128x128", "--latent-dim", "100",
      "--batch-size", "256"], "use --jacobian projection"),
])
def test_bad_input_gives_one_clear_line(flags, needle, tmp_path, capsys):
    """In this process (a subprocess each would spend most of its time importing TensorFlow); the test
    after it checks the same in a process of its own."""
    from keras_ae import train as train_lib

    try:
        code = train_lib.main(["--epochs", "1", "--run-dir", str(tmp_path / "run"), *flags])  # the last flag wins
    except SystemExit as stop:  # argparse's refusals
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_bad_input_in_a_process_of_its_own_exits_2_with_one_line(tmp_path):
    result = train("--epochs", "1", "--run-dir", str(tmp_path / "run"), "--dataset", "no_such_dataset")
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2 and len(errors) == 1 and "no_such_dataset" in errors[0]
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


# ---------------------------------------------------------------- configs, run names, the entry point


def test_a_config_file_gives_the_flags_and_the_command_line_overrides_it(tmp_path):
    from keras_ae import train as train_lib

    (tmp_path / "vae.toml").write_text('model = "vae"\narch = "conv"\nlatent-dim = 3\nwidths = [16, 32]\n'
                                       'image_size = [8, 8]\nno_export = true\nbeta = 2.0\nepochs = 7\n')
    args = train_lib.parse_args(["--config", str(tmp_path / "vae.toml"), "--epochs", "2"])
    assert (args.model, args.arch, args.latent_dim, args.widths, args.image_size) == ("vae", "conv", 3, (16, 32), (8, 8))
    assert (args.beta, args.no_export, args.epochs) == (2.0, True, 2)  # --epochs 2 beats the file's 7
    assert args.command == f"train.py --config {tmp_path / 'vae.toml'} --epochs 2"
    (tmp_path / "bad.json").write_text('{"latent_dim": 3, "colour": "red"}')
    with pytest.raises(SystemExit) as stop:
        train_lib.parse_args(["--config", str(tmp_path / "bad.json")])
    assert stop.value.code == 2
    (tmp_path / "bad.json").write_text('{"latent_dim": -3}')
    with pytest.raises(SystemExit):  # each value goes through its flag's own check
        train_lib.parse_args(["--config", str(tmp_path / "bad.json")])


@pytest.mark.slow
def test_a_run_config_json_trains_that_run_again(trained):
    from keras_ae import train as train_lib

    folder, _ = trained
    config = json.loads((folder / "config.json").read_text())
    assert config["options"]["command"].startswith("train.py --model ae --arch conv --dataset digits")
    again = train_lib.parse_args(["--config", str(folder / "config.json")])
    for flag in ("model", "arch", "dataset", "latent_dim", "epochs", "batch_size", "limit", "seed", "learning_rate"):
        assert getattr(again, flag) == config["options"][flag], flag
    assert again.run_dir is None and not again.overwrite  # a new run folder unless asked


def test_run_folders_are_named_by_what_differs_from_the_defaults():
    from keras_ae import train as train_lib
    from keras_ae.models import model_class

    def name(*flags):
        args = train_lib.parse_args(list(flags))
        return str(train_lib.default_run_dir(args, model_class(args.model)))

    assert name() == "runs/ae-mlp-digits"
    assert name("--model", "vae", "--arch", "conv", "--dataset", "mnist", "--latent-dim", "16") == "runs/vae-conv-mnist"
    assert name("--widths", "512,256") == "runs/ae-mlp-digits"  # the default widths of mlp
    assert name("--latent-dim", "3") == "runs/ae-mlp-digits-latent-dim=3"
    assert name("--model", "cvae", "--beta", "4", "--epochs", "5") == "runs/cvae-mlp-digits-beta=4-epochs=5"
    assert name("--augment-shift", "1") == "runs/ae-mlp-digits-augment-shift=1"
    long = name("--widths", ",".join(["512"] * 40))
    assert len(long) < 40 and long.startswith("runs/ae-mlp-digits-")


def test_one_console_entry_point_runs_every_command(tmp_path):
    import shutil

    script = shutil.which("keras-ae", path=str(REPO / ".venv" / "bin")) or shutil.which("keras-ae")
    command = [script] if script else [sys.executable, "-m", "keras_ae.cli"]
    for name in ("train", "generate"):  # (each imports TensorFlow: two stand for the five)
        result = subprocess.run([*command, name, "--help"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0 and result.stdout.startswith(f"usage: keras-ae {name}"), result.stderr[-500:]
    result = subprocess.run([*command, "fly"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown command 'fly'" in result.stderr


def _summaries(folder) -> dict:
    """tag -> number of values in the TensorBoard event files of ``folder``."""
    import tensorflow as tf

    tags = {}
    for path in folder.glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


@pytest.mark.slow
def test_tensorboard_gets_epoch_images_test_metrics_hyperparameters_and_the_codes(run_dir):
    logs = run_dir / "logs"
    images = _summaries(logs / "images")
    assert images["reconstructions (validation images over them)"] == 3  # one per epoch
    test = _summaries(logs / "test")
    assert {"test_squared_error", "test_psnr", "_hparams_/session_start_info"} <= set(test)
    projector = logs / "projector"
    assert 'tensor_name: "codes/.ATTRIBUTES/VARIABLE_VALUE"' in (projector / "projector_config.pbtxt").read_text()
    labels = (projector / "metadata.tsv").read_text().split()
    assert len(labels) == 180 and set(labels) <= set("0123456789")  # the test split, with its classes
    sprite = Image.open(projector / "sprite.png")
    assert sprite.size == (14 * 8, 14 * 8)  # 180 test images of 8x8 in a 14 x 14 grid
