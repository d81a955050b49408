"""Training on TensorFlow's distribution strategies, resuming after SIGKILL, and their bad inputs."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import REPO
from keras_ae import distribute, export, generate
from keras_ae.distribute import read_tf_config
from keras_ae.errors import ConfigError
from keras_ae.models import VAE

QUICK = ["--dataset", "digits", "--latent-dim", "4", "--widths", "32", "--batch-size", "64", "--seed", "3",
         "--no-evaluate", "--no-export", "--verbose", "0"]


def command(*flags):
    return [sys.executable, str(REPO / "train.py"), *flags]


def losses(run_dir, column="loss"):
    with (run_dir / "history.csv").open() as f:
        return [float(row[column]) for row in csv.DictReader(f)]


@pytest.mark.slow
def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    runs = {}
    for name, extra in {"one": [], "two": ["--strategy", "mirrored", "--cpu-devices", "2"]}.items():
        result = subprocess.run(command(*QUICK, "--epochs", "3", "--run-dir", str(tmp_path / name), *extra),
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        runs[name] = tmp_path / name
    assert "2 replica(s)" in result.stderr
    for column in ("loss", "val_loss"):
        np.testing.assert_allclose(losses(runs["two"], column), losses(runs["one"], column), rtol=1e-4)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _worker_env(workers, index):
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
    return env


@pytest.mark.slow
def test_two_workers_on_localhost_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    flags = command(*QUICK, "--model", "vae", "--epochs", "2", "--limit", "512", "--strategy", "multi_worker",
                    "--run-dir", str(tmp_path / "run"))
    processes = [subprocess.Popen(flags, env=_worker_env(workers, i), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-3000:]
    chief = keras.models.load_model(tmp_path / "run" / "model.keras")
    other = keras.models.load_model(tmp_path / "run" / "worker-1" / "model.keras")
    for a, b in zip(chief.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert losses(tmp_path / "run") == losses(tmp_path / "run" / "worker-1")


@pytest.mark.slow
def test_two_workers_read_their_own_shards_of_an_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(160):
        (tmp_path / "folder").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(tmp_path / "folder" / f"{i:03d}.png")
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    flags = command("--dataset", str(tmp_path / "folder"), "--latent-dim", "4", "--widths", "16", "--batch-size", "32",
                    "--epochs", "2", "--strategy", "multi_worker", "--cache", "none", "--no-evaluate", "--no-export",
                    "--verbose", "0", "--run-dir", str(tmp_path / "run"))
    processes = [subprocess.Popen(flags, env=_worker_env(workers, i), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    for index, (process, (_, err)) in enumerate(zip(processes, outputs)):
        assert process.returncode == 0, err[-3000:]
        assert f"worker {index} of 2 reads shard {index} of 2 (64 of the 128 training images)" in err
    chief = keras.models.load_model(tmp_path / "run" / "model.keras")
    other = keras.models.load_model(tmp_path / "run" / "worker-1" / "model.keras")
    for a, b in zip(chief.encoder.get_weights(), other.encoder.get_weights()):  # trained as one model
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_an_unreachable_worker_ends_with_a_clear_message_in_bounded_time(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]  # nobody will listen on the second
    start = time.monotonic()
    result = subprocess.run(command(*QUICK, "--epochs", "1", "--strategy", "multi_worker", "--worker-timeout", "5",
                                    "--run-dir", str(tmp_path / "run")), env=_worker_env(workers, 0),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "not reachable within 5 s" in result.stderr
    assert time.monotonic() - start < 90


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_epoch_and_finishes(tmp_path):
    run_dir = tmp_path / "run"
    flags = command(*QUICK, "--epochs", "8", "--batch-size", "8", "--run-dir", str(run_dir))
    process = subprocess.Popen(flags, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = run_dir / "backup" / "state.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (state.exists() and json.loads(state.read_text())["epoch"] >= 2):
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = json.loads(state.read_text())["epoch"]
    assert 2 <= done < 8 and not (run_dir / "model.keras").exists()

    result = subprocess.run(flags, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {run_dir} from the end of epoch {done} of 8" in result.stderr
    epochs = [int(e) for e in losses(run_dir, "epoch")]
    assert epochs == list(range(8))  # every epoch once: the resumed ones appended, none repeated
    assert not (run_dir / "backup").exists()
    keras.models.load_model(run_dir / "model.keras")


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_without_gpu_or_bfloat16_warns_and_stays_float32(monkeypatch, restore_policy, caplog):
    monkeypatch.setattr(distribute, "cpu_has_bfloat16", lambda: False)
    assert distribute.use_mixed_precision() == "float32"
    assert "needs a GPU or a CPU with bfloat16" in caplog.text
    assert keras.mixed_precision.global_policy().name == "float32"


def test_mixed_precision_on_a_bfloat16_cpu_is_mixed_bfloat16(monkeypatch, restore_policy):
    monkeypatch.setattr(distribute, "cpu_has_bfloat16", lambda: True)
    assert distribute.use_mixed_precision() == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"


@pytest.mark.slow
@pytest.mark.skipif(not distribute.cpu_has_bfloat16(), reason="this CPU has no native bfloat16")
def test_a_bfloat16_run_trains_and_exports(tmp_path):
    run_dir = tmp_path / "r"
    flags = ["--model", "vae", "--arch", "conv", "--widths", "8,16", "--dataset", "digits", "--latent-dim", "4",
             "--batch-size", "64", "--epochs", "2", "--mixed-precision", "--no-evaluate", "--run-dir", str(run_dir),
             "--export-root", str(tmp_path / "export")]
    result = subprocess.run(command(*flags), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "precision mixed_bfloat16" in result.stderr
    assert losses(run_dir)[-1] < losses(run_dir)[0]
    model = keras.models.load_model(run_dir / "model.keras")
    assert all(w.dtype == "float32" for w in model.get_weights())
    export_dir = tmp_path / "export" / "r"  # TFLite has no bfloat16 kernels: this failed before
    z = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    served = generate.load_decoder(export_dir, "tflite", "float32")(z)
    assert np.abs(served - np.asarray(model.decode(z))).max() < 1e-5


def test_exports_compute_in_float32_whatever_the_training_policy(restore_policy):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = VAE((8, 8, 1), latent_dim=4, arch="conv", widths=(8, 16))
    keras.mixed_precision.set_global_policy("float32")
    exact = VAE((8, 8, 1), latent_dim=4, arch="conv", widths=(8, 16))
    exact.set_weights(mixed.get_weights())
    z = np.random.default_rng(0).standard_normal((16, 4)).astype("float32")
    assert 0 < np.abs(np.asarray(mixed.decode(z)) - np.asarray(exact.decode(z))).max() < 0.05
    with export.computing_in_float32(mixed):
        assert np.array_equal(np.asarray(mixed.decode(z)), np.asarray(exact.decode(z)))
    assert "bfloat16" in {layer.dtype_policy.compute_dtype for layer in mixed.decoder.layers}  # as it was


@pytest.mark.parametrize("text,needle", [
    (None, "needs TF_CONFIG"),
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}', "task.index"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "not a role"),
    ("[]", "'cluster' object"),
])
def test_malformed_tf_config_is_refused(text, needle):
    with pytest.raises(ConfigError, match=needle):
        read_tf_config(text)


@pytest.mark.slow
def test_unknown_strategy_is_refused_by_the_cli(tmp_path):
    result = subprocess.run(command("--strategy", "tpu", "--run-dir", str(tmp_path)), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2 and "invalid choice: 'tpu'" in result.stderr
