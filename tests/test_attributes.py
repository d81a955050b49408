"""Attributes and a partition from files beside a folder of images: CelebA's two lists, or a CSV of one's own."""

import gzip
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from keras_ae import data, train
from keras_ae.errors import DataError

IMAGES = 200


@pytest.fixture(scope="module")
def celeba_like(mnist_small, tmp_path_factory):
    """make_big_folder's JPEGs (file i shows digit i % 4 of mnist-small's training set) as img_align_celeba/,
    with CelebA's two lists beside it: attributes 'is_a_7' and 'odd' from the digits' labels, and a partition."""
    root = tmp_path_factory.mktemp("celeba")
    folder = root / "img_align_celeba"
    subprocess.run([sys.executable, str(REPO.parent / "shared" / "tools" / "make_big_folder.py"), str(folder),
                    str(IMAGES), "16"], check=True)
    with gzip.open(mnist_small / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read()[8:], np.uint8)[np.arange(IMAGES) % 4]
    values = np.stack([labels == 7, labels % 2 == 1], axis=1)
    rows = [f"{i:06d}.jpg " + " ".join("1" if v else "-1" for v in row) for i, row in enumerate(values)]
    (root / "list_attr_celeba.txt").write_text(f"{IMAGES}\nis_a_7 odd\n" + "\n".join(rows) + "\n")
    parts = np.repeat([0, 1, 2], [160, 20, 20])
    (root / "list_eval_partition.txt").write_text("".join(f"{i:06d}.jpg {p}\n" for i, p in enumerate(parts)))
    return folder, values.astype(np.int64), parts


def test_celeba_s_lists_beside_the_folder_give_its_attributes_and_its_splits(celeba_like):
    folder, values, parts = celeba_like
    splits = data.load(str(folder))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (160, 20, 20)
    assert splits.attributes == ("is_a_7", "odd")
    for split, part in (("train", 0), ("validation", 1), ("test", 2)):
        index = np.array([int(path.rsplit("/", 1)[1][:6]) for path in splits.split(split).paths])
        assert (parts[index] == part).all()  # each image in its part
        _, odd = splits.split(split).to_arrays(attribute="odd")
        assert np.array_equal(odd, values[index, 1])  # with its own row's value
    assert splits.sample("test", 20, attribute="odd")[1].sum() == values[parts == 2, 1].sum()


def test_a_csv_of_one_s_own_gives_the_attributes_and_without_a_partition_the_split_is_carved(tmp_path):
    from PIL import Image

    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(30):
        Image.fromarray(np.full((8, 8), 8 * i, np.uint8)).save(folder / f"shade{i:02d}.png")
    rows = [f"shade{i:02d}.png,{int(i < 10)},{1 if i >= 20 else -1}\n" for i in reversed(range(30))]  # any order
    # as a spreadsheet saves it: a byte-order mark, and a blank line
    (tmp_path / "mine.csv").write_text("\ufefffile,dark,light\n" + "".join(rows[:3]) + "\n" + "".join(rows[3:]),
                                       encoding="utf-8")
    splits = data.load(str(folder), attributes=str(tmp_path / "mine.csv"), validation_fraction=0.2,
                       test_fraction=0.2)
    assert splits.attributes == ("dark", "light")
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (18, 6, 6)
    for split in ("train", "validation", "test"):
        images, dark = splits.split(split).to_arrays(attribute="dark")
        shade = np.round(images[:, 0, 0, 0] * 255 / 8).astype(int)
        assert np.array_equal(dark, (shade < 10).astype(int))
        assert np.array_equal(splits.split(split).to_arrays(attribute="light")[1], (shade >= 20).astype(int))


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows + ["999999.jpg 1 -1"], "1 rows name files that are not in"),
    (lambda rows: rows[:-1], "1 images of"),
    (lambda rows: rows[:5] + ["000005.jpg 1 maybe"] + rows[6:], ":8: expected a file name and 2 values"),
    (lambda rows: rows[:5] + ["000005.jpg 1"] + rows[6:], ":8: expected a file name and 2 values"),
])
def test_bad_attribute_rows_are_refused_in_one_line_naming_the_problem(edit, message, celeba_like, tmp_path):
    folder, _, _ = celeba_like
    rows = (folder.parent / "list_attr_celeba.txt").read_text().splitlines()[2:]
    rows = edit(rows)
    bad = tmp_path / "attributes.txt"
    bad.write_text(f"{len(rows)}\nis_a_7 odd\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=message):
        data.load(str(folder), attributes=str(bad))


def test_a_bad_csv_row_is_refused_with_its_line_number_blank_lines_counted(celeba_like, tmp_path):
    folder, _, _ = celeba_like
    bad = tmp_path / "attributes.csv"
    bad.write_text("file,is_a_7\n000000.jpg,1\n\n000001.jpg,yes\n")
    with pytest.raises(DataError, match=r"attributes.csv:4: expected a file name and 1 values of 0/1 or -1/1"):
        data.load(str(folder), attributes=str(bad))


def test_a_bad_partition_row_and_an_unknown_attribute_are_refused(celeba_like, tmp_path, capsys):
    folder, _, _ = celeba_like
    bad = tmp_path / "partition.txt"
    bad.write_text("000000.jpg 0\n000001.jpg 3\n")
    with pytest.raises(DataError, match=r"partition.txt:2: expected a file name and 0, 1 or 2"):
        data.load(str(folder), partition=str(bad))
    assert train.main(["--dataset", str(folder), "--attribute", "Smiling", "--epochs", "1", "--no-export",
                       "--run-dir", str(tmp_path / "R")]) == 2
    assert "has no such binary attribute; its attributes are is_a_7, odd" in capsys.readouterr().err


def test_attribute_files_apply_only_to_a_folder_of_images(tmp_path):
    (tmp_path / "a.csv").write_text("file,x\n")
    with pytest.raises(DataError, match="apply to a folder of images"):
        data.load("digits", attributes=str(tmp_path / "a.csv"))


@pytest.mark.slow
def test_an_attribute_of_the_files_becomes_a_code_direction_of_the_export(celeba_like, tmp_path):
    """train.py --attribute on the folder exports the attribute's vector; generate --add applies it with the
    exported decoder as z + k s over the Keras model's own test codes."""
    from keras_ae import generate, runs, serving

    folder, values, parts = celeba_like
    assert train.main(["--dataset", str(folder), "--attribute", "is_a_7", "--epochs", "1", "--latent-dim", "4",
                       "--no-evaluate", "--run-dir", str(tmp_path / "run"), "--export-root",
                       str(tmp_path / "export"), "--export-name", "m"]) == 0
    metadata = serving.read_metadata(tmp_path / "export" / "m")
    assert "is_a_7" in metadata["directions"]["vectors"]
    run = runs.load_run(tmp_path / "run")
    x, has = run.splits.sample("test", attribute="is_a_7")
    z = np.asarray(run.model.codes(x))
    s = z[has == 1].mean(axis=0) - z[has == 0].mean(axis=0)
    args = generate.build_parser().parse_args([str(tmp_path / "export" / "m"), "--average", "all", "--add",
                                               "is_a_7=2"])
    edited, _ = generate._edited(args, metadata)
    np.testing.assert_allclose(edited[0], z.mean(axis=0) + 2 * s, atol=1e-5)
    np.testing.assert_allclose(generate.load_decoder(tmp_path / "export" / "m")(edited),
                               np.asarray(run.model.decode(edited)), atol=1e-5)
