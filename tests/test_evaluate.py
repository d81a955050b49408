"""Each metric on a case whose answer is known; the report, figures and comparison end to end."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from keras_ae import data, evaluate, latent, losses
from keras_ae.errors import ConfigError
from keras_ae.contract import Likelihood
from keras_ae.models import PCA, VAE, Autoencoder

rng = np.random.default_rng(0)


class Identity:
    """A stand-in model whose code is the image itself: a perfect reconstruction."""

    num_classes = None
    latent_dim = 64

    def encode(self, x, labels=None):
        return np.asarray(x).reshape(len(x), -1)

    codes = encode

    def decode(self, z, labels=None):
        return np.asarray(z).reshape(len(z), 8, 8, 1)

    def reconstruct(self, x, labels=None):
        return np.asarray(x)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", seed=0)


@pytest.fixture(scope="module")
def pca(digits):
    model = PCA(digits.image_shape, latent_dim=12)
    model.compile(optimizer="adam")
    model.fit(digits.pipeline("train", 256), verbose=0)
    return model


def test_a_perfect_reconstruction_has_infinite_psnr_reported_as_the_cap():
    x = rng.random((5, 8, 8, 1)).astype("float32")
    assert np.all(np.isinf(losses.psnr(x, x)))
    metrics = evaluate.reconstruction_metrics(Identity(), x)
    assert metrics["squared_error"] == 0.0 and metrics["mse"] == 0.0
    assert metrics["psnr"] == losses.PSNR_CAP


def test_auc_is_half_for_identical_scores_and_one_for_separated_scores():
    scores = rng.random(200)
    assert evaluate.roc_auc(scores, scores) == pytest.approx(0.5)
    assert evaluate.roc_auc(scores, scores + 2.0) == 1.0


def test_pca_codes_give_the_pca_probe_accuracy(digits, pca):
    train_x, train_y = digits.arrays("train")
    test_x, test_y = digits.arrays("test")
    probe = evaluate.latent_probe(pca, train_x, train_y, test_x, test_y)
    assert probe["codes"] == probe["pca_12"]
    assert probe["pixels"]["logistic"] > 0.9  # digits are easy from pixels: the probe itself works


def test_pca_encoder_jacobian_norm_is_the_square_root_of_its_rank(digits, pca):
    x, _ = digits.arrays("test")
    assert evaluate.jacobian_norm(pca, x[:20]) == pytest.approx(np.sqrt(12), rel=1e-4)


def test_zero_fraction_and_denoising_gain_of_the_identity():
    x = np.zeros((4, 8, 8, 1), "float32")
    x[:, :2] = 0.5  # a quarter of the pixels are non-zero
    assert evaluate.zero_fraction(Identity(), x) == 0.75
    gain = evaluate.denoising_psnr(Identity(), x + 0.5, "mask", 0.3)
    assert gain["gain"] == 0.0 and gain["corrupted"] < 20


def test_compression_counts_bytes_and_loses_little_at_8_bits(digits):
    x, _ = digits.arrays("test")
    result = evaluate.compression(Identity(), x)
    assert result["raw_bytes"] == 64
    assert [result[k]["bytes"] for k in ("float32", "float16", "int8")] == [256, 128, 64]
    assert result["float32"]["psnr"] == losses.PSNR_CAP
    assert 40 < result["int8"]["psnr"] < result["float16"]["psnr"]


def test_latent_operations():
    a, b = np.array([0.0, 2.0]), np.array([4.0, -2.0])
    line = latent.interpolate(a, b, 5)
    np.testing.assert_allclose(line[[0, 2, 4]], [a, (a + b) / 2, b])
    codes = np.array([[1.0, 0], [3.0, 0], [0.0, 5], [0.0, 7]])
    s = latent.attribute_vector(codes, [True, True, False, False])
    np.testing.assert_allclose(s, [2.0, -6.0])
    np.testing.assert_allclose(latent.attribute_sweep(a, s, (-1, 0, 2))[[0, 2]], [a - s, a + 2 * s])
    centre, directions, scales = latent.principal_plane(rng.normal(size=(500, 3)) * [5.0, 1.0, 0.1])
    assert abs(directions[0, 0]) > 0.99 and scales[0] == pytest.approx(5.0, rel=0.1)
    grid = latent.manifold_grid(5, np.zeros(2), np.eye(2), np.ones(2))
    np.testing.assert_allclose(grid[12], [0.0, 0.0], atol=1e-6)  # the centre of a 5 x 5 grid
    z = rng.normal(size=(100, 4)).astype("float32")
    integers, low, step = latent.quantize(z)
    assert integers.dtype == np.uint8 and np.all(np.abs(latent.dequantize(integers, low, step) - z) <= step / 2 + 1e-6)
    with pytest.raises(ConfigError, match="size >= 2"):
        latent.principal_plane(z[:, :1])


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("eval") / "vae"
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--model", "vae", "--dataset", "digits",
                             "--latent-dim", "2", "--epochs", "15", "--run-dir", str(folder), "--verbose", "0", "--no-export"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return folder


@pytest.mark.slow
def test_training_writes_the_report_with_every_vae_metric(vae_run):
    report = json.loads((vae_run / "report.json").read_text())
    metrics = report["metrics"]
    likelihood = metrics["likelihood"]
    assert (likelihood["kind"], likelihood["estimator"], likelihood["samples"]) == ("upper bound", "importance-weighted",
                                                                                   100)
    assert -likelihood["nll"] >= likelihood["details"]["ELBO (nats)"] - 0.5  # the bound is at least as tight (up to noise)
    assert metrics["probe"]["pixels"]["logistic"] > 0.9
    assert 0.5 < metrics["outlier_auc"]["noise"] <= 1.0
    assert "## Figures" in (vae_run / "report.md").read_text()


@pytest.mark.slow
def test_test_images_sets_the_sample_the_likelihood_and_the_scores_use(vae_run, tmp_path):
    copy = shutil.copytree(vae_run, tmp_path / "vae")
    for count, expected in (("50", 50), ("0", 180)):  # 0: the whole test split of the 8x8 digits
        assert evaluate.main([str(copy), "--test-images", count, "--no-figures", "--likelihood-samples", "5"]) == 0
        report = json.loads((copy / "report.json").read_text())
        assert report["images"]["sample of the test split"] == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reconstructions", "samples", "manifold", "code_scatter", "interpolation",
                                  "arithmetic", "training_curves"])
def test_every_figure_is_a_picture_with_something_in_it(vae_run, name):
    image = np.asarray(Image.open(vae_run / f"{name}.png").convert("L"), "float32")
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 10  # not blank


@pytest.mark.slow
def test_compare_makes_one_row_per_run_grouped_by_dataset_and_skips_folders_without_a_report(vae_run, tmp_path):
    out, other = tmp_path / "table.md", tmp_path / "other"
    other.mkdir()
    report = json.loads((vae_run / "report.json").read_text())
    report["dataset"]["name"] = "mnist"
    (other / "report.json").write_text(json.dumps(report))
    (tmp_path / "unevaluated").mkdir()
    result = subprocess.run([sys.executable, "-m", "keras_ae.compare", str(vae_run), str(other), str(tmp_path /
                             "unevaluated"), str(vae_run), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"note: skipped {tmp_path / 'unevaluated'}: no report.json" in result.stderr
    lines = out.read_text().splitlines()
    assert lines[0].startswith("| run | dataset | train images | epochs | model | arch | code |")
    assert [line.split(" | ")[1] for line in lines[2:]] == ["digits", "digits", "mnist"]  # grouped
    assert lines[2].startswith("| vae | digits | 1437 | 15 | vae | mlp | 2 |")


@pytest.mark.slow
def test_every_report_has_the_pca_baseline_of_its_code_size_and_says_who_wins(vae_run, tmp_path):
    """The baseline is PCA fitted on the same training split: for a PCA run it is the run itself."""
    folder = tmp_path / "pca"
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--model", "pca", "--dataset", "digits",
                             "--latent-dim", "2", "--run-dir", str(folder), "--verbose", "0", "--no-export"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    pca = json.loads((folder / "report.json").read_text())["metrics"]
    assert pca["pca_baseline"]["components"] == 2
    assert pca["pca_baseline"]["squared_error"] == pytest.approx(pca["reconstruction"]["squared_error"], rel=1e-3)
    vae = json.loads((vae_run / "report.json").read_text())
    assert vae["metrics"]["pca_baseline"]["squared_error"] == pytest.approx(pca["pca_baseline"]["squared_error"])
    beats = vae["metrics"]["reconstruction"]["squared_error"] < pca["reconstruction"]["squared_error"]
    assert any(line.startswith("beats PCA" if beats else "does NOT beat PCA") for line in vae["findings"])
    assert "PCA squared error" in (vae_run / "report.md").read_text()


def test_a_network_that_ignores_its_input_is_named_by_the_report():
    """Reconstructions that hardly vary over the images (a dead network) give a warning; faithful ones do not."""
    class Stub:
        num_classes = None

        def __init__(self, reconstruct):
            self.reconstruct = lambda x, labels=None: reconstruct(x)

    x = rng.random((50, 4, 4, 1)).astype("float32")
    variance = float(np.var(x.reshape(50, -1), axis=0).sum())
    for reconstruct, output_variance, warned in ((lambda b: b, variance, False),
                                                 (lambda b: np.full_like(b, 0.3), 0.0, True)):
        metrics = evaluate.reconstruction_metrics(Stub(reconstruct), [(x[:30], None), (x[30:], None)])
        assert metrics["input_variance"] == pytest.approx(variance, rel=1e-5)
        assert metrics["output_variance"] == pytest.approx(output_variance, rel=1e-4, abs=1e-9)
        report = {"reconstruction": metrics, "pca_baseline": {"squared_error": 1.0}}
        lines = evaluate.findings(Autoencoder((4, 4, 1), latent_dim=2), report)
        assert any(line.startswith("WARNING: the reconstructions hardly vary") for line in lines) == warned, lines
    collapsed = Likelihood(90.0, 0.1, "upper bound", "importance-weighted", True, 10, {"ELBO (nats)": -95.0,
                                                                                         "KL (nats)": 0.01,
                                                                                         "active units": 0})
    report["likelihood"] = collapsed.to_json()  # a collapsed VAE: the cause is named instead
    lines = evaluate.findings(VAE((4, 4, 1), latent_dim=2), report)
    assert [line.split(":")[0] for line in lines if line.startswith("WARNING")] == ["WARNING"], lines
    assert "posterior collapse" in " ".join(lines) and "hardly vary" not in " ".join(lines)


@pytest.mark.slow
def test_unlabelled_data_skips_the_probe_and_says_so(tmp_path):
    np.savez(tmp_path / "plain.npz", x=rng.integers(0, 255, (120, 8, 8), dtype=np.uint8))
    folder = tmp_path / "run"
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--dataset", str(tmp_path / "plain.npz"),
                             "--epochs", "1", "--batch-size", "16", "--latent-dim", "1", "--run-dir", str(folder),
                             "--verbose", "0", "--no-export"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads((folder / "report.json").read_text())
    assert "probe" not in report["metrics"]
    assert any("probe skipped" in note and "no labels" in note for note in report["notes"])
    assert any("latent has size 1" in note for note in report["notes"])


@pytest.mark.slow
@pytest.mark.parametrize("module", ["keras_ae.evaluate", "keras_ae.compare"])
def test_a_folder_without_a_model_or_report_is_a_clear_error(module, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"options": {"dataset": "digits"}}))
    result = subprocess.run([sys.executable, "-m", module, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(tmp_path) in result.stderr


@pytest.mark.slow
def test_what_the_figures_draw_is_digit_like_not_blank(vae_run):
    from keras_ae import figures
    from keras_ae.runs import load_run

    run = load_run(vae_run)
    samples = figures._decode(run.model, run.model.prior.sample(32))
    assert samples.shape == (32, 8, 8, 1)
    assert np.all(samples.reshape(32, -1).std(axis=1) > 0.1)  # every sample has strokes, not a flat image
    assert samples.std(axis=0).mean() > 0.02  # and the samples differ from one another
    x, _ = run.splits.arrays("test")
    line = figures._decode(run.model, latent.interpolate(*run.model.codes(x[:2]), 5))
    np.testing.assert_allclose(line[[0, -1]], run.model.reconstruct(x[:2]), atol=1e-5)  # ends are the two images


def test_the_manifold_is_one_seamless_picture_of_the_grid_in_order(tmp_path):
    from keras_ae import plots

    images = np.stack([np.full((2, 3, 1), i / 10) for i in range(9)])
    canvas = plots.tiled(images, 3)
    assert canvas.shape == (6, 9, 1)
    np.testing.assert_allclose(canvas[::2, ::3, 0], [[0.0, 0.1, 0.2], [0.3, 0.4, 0.5], [0.6, 0.7, 0.8]])
    plots.mosaic(images, 3, tmp_path / "m.png", (np.array([-1.0, 0.0, 1.0]),) * 2, title="t")
    assert (tmp_path / "m.png").stat().st_size > 0


def test_long_titles_are_wrapped_to_the_figure_not_clipped(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from keras_ae import plots

    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: (seen.append(fig), plt.close(fig)))
    title = "cpixelcnn (masked-conv) on mnist: samples drawn pixel by pixel, one row per label"
    plots.image_rows({"y = 0": np.zeros((5, 4, 4, 1))}, tmp_path / "s.png", title=title)
    drawn = seen[0]._suptitle.get_text()
    assert "\n" in drawn and drawn.replace("\n", " ") == title
    assert max(map(len, drawn.split("\n"))) <= 5 * 0.9 * 12
