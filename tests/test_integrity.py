"""Run-folder integrity: nothing lost, nothing lied about, one line for every refusal.

The red-team cases of the 0.3 robustness pass: a failed ``--overwrite``, paths read from a backup, two
processes on one run, resume with other flags, a kill between the history and the backup, a full disk,
Ctrl-C, flags that are invalid or do not apply, edited run folders. Kills happen at an exact step
(a patched call raises there), never after a sleep.
"""

import csv
import errno
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from keras_ae import callbacks, data, distribute, evaluate, export, runs, train
from keras_ae.errors import ConfigError, DataError

QUICK = ["--dataset", "digits", "--limit", "400", "--latent-dim", "4", "--widths", "16", "--batch-size", "64",
         "--seed", "3", "--no-evaluate", "--no-export", "--verbose", "0"]


def train_cli(run_dir, *flags) -> int:
    return train.main([*QUICK, "--run-dir", str(run_dir), *map(str, flags)])


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(("I0000", "W0000"))]
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err[-20:]
    return errors[0]


def epochs_of(run_dir) -> list[int]:
    with (run_dir / "history.csv").open() as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def snapshot(run_dir) -> dict:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}


@pytest.fixture
def trained(tmp_path, capsys):
    """A finished two-epoch run (latent 4)."""
    run_dir = tmp_path / "R"
    assert train_cli(run_dir, "--epochs", "2") == 0
    capsys.readouterr()
    return run_dir


def stop_at(monkeypatch, target, name, when, error=KeyboardInterrupt):
    """Patch ``target.name`` to raise ``error`` at the call where ``when(call number, *args)`` is true."""
    original, calls = getattr(target, name), []

    def patched(*args, **kwargs):
        calls.append(args)
        if when(len(calls), *args):
            raise error() if isinstance(error, type) else error
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, patched)
    return calls


# ---------------------------------------------------------------- --overwrite: the old run stays whole


def test_a_failed_overwrite_leaves_the_old_run_whole_and_the_command_can_be_rerun(trained, capsys):
    before = snapshot(trained)
    assert train_cli(trained, "--epochs", "3", "--latent-dim", "3", "--learning-rate", "1e12", "--overwrite") == 2
    line = one_error_line(capsys)
    assert "non-finite" in line and f"{trained} is unchanged" in line
    assert snapshot(trained) == before  # config, model, history and results all of the old run
    assert evaluate.main([str(trained), "--no-figures"]) == 0
    assert json.loads((trained / "report.json").read_text())["code"]["shape"] == [4]
    assert train_cli(trained, "--epochs", "3", "--latent-dim", "3", "--overwrite") == 0  # rerun: replaced
    assert runs.read_config(trained)["model_config"]["latent_dim"] == 3 and epochs_of(trained) == [0, 1, 2]
    assert not (trained / "report.json").exists()  # the old run's report went with it
    assert sorted(p.name for p in trained.parent.iterdir()) == [".R.lock", "R"]


def test_a_kill_between_the_two_renames_of_an_overwrite_is_recovered(trained, monkeypatch, capsys):
    new = str(runs.staging(trained))
    stop_at(monkeypatch, runs.os, "replace", lambda n, src, dst: str(src) == new)  # the old run is renamed away
    assert train_cli(trained, "--epochs", "1", "--latent-dim", "3", "--overwrite") == 130
    assert not trained.exists()  # killed with the old run renamed away and the new one not yet in place
    monkeypatch.undo()
    capsys.readouterr()
    assert train_cli(trained, "--epochs", "1") == 2  # the next command puts the complete new run in place
    assert "already holds a trained model" in one_error_line(capsys)
    assert runs.read_config(trained)["model_config"]["latent_dim"] == 3
    assert sorted(p.name for p in trained.parent.iterdir()) == [".R.lock", "R"]


def test_the_replacement_keeps_the_folders_the_other_workers_of_the_same_training_write(tmp_path):
    (tmp_path / "R" / "worker-1").mkdir(parents=True)
    (tmp_path / "R" / "worker-1" / "model.keras").write_text("worker 1")
    (tmp_path / "R" / "model.keras").write_text("old chief")
    new = runs.staging(tmp_path / "R")
    new.mkdir()
    (new / "model.keras").write_text("new chief")
    runs.replace(tmp_path / "R", new)
    assert (tmp_path / "R" / "model.keras").read_text() == "new chief"
    assert (tmp_path / "R" / "worker-1" / "model.keras").read_text() == "worker 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["R"]


def test_a_full_disk_during_an_overwrite_loses_nothing(trained, monkeypatch, capsys):
    import keras

    before = snapshot(trained)
    full = OSError(errno.ENOSPC, "No space left on device", str(trained / "model.keras"))
    stop_at(monkeypatch, keras.Model, "save", lambda n, *args: True, error=full)
    assert train_cli(trained, "--epochs", "2", "--overwrite") == 2
    assert "No space left on device" in one_error_line(capsys)
    assert snapshot(trained) == before


def test_a_run_dir_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    assert train_cli(tmp_path / "file", "--epochs", "1") == 2
    assert "is a file, not a folder" in one_error_line(capsys)
    assert (tmp_path / "file").read_text() == "mine"


# ---------------------------------------------------------------- backup, history and resume


def test_ctrl_c_ends_in_one_line_and_the_same_command_resumes(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "R"
    stop_at(monkeypatch, callbacks.Backup, "on_epoch_end", lambda n, self, epoch, logs=None: epoch == 2)
    assert train_cli(run_dir, "--epochs", "4") == 130
    assert "interrupted; the same command resumes" in one_error_line(capsys)
    monkeypatch.undo()
    assert epochs_of(run_dir) == [0, 1]
    assert train_cli(run_dir, "--epochs", "4") == 0
    assert epochs_of(run_dir) == [0, 1, 2, 3]
    assert json.loads((run_dir / "results.json").read_text())["epochs_run"] == 4


def test_a_checkpoint_that_no_longer_fits_the_model_is_refused_in_one_line_on_resume(tmp_path, monkeypatch, capsys):
    """A backup whose weights have another layout (one of an older keras_ae's layers) under the same config."""
    for name, widths in (("R", "16"), ("other", "8")):
        stop_at(monkeypatch, callbacks.Backup, "on_epoch_end", lambda n, self, epoch, logs=None: epoch == 1)
        assert train_cli(tmp_path / name, "--epochs", "3", "--widths", widths) == 130
        monkeypatch.undo()
    state = json.loads((tmp_path / "R" / train.BACKUP / "state.json").read_text())
    other = json.loads((tmp_path / "other" / train.BACKUP / "state.json").read_text())
    checkpoint = tmp_path / "R" / train.BACKUP / state["file"]
    checkpoint.write_bytes((tmp_path / "other" / train.BACKUP / other["file"]).read_bytes())
    capsys.readouterr()
    assert train_cli(tmp_path / "R", "--epochs", "3", "--widths", "16") == 2
    assert f"{checkpoint}: this checkpoint does not fit the model" in one_error_line(capsys)


def minute_clock(monkeypatch):
    """Backup's clock made to advance one minute per reading (the start of training and each epoch's end)."""
    from types import SimpleNamespace

    readings = iter(range(0, 60 * 1000, 60))
    monkeypatch.setattr(callbacks, "time", SimpleNamespace(monotonic=lambda: next(readings)))


def test_a_time_budget_ends_at_the_last_epoch_that_fits_and_counts_across_a_kill(tmp_path, monkeypatch, capsys):
    """Epochs of one minute and a budget of 3.5: the fourth would end past it, so three run, killed or not."""
    minute_clock(monkeypatch)
    whole = tmp_path / "whole"
    assert train_cli(whole, "--time-budget", "3.5") == 0  # (no --epochs: the budget alone ends it)
    assert epochs_of(whole) == [0, 1, 2]
    results = json.loads((whole / "results.json").read_text())
    assert results["epochs_run"] == 3 and results["training_seconds"] == 180
    options = json.loads((whole / "config.json").read_text())["options"]
    assert options["time_budget"] == 3.5 and options["epochs"] is None  # (as given: the budget, not a cap of epochs)

    for name, where in (("killed", callbacks.Backup), ("spent", callbacks.TimeBudget)):
        # killed in the third epoch's end, before its checkpoint (Backup) or after it (TimeBudget): the two
        # minutes before the kill count, and a run whose budget is spent trains no more on resume
        run_dir = tmp_path / name
        minute_clock(monkeypatch)
        stop_at(monkeypatch, where, "on_epoch_end", lambda n, self, epoch, logs=None: epoch == 2)
        assert train_cli(run_dir, "--time-budget", "3.5", "--epochs", "8") == 130
        monkeypatch.undo()
        minute_clock(monkeypatch)
        assert train_cli(run_dir, "--time-budget", "3.5", "--epochs", "8") == 0
        assert epochs_of(run_dir) == [0, 1, 2], name
        assert json.loads((run_dir / "results.json").read_text())["training_seconds"] == 180


def test_a_cosine_schedule_needs_epochs_beside_a_time_budget(tmp_path, capsys):
    assert train_cli(tmp_path / "R", "--time-budget", "5", "--lr-schedule", "cosine") == 2
    assert "give --epochs with --time-budget" in one_error_line(capsys)


def test_a_cosine_learning_rate_resumed_after_a_kill_ends_at_zero(tmp_path, monkeypatch, capsys):
    """The schedule runs over the steps of all epochs; the backup carries its step count across a resume."""
    import keras

    run_dir = tmp_path / "R"
    stop_at(monkeypatch, callbacks.Backup, "on_epoch_end", lambda n, self, epoch, logs=None: epoch == 2)
    assert train_cli(run_dir, "--epochs", "4", "--lr-schedule", "cosine", "--learning-rate", "0.002") == 130
    monkeypatch.undo()
    half = keras.models.load_model(run_dir / "backup" / "epoch-0002.keras").optimizer
    steps_per_epoch = int(half.iterations.numpy()) // 2
    assert steps_per_epoch == 7  # --limit 400 training images at 64 a batch
    assert float(half.learning_rate.numpy()) == pytest.approx(0.001, rel=1e-4)  # half-way down the cosine
    assert train_cli(run_dir, "--epochs", "4", "--lr-schedule", "cosine", "--learning-rate", "0.002") == 0
    done = keras.models.load_model(run_dir / "model.keras").optimizer
    assert int(done.iterations.numpy()) == 4 * steps_per_epoch
    assert float(done.learning_rate.numpy()) == pytest.approx(0.0, abs=1e-9)
    assert json.loads((run_dir / "config.json").read_text())["options"]["lr_schedule"] == "cosine"


def test_a_kill_between_the_history_and_the_checkpoint_keeps_them_in_step(tmp_path, monkeypatch):
    """The history row of an epoch is written first; a kill before its checkpoint is cut back on resume."""
    import keras

    run_dir = tmp_path / "R"
    stop_at(monkeypatch, keras.Model, "save", lambda n, *args: n == 2)  # saving epoch 2's checkpoint
    assert train_cli(run_dir, "--epochs", "3") == 130
    assert epochs_of(run_dir) == [0, 1]  # written ahead of the checkpoint that never came
    assert json.loads((run_dir / "backup" / "state.json").read_text())["epoch"] == 1
    monkeypatch.undo()
    assert train_cli(run_dir, "--epochs", "3") == 0
    assert epochs_of(run_dir) == [0, 1, 2]
    assert json.loads((run_dir / "results.json").read_text())["epochs_run"] == 3


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """A run folder killed after its first epoch: a backup and no model."""
    run_dir = tmp_path / "R"
    stop_at(monkeypatch, callbacks.Backup, "on_epoch_end", lambda n, self, epoch, logs=None: epoch == 1)
    assert train_cli(run_dir, "--epochs", "3") == 130
    monkeypatch.undo()
    return run_dir


@pytest.mark.parametrize("flags, differs", [
    (["--latent-dim", "8"], "latent_dim 4 -> 8"),
    (["--model", "denoising"], "model class 'Autoencoder' -> 'DenoisingAutoencoder'"),
])
def test_a_resume_with_other_model_flags_is_refused_naming_them(flags, differs, interrupted, capsys):
    capsys.readouterr()
    assert train_cli(interrupted, "--epochs", "3", *flags) == 2
    line = one_error_line(capsys)
    assert differs in line and "backup to resume from is of another model" in line
    assert epochs_of(interrupted) == [0]  # untouched


@pytest.mark.parametrize("state, message", [
    ({"epoch": 1, "file": "../../victim/model.keras"}, "leaves"),
    ({"epoch": 1, "file": "/etc/passwd"}, "leaves"),
    ({"epoch": "one"}, "not a backup state"),
    ("{oops", "unreadable"),
])
def test_a_backup_state_cannot_name_a_file_outside_its_folder(state, message, interrupted, capsys):
    victim = interrupted.parent.parent / "victim" / "model.keras"
    victim.parent.mkdir(exist_ok=True)
    victim.write_bytes(b"another run's model")
    (interrupted / "backup" / "state.json").write_text(state if isinstance(state, str) else json.dumps(state))
    capsys.readouterr()
    assert train_cli(interrupted, "--epochs", "3") == 2
    assert message in one_error_line(capsys)
    assert victim.read_bytes() == b"another run's model"


# ---------------------------------------------------------------- one process per run folder


def test_a_second_process_on_a_run_folder_is_refused_and_the_lock_dies_with_its_holder(trained, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom keras_ae import runs\nwith runs.locked(sys.argv[1]):\n"
        "    print('held', flush=True)\n    time.sleep(600)"), str(trained)], stdout=subprocess.PIPE, text=True,
        cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = snapshot(trained)
        assert train_cli(trained, "--epochs", "1", "--overwrite") == 2
        assert "another keras_ae process is training, evaluating or exporting this run" in one_error_line(capsys)
        assert evaluate.main([str(trained)]) == 2
        assert "another keras_ae process" in one_error_line(capsys)
        assert export.main([str(trained), "--out", str(tmp_path / "export")]) == 2
        assert "another keras_ae process" in one_error_line(capsys)
        assert snapshot(trained) == before
    finally:
        holder.kill()
        holder.wait()
    assert evaluate.main([str(trained), "--no-figures"]) == 0  # the lock died with its process


# ---------------------------------------------------------------- edited run folders


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["options"].update(model="vae"), "--model 'vae' -> 'ae'"),
    (lambda c: c["data"].update(image_shape=[28, 28, 1]), "data image_shape [28, 28, 1] -> [8, 8, 1]"),
    (lambda c: c["model_config"].update(latent_dim=9), "latent_dim 9 -> 4"),
])
def test_a_run_config_that_does_not_describe_its_model_is_refused(edit, message, trained, capsys):
    config = json.loads((trained / "config.json").read_text())
    edit(config)
    (trained / "config.json").write_text(json.dumps(config))
    assert evaluate.main([str(trained)]) == 2
    line = one_error_line(capsys)
    assert "does not describe this model" in line and message in line


# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed: expected an integer in [0, 4294967295], got -1"),
    (["--learning-rate", "nan"], "--learning-rate: expected a finite number"),
    (["--learning-rate", "inf"], "--learning-rate: expected a finite number"),
    (["--learning-rate", "0"], "--learning-rate: expected a number > 0"),
    (["--early-stopping", "-1"], "--early-stopping: expected an integer >= 0"),
    (["--worker-timeout", "-1"], "--worker-timeout: expected a number > 0"),
    (["--worker-timeout", "nan"], "--worker-timeout: expected a finite number"),
    (["--time-budget", "0"], "--time-budget: expected a number > 0"),
    (["--time-budget", "-5"], "--time-budget: expected a number > 0"),
    (["--time-budget", "nan"], "--time-budget: expected a finite number"),
    (["--time-budget", "inf"], "--time-budget: expected a finite number"),
    (["--quick-eval", "--test-images", "100"], "the quick evaluation sets its own sample"),
    (["--quick-eval", "--likelihood-samples", "50"], "the quick evaluation sets its own sample"),
])
def test_invalid_flags_are_refused_by_the_parser(flags, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        train_cli(tmp_path / "R", *flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "R").exists()


@pytest.mark.parametrize("flags, message", [
    (["--output-std", "0.1"], "--output-std applies only with --reconstruction gaussian"),
    (["--model", "vae", "--output-std", "0.1"], "--output-std applies only with --reconstruction gaussian"),
    (["--model", "sparse", "--target-rate", "0.1"], "--target-rate applies only with --sparsity kl"),
    (["--dense-units", "8"], "--dense-units applies only with --arch conv"),
    (["--down", "pool"], "--down applies only with --arch conv"),
    (["--up", "upsample"], "--up applies only with --arch conv"),
    (["--widths", "99999999999"], "weights ("),
])
def test_flags_that_do_not_apply_or_cannot_fit_are_refused_in_one_line(flags, message, tmp_path, capsys):
    assert train_cli(tmp_path / "R", "--epochs", "1", *flags) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / "R" / "model.keras").exists()


@pytest.mark.parametrize("workers, message", [
    (["127.0.0.1:2222", "127.0.0.1:2222"], "lists 127.0.0.1:2222 for more than one task"),
    (["127.0.0.1:2222", "127.0.0.1:²"], "must be a list of 'host:port' strings"),
])
def test_tf_config_with_one_address_twice_or_a_non_ascii_port_is_refused(workers, message):
    config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 0}}
    with pytest.raises(ConfigError, match=message):
        distribute.read_tf_config(json.dumps(config))


def test_a_port_held_by_something_else_than_a_worker_does_not_count_as_a_worker():
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, says nothing: not a keras_ae worker nor a gRPC server
    own = socket.socket()
    own.bind(("127.0.0.1", 0))
    own_port = own.getsockname()[1]
    own.close()
    config = {"cluster": {"worker": [f"127.0.0.1:{own_port}", f"127.0.0.1:{silent.getsockname()[1]}"]},
              "task": {"type": "worker", "index": 0}}
    try:
        with pytest.raises(ConfigError, match="no worker answers at 127.0.0.1"):
            distribute.wait_for_workers(config, 1.5)
    finally:
        silent.close()


# ---------------------------------------------------------------- evaluation steps that do not apply


def test_a_labelled_dataset_of_one_class_is_evaluated_with_the_probe_skipped(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "one.npz", x_train=rng.integers(0, 255, (300, 8, 8), dtype=np.uint8),
             y_train=np.zeros(300, np.int64), x_test=rng.integers(0, 255, (60, 8, 8), dtype=np.uint8),
             y_test=np.zeros(60, np.int64))
    run_dir = tmp_path / "R"
    assert train.main(["--dataset", str(tmp_path / "one.npz"), "--latent-dim", "2", "--widths", "8", "--epochs", "1",
                       "--verbose", "0", "--no-export", "--run-dir", str(run_dir)]) == 0
    report = json.loads((run_dir / "report.json").read_text())
    assert "probe" not in report["metrics"]
    assert any("latent probe skipped" in note and "one class" in note for note in report["notes"])


# ---------------------------------------------------------------- files a source must not skip in silence


def test_an_image_folder_with_a_looping_link_or_an_empty_class_is_refused(tmp_path):
    from PIL import Image

    for label in ("a", "b", "c"):
        (tmp_path / "classes" / label).mkdir(parents=True)
    for label in ("a", "c"):
        for i in range(3):
            Image.fromarray(np.full((8, 8), 9 * i, np.uint8)).save(tmp_path / "classes" / label / f"{i}.png")
    with pytest.raises(DataError, match=r"classes/b: a class folder without images: it would shift the labels"):
        data.load(str(tmp_path / "classes"))
    (tmp_path / "classes" / "b").rmdir()
    os.symlink("loop.png", tmp_path / "classes" / "a" / "loop.png")
    with pytest.raises(DataError, match=r"loop.png: not a readable file"):
        data.load(str(tmp_path / "classes"))


def test_a_gzip_corrupted_in_the_middle_is_called_corrupt_and_a_bomb_is_read_only_as_far_as_its_header(tmp_path):
    from keras_ae.data import idx

    images = np.random.default_rng(0).integers(0, 255, (50, 28, 28), dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape)
    blob = bytearray(gzip.compress(header + images.tobytes() + bytes(200_000)))  # trailing data to inflate
    blob[len(blob) // 2] ^= 0xFF
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match="corrupt gzip"):
        idx._read_idx(path, 3)
    path.write_bytes(gzip.compress(header + images.tobytes() + bytes(50 << 20)))  # 50 MB of zeros after the data
    read = []
    original = idx._read_at_most
    idx._read_at_most = lambda f, size: read.append(size) or original(f, size)
    try:
        with pytest.raises(DataError, match="trailing bytes"):
            idx._read_idx(path, 3)
    finally:
        idx._read_at_most = original
    assert read == [images.size + 1]  # never more than the header's size (and one byte to see the rest)
