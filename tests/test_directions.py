"""Code directions: computed from test codes, drawn by the arithmetic figure, carried by the export, applied
by generate with the decoder alone (keras_ae.directions)."""

import json
import shutil

import numpy as np
import pytest

from keras_ae import directions, export, figures, generate, runs, serving
from keras_ae.errors import InputError


def test_averages_vectors_and_main_directions_are_what_they_say():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 100)
    codes = rng.normal(size=(300, 4)).astype("float32") + np.eye(4, dtype="float32")[labels] * 5
    smiling = rng.integers(0, 2, 300)
    codes[smiling == 1, 3] += 2.0
    ink = codes[:, 1]  # ink grows along unit 1: thicker points that way
    found = directions.compute(codes, labels, ink, {"Smiling": smiling})
    np.testing.assert_allclose(found.average(1), codes[labels == 1].mean(0), rtol=1e-6)
    np.testing.assert_allclose(found.average("all"), codes.mean(0), rtol=1e-6)
    np.testing.assert_allclose(found.vector("Smiling")[3], 2.0, atol=0.3)
    assert abs(found.vector("Smiling")[:3]).max() < 0.6
    assert np.argmax(found.vector("thicker")) == 1
    main1, main2 = found.vector("main1"), found.vector("main2")
    assert abs(main1 @ main2) < 1e-3 * np.linalg.norm(main1) * np.linalg.norm(main2)  # orthogonal
    spread = np.std((codes - codes.mean(0)) @ (main1 / np.linalg.norm(main1)), ddof=1)
    np.testing.assert_allclose(np.linalg.norm(main1), spread, rtol=1e-4)  # one standard deviation long
    z = codes[:2]
    np.testing.assert_allclose(found.edited(z, [("Smiling", 2), ("main1", -1)]),
                               z + 2 * found.vector("Smiling") - main1, rtol=1e-6)
    walked = found.walk(z, "Smiling", 7)
    assert walked.shape == (14, 4)
    np.testing.assert_allclose(walked[:7], z[0] + np.arange(-3, 4)[:, None] * found.vector("Smiling"), rtol=1e-5)
    with pytest.raises(InputError, match="no direction named 'smile'; the export has Smiling, main1, main2, thicker"):
        found.vector("smile")
    with pytest.raises(InputError, match="no average named '7'; the export has 0, 1, 2, all"):
        found.average(7)
    constant = directions.compute(codes, attributes={"always": np.ones(300), "never": np.zeros(300),
                                                     "Smiling": smiling})
    assert "Smiling" in constant.vectors and not {"always", "never"} & set(constant.vectors)  # skipped, not fatal


def test_a_directions_file_reads_back_and_refuses_what_its_metadata_does_not_list(tmp_path):
    codes = np.random.default_rng(1).normal(size=(50, 3)).astype("float32")
    found = directions.compute(codes, np.arange(50) % 2, codes[:, 0])
    path = tmp_path / directions.FILE
    path.write_bytes(found.to_bytes())
    back = directions.Directions.from_file(path, found.describe(), 3)
    for name in found.vectors:
        np.testing.assert_array_equal(back.vector(name), found.vector(name))
    assert back.averages.keys() == found.averages.keys()
    with pytest.raises(InputError, match="size 4"):
        directions.Directions.from_file(path, found.describe(), 4)
    with pytest.raises(InputError, match="not a directions file"):
        directions.Directions.from_file(tmp_path / "missing.npz", found.describe(), 3)
    for text in ("Smiling", "Smiling=", "=2", "Smiling=nan", "Smiling=two"):
        with pytest.raises(InputError, match="--add takes NAME=K"):
            directions.parse_addition(text)
    assert directions.parse_addition("a=b=-1.5") == ("a=b", -1.5)


# ---------------------------------------------------------------- through a trained run and its export


def run_cli(main, argv, capsys) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ae", "vae"])
def test_the_exported_directions_alone_redraw_the_arithmetic_figure(name, zoo, tmp_path):
    """generate's edits (--add, --walk) from the export's directions file, decoded by the exported decoder
    (SavedModel or TFLite), give the images of the evaluation's arithmetic figure (thicker rows and the class
    morph) within 1e-5."""
    run_dir, export_dir = zoo[name]
    run = runs.load_run(run_dir)
    rows = figures.arithmetic_rows(run)
    metadata = serving.read_metadata(export_dir)
    found = serving.read_directions(metadata)
    decode = generate.load_decoder(export_dir)
    x, y = run.splits.sample("test")
    z = np.asarray(run.model.codes(x[:1]))
    row = rows[f"thicker (test image 0, class {y[0]})"]
    np.save(tmp_path / "z.npy", z)
    for backend in serving.BACKENDS:
        thicker = generate.load_decoder(export_dir, backend)(found.walk(z, "thicker", len(directions.SWEEP)))
        np.testing.assert_allclose(thicker, row, atol=1e-5)
    for k in (-2, 3):  # generate --codes z.npy --add thicker=K: the figure's column k
        args = generate.build_parser().parse_args([str(export_dir), "--codes", str(tmp_path / "z.npy"), "--add",
                                                   f"thicker={k}"])
        np.testing.assert_allclose(decode(generate._edited(args, metadata)[0])[0], row[k + 3], atol=1e-5)
    one = int(np.flatnonzero(y == 1)[0])
    z_one = np.asarray(run.model.codes(x[one:one + 1]))
    for k in (-3, 1, 3):  # z + k (mean of 7 - mean of 1)
        morphed = decode(z_one + k * (found.average(7) - found.average(1)))
        np.testing.assert_allclose(morphed[0], rows["class 1 -> class 7"][k + 3], atol=1e-5)
    assert metadata["directions"]["test_images"] == len(x)


@pytest.mark.slow
def test_generate_applies_averages_additions_and_walks(zoo, tmp_path):
    _, export_dir = zoo["vae"]
    metadata = serving.read_metadata(export_dir)
    found = serving.read_directions(metadata)

    def codes(*flags):
        return generate._edited(generate.build_parser().parse_args([str(export_dir), *flags]), metadata)

    edited, columns = codes("--average", "3", "--add", "main1=2", "--add", "thicker=-1")
    np.testing.assert_allclose(edited, [found.average(3) + 2 * found.vector("main1") - found.vector("thicker")],
                               rtol=1e-6)
    walked, columns = codes("--average", "all", "--walk", "main2", "--steps", "5")
    assert columns == 5
    np.testing.assert_allclose(walked, found.average("all") + np.linspace(-3, 3, 5)[:, None] * found.vector("main2"),
                               rtol=1e-5, atol=1e-6)
    given = np.random.default_rng(0).normal(size=(2, 8)).astype("float32")
    np.save(tmp_path / "z.npy", given)
    added, _ = codes("--codes", str(tmp_path / "z.npy"), "--add", "thicker=1.5")
    np.testing.assert_allclose(added, given + 1.5 * found.vector("thicker"), rtol=1e-6)
    decode = generate.load_decoder(export_dir)
    images = decode(walked)
    assert np.abs(images[0] - images[-1]).max() > 1e-3  # the walk moves the image
    for flags in (["--average", "3", "--add", "main1=2"], ["--average", "all", "--walk", "main2", "--steps", "5"]):
        out = tmp_path / f"{flags[1]}.png"
        assert generate.main([str(export_dir), *flags, "--backend", "tflite", "--out", str(out)]) == 0
        assert out.stat().st_size > 1000


@pytest.mark.slow
def test_exports_without_directions_and_tampered_ones_are_refused(zoo, tmp_path, capsys):
    run_dir, export_dir = zoo["vae"]
    out = ["--out", tmp_path / "x.png"]
    copy = shutil.copytree(export_dir, tmp_path / "vae")
    tampered = bytearray((copy / "1" / directions.FILE).read_bytes())
    tampered[-30] ^= 0xFF
    (copy / "1" / directions.FILE).write_bytes(bytes(tampered))
    assert "directions.npz: sha256 mismatch" in run_cli(generate.main, [copy, "--average", "1", *out], capsys)
    plain = export.export_run(run_dir, tmp_path / "plain", quantize=False, with_directions=False)
    assert json.loads((plain / "metadata.json").read_text())["directions"] is None
    assert "has no code directions" in run_cli(generate.main, [plain.parent, "--add", "main1=1", *out], capsys)
    assert "no direction named 'smile'" in run_cli(generate.main, [export_dir, "--add", "smile=1", *out], capsys)
    assert "--add takes NAME=K" in run_cli(generate.main, [export_dir, "--add", "main1", *out], capsys)
    assert "do not apply to vqvae" in run_cli(generate.main, [zoo["vqvae"][1], "--average", "1", *out], capsys)
    assert "density without codes" in run_cli(generate.main, [zoo["pixelcnn"][1], "--walk", "main1", *out], capsys)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.slow
def test_a_run_whose_data_is_gone_exports_only_without_directions(zoo, tmp_path, capsys):
    run_dir = shutil.copytree(zoo["vae"][0], tmp_path / "vae", ignore=shutil.ignore_patterns("export", "logs"))
    config = json.loads((run_dir / "config.json").read_text())
    config["data"]["load"].update(name="no_such_dataset", download=False)
    (run_dir / "config.json").write_text(json.dumps(config))
    assert "--no-directions" in run_cli(export.main, [run_dir, "--out", tmp_path / "export"], capsys)
    assert export.main([str(run_dir), "--out", str(tmp_path / "export"), "--no-directions"]) == 0
