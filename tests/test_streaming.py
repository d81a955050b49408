"""Data at scale, on small generated folders: streaming, seeded splits, fingerprints, caches, shards, bad files.

Each test would fail with 0.2's in-memory loader (which decoded every image at load, kept no
fingerprint and had no cache); the scale itself is measured in benchmarks/data_scale.py.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from keras_ae import data, runs
from keras_ae.data import cache as caching
from keras_ae.data import resolve
from keras_ae.errors import DataError


def image_folder(root: Path, count: int = 60, classes: int = 2, size: int = 6) -> Path:
    """``count`` PNGs per class whose first pixel encodes the image's number (0..count*classes-1)."""
    for c in range(classes):
        for i in range(count):
            number = c * count + i
            image = np.full((size, size), 9, np.uint8)
            image[0, 0], image[0, 1] = number % 256, number // 256
            (root / f"class{c}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / f"class{c}" / f"{i:04d}.png")
    return root


def numbers(images: np.ndarray) -> list[int]:
    pixels = np.round(images[:, 0, :2, 0] * 255).astype(int)
    return sorted((pixels[:, 0] + 256 * pixels[:, 1]).tolist())


@pytest.fixture
def folder(tmp_path):
    return image_folder(tmp_path / "folder")


def test_a_folder_is_listed_not_decoded_at_load(tmp_path):
    root = image_folder(tmp_path / "f", count=20)
    for path in sorted(root.rglob("*.png"))[1:]:  # every file but the first is garbage
        path.write_bytes(b"\x89PNG but nothing else")
    splits = data.load(str(root))  # fine: only the first image was decoded
    assert len(splits.train) + len(splits.validation) + len(splits.test) == 40
    with pytest.raises(DataError, match=r"\.png: unreadable image"):
        splits.arrays("train")


def test_folder_splits_are_seeded_disjoint_and_complete(folder):
    first = [numbers(data.load(str(folder), seed=3).arrays(s)[0]) for s in data.SPLITS]
    again = [numbers(data.load(str(folder), seed=3).arrays(s)[0]) for s in data.SPLITS]
    other = [numbers(data.load(str(folder), seed=4).arrays(s)[0]) for s in data.SPLITS]
    assert first == again and first != other
    assert [len(n) for n in first] == [96, 12, 12]
    assert sorted(sum(first, [])) == list(range(120))  # no overlap, nothing lost


def test_the_fingerprint_follows_membership_and_file_changes(folder):
    before = data.load(str(folder)).fingerprint()
    assert data.load(str(folder)).fingerprint() == before
    assert data.load(str(folder), seed=1).fingerprint()["splits"] != before["splits"]
    changed = folder / "class0" / "0003.png"
    Image.fromarray(np.full((6, 6), 200, np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))  # a rewrite: new size or time
    assert data.load(str(folder)).fingerprint()["splits"] != before["splits"]


def test_a_disk_cache_is_written_by_a_full_pass_used_after_and_keyed_by_the_data(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    splits = data.load(str(folder), cache="disk", cache_dir=str(cache_dir))
    pipeline = splits.pipeline("train", 16, shuffle=False)
    next(iter(pipeline))  # a pass cut short leaves no cache
    assert not list(cache_dir.rglob("cache.index"))
    first = np.concatenate([np.asarray(x) for x, _ in pipeline])
    (index,) = cache_dir.rglob("cache.index")  # the full pass wrote it
    assert np.array_equal(np.concatenate([np.asarray(x) for x, _ in splits.pipeline("train", 16, shuffle=False)]),
                          first)

    changed = folder / "class1" / "0005.png"  # a file changes: another key, never the old cache
    Image.fromarray(np.full((6, 6), 250, np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = data.load(str(folder), cache="disk", cache_dir=str(cache_dir))
    images = np.concatenate([np.asarray(x) for x, _ in again.pipeline("train", 16, shuffle=False)])
    assert len(list(cache_dir.iterdir())) == 2
    member = np.flatnonzero(again.train.paths == str(changed))
    if member.size:  # the new content, not what the first cache holds
        assert np.allclose(images[member[0]], 250 / 255)


def test_what_a_killed_cache_writer_left_is_never_used(folder, tmp_path):
    cache_dir = tmp_path / "cache"
    splits = data.load(str(folder), cache="disk", cache_dir=str(cache_dir))
    where = Path(caching.disk_cache(caching.cache_root(str(cache_dir)), splits.train.fingerprint(), None))
    for fd, _ in caching._HELD.values():  # as if a new process: the killed writer's lock died with it
        os.close(fd)
    caching._HELD.clear()
    (where.parent / "cache_0.lockfile").write_text("Created at: 0")
    (where.parent / "cache_0.data-00000-of-00001.tempstate123").write_bytes(b"half a cache")
    expected = numbers(splits.arrays("train")[0])
    images = np.concatenate([np.asarray(x) for x, _ in splits.pipeline("train", 16, shuffle=False)])
    assert numbers(images) == expected and (where.parent / "cache.index").is_file()
    assert not list(where.parent.glob("*.tempstate*")) and not list(where.parent.glob("*.lockfile"))


def test_auto_caches_small_splits_in_memory_and_large_ones_on_disk(folder, tmp_path, monkeypatch):
    splits = data.load(str(folder), cache_dir=str(tmp_path / "cache"))
    assert splits._cache_of(splits.train, None) == ""  # 96 images of 6x6: memory
    monkeypatch.setattr(caching, "MEMORY_CACHE_BYTES", 100)
    assert splits._cache_of(splits.train, None).startswith(str(tmp_path / "cache"))
    assert data.load(str(folder), cache="none")._cache_of(splits.train, None) is None
    with pytest.raises(DataError, match="unknown cache policy 'ram'; choose one of auto, memory, disk, none"):
        data.load(str(folder), cache="ram")


def test_the_shards_of_two_workers_are_disjoint_and_cover_the_split(folder):
    splits = data.load(str(folder), cache="none")
    shards = [numbers(np.concatenate([np.asarray(x) for x, _ in splits.pipeline("train", 8, shard=(2, i))]))
              for i in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == numbers(splits.arrays("train")[0])
    assert abs(len(shards[0]) - len(shards[1])) <= 1


def test_an_uncached_folder_is_reshuffled_each_epoch_without_a_buffer_of_images(folder):
    pipeline = data.load(str(folder), cache="none").pipeline("train", 96, seed=0)
    epochs = [np.asarray(next(iter(pipeline))[0]) for _ in range(2)]
    assert numbers(epochs[0]) == numbers(epochs[1]) and not np.array_equal(epochs[0], epochs[1])


def test_skip_corrupt_leaves_out_the_unreadable_files_and_says_which(folder):
    bad = [folder / "class0" / "0007.png", folder / "class1" / "0030.png"]
    bad[0].write_bytes(bad[0].read_bytes()[:45])  # a header, then nothing: fails only when decoded
    bad[1].write_bytes(b"GIF89a" + bytes(30))
    with pytest.raises(DataError, match=r"class0/0007.png: unreadable image \(2 unreadable file\(s\)|"
                                        r"class1/0030.png: unreadable image"):
        data.load(str(folder), validation_fraction=0, test_fraction=0).arrays("train")
    splits = data.load(str(folder), skip_corrupt=True, validation_fraction=0, test_fraction=0)
    assert sorted(splits.skipped) == sorted(map(str, bad)) and len(splits.train) == 118
    assert len(splits.arrays("train")[0]) == 118


def train(*flags, cwd=REPO, timeout=300):
    return subprocess.run([sys.executable, str(REPO / "train.py"), *flags, "--verbose", "0"], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_corrupt_file_met_in_training_ends_in_one_line_naming_it(folder, tmp_path):
    path = folder / "class1" / "0013.png"
    path.write_bytes(path.read_bytes()[:45])
    result = train("--dataset", str(folder), "--epochs", "1", "--batch-size", "16", "--run-dir", str(tmp_path / "r"),
                   "--no-evaluate", "--no-export", "--cache", "none")
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "class1/0013.png: unreadable image" in last and "--skip-corrupt" in last
    assert "Traceback" not in result.stderr
    from keras_ae import train as train_lib

    train_lib.run(train_lib.build_parser().parse_args(
        ["--dataset", str(folder), "--epochs", "1", "--batch-size", "16", "--run-dir", str(tmp_path / "s"),
         "--no-evaluate", "--no-export", "--skip-corrupt", "--verbose", "0"]))
    skipped = json.loads((tmp_path / "s" / "config.json").read_text())["data"]["skipped_files"]
    assert skipped == {"count": 1, "first": [str(path)]}


@pytest.mark.slow
def test_evaluate_and_resume_refuse_data_that_changed(folder, tmp_path, monkeypatch):
    from keras_ae import callbacks
    from keras_ae import train as train_lib

    run_dir = tmp_path / "run"
    flags = ["--dataset", str(folder), "--epochs", "3", "--batch-size", "16", "--run-dir", str(run_dir),
             "--no-evaluate", "--no-export", "--verbose", "0"]
    save = callbacks.Backup.on_epoch_end

    class Killed(Exception):
        pass

    def die_after_the_first_epoch(self, epoch, logs=None):
        save(self, epoch, logs)
        raise Killed()

    monkeypatch.setattr(callbacks.Backup, "on_epoch_end", die_after_the_first_epoch)
    with pytest.raises(Killed):
        train_lib.run(train_lib.build_parser().parse_args(flags))
    monkeypatch.setattr(callbacks.Backup, "on_epoch_end", save)
    for c in range(2):  # one more image per class: other data
        Image.fromarray(np.zeros((6, 6), np.uint8)).save(folder / f"class{c}" / "0060.png")
    with pytest.raises(DataError, match=r"not the data this run was trained on \(sizes"):
        train_lib.run(train_lib.build_parser().parse_args(flags))
    (folder / "class0" / "0060.png").unlink()
    (folder / "class1" / "0060.png").unlink()
    train_lib.run(train_lib.build_parser().parse_args(flags))  # the same data again: resumes and finishes
    assert (run_dir / "model.keras").is_file()
    assert (run_dir / "history.csv").read_text().splitlines()[-1].startswith("2,")

    changed = folder / "class0" / "0001.png"
    Image.fromarray(np.full((6, 6), 100, np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    with pytest.raises(DataError, match="train split membership|validation split membership|test split membership"):
        runs.load_run(run_dir)


@pytest.mark.slow
def test_steps_per_epoch_ends_epochs_early_and_validates_as_many_batches(tmp_path):
    import keras

    result = train("--dataset", "digits", "--epochs", "3", "--steps-per-epoch", "2", "--batch-size", "32",
                   "--run-dir", str(tmp_path / "r"), "--no-evaluate", "--no-export")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len((tmp_path / "r" / "history.csv").read_text().splitlines()) == 4
    model = keras.models.load_model(tmp_path / "r" / "model.keras")
    assert int(model.optimizer.iterations.numpy()) == 6


def test_a_tfds_name_not_prepared_fails_fast_offline(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.setattr(resolve, "registry_reachable", lambda: False)  # the registry does not answer
    downloads = []
    real_load = tfds.load
    monkeypatch.setattr(tfds, "load", lambda name, **kw: downloads.append(kw.get("download")) or real_load(name, **kw))
    start = time.monotonic()
    with pytest.raises(DataError) as caught:
        data.load("fashion_mnist")
    assert time.monotonic() - start < 10 and True not in downloads  # no download attempt
    message = str(caught.value)
    assert "storage.googleapis.com:443 did not answer" in message
    assert "$KERAS_AE_DATA/fashion_mnist" in message and "--data-dir" in message and "TFDS" in message


def test_celeb_a_streams_with_its_attributes_and_the_literature_crop(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=40):
        splits = data.load("celeb_a", image_size=(16, 16), download=False)
    assert splits.source == "tfds:celeb_a" and splits.image_shape == (16, 16, 3) and not splits.train.in_memory
    assert len(splits.attributes) == 40 and "Smiling" in splits.attributes and splits.train.crop == 148
    x, smiling = splits.sample("test", attribute="Smiling")
    assert x.shape == (40, 16, 16, 3) and set(np.unique(smiling)) <= {0, 1}
    with pytest.raises(DataError, match="attribute 'Smilng': dataset 'celeb_a' has no such binary attribute"):
        splits.sample("test", attribute="Smilng")
    with pytest.raises(DataError, match="'digits' has no such binary attribute; it has none"):
        data.load("digits").check_attribute("Smiling")


@pytest.mark.slow
def test_the_arithmetic_figure_adds_the_asked_attribute_of_the_data(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_ae import train as train_lib

    flags = ["--dataset", "celeb_a", "--image-size", "8x8", "--no-download", "--epochs", "1", "--batch-size", "16",
             "--latent-dim", "4", "--widths", "16", "--no-export", "--verbose", "0"]
    rows = {}
    with tfds.testing.mock_data(num_examples=48):
        for name, extra in {"plain": [], "smiling": ["--attribute", "Smiling"]}.items():
            run_dir = train_lib.run(train_lib.build_parser().parse_args([*flags, "--run-dir", str(tmp_path / name),
                                                                         *extra]))
            rows[name] = Image.open(run_dir / "arithmetic.png").size[1]
            assert not [n for n in json.loads((run_dir / "report.json").read_text())["notes"] if "arithmetic" in n]
    assert rows["smiling"] > rows["plain"]  # the "+ Smiling" rows: z + k s for images without the attribute
