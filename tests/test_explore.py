"""keras-ae explore: the app over an export, driven through its API (gradio_client) and in a real browser.

The app runs in this process on a free loopback port, over the exports of the session's zoo (tests/conftest.py).
Each control is checked against what the export says it should give: a class-mean button gives the decoder's
image of that mean, a slider moves the code along its axis, an upload's outlier score is the Keras model's.
"""

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import urllib.request

import numpy as np
import psutil
import pytest
from PIL import Image

from keras_ae import runs
from keras_ae.errors import InputError

gr = pytest.importorskip("gradio", reason='keras-ae explore needs the explore extra: pip install ".[explore]"')
from gradio_client import Client, handle_file  # noqa: E402

from keras_ae import explore  # noqa: E402

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
BROWSER_REQUIRED = os.environ.get("KERAS_AE_REQUIRE_BROWSER") == "1"  # .ci/run: no silent skip in CI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """An app launched on loopback, its Explorer and a gradio_client Client of it."""

    def __init__(self, export_dir):
        self.explorer = explore.Explorer(export_dir)
        self.app = explore.build_app(self.explorer)
        self.port = free_port()
        explore.launch(self.app, "127.0.0.1", self.port)
        self.url = f"http://127.0.0.1:{self.port}/"
        self.client = Client(self.url, verbose=False)


@pytest.fixture(scope="module")
def served(zoo):
    apps = {name: Served(zoo[name][1]) for name in ("vae", "cvae", "pixelcnn")}
    yield apps
    for app in apps.values():
        app.app.close()


def picture(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def decoded(reply: dict) -> tuple[np.ndarray, np.ndarray]:
    """``/decode``'s reply: the code, and the picture of its base64 PNG (the image at the model's size)."""
    return np.asarray(reply["code"], np.float32), np.asarray(Image.open(io.BytesIO(base64.b64decode(reply["png"]))))


def pixels(images) -> np.ndarray:
    """The decoder's first image as the 8-bit pixels of a PNG."""
    return np.round(np.clip(images[0], 0, 1) * 255).astype(np.uint8)[..., 0]


def zeros(explorer) -> list[float]:
    return [0.0] * (len(explorer.axes) + len(explorer.attributes))


def test_a_class_mean_button_shows_the_decoders_image_of_that_mean(served):
    vae = served["vae"]
    *values, image = vae.client.predict(api_name="/mean_7")
    assert values[0] == "7" and all(v == 0 for v in values[1:])
    expected = explore.to_picture(vae.explorer.decode(vae.explorer.directions.average(7)))
    np.testing.assert_array_equal(picture(image), expected)
    other = explore.to_picture(vae.explorer.decode(vae.explorer.directions.average(1)))
    assert np.abs(picture(image).astype(int) - other).mean() > 1  # the classes' means differ


def test_sliders_move_the_code_along_their_axis_and_attribute(served):
    vae = served["vae"]
    explorer = vae.explorer
    assert list(explorer.axes) == [f"z{i}" for i in range(1, 9)]  # 8 units: a slider each
    values = zeros(explorer)
    values[0] = 2.0
    values[-1] = 1.5  # + 1.5 thicker
    code, moved = decoded(vae.client.predict("all", *values, api_name="/decode"))
    z = explorer.directions.average("all").copy()
    z[0] += 2.0 * explorer.directions.spread[0]
    z = z + 1.5 * explorer.directions.vector("thicker")
    np.testing.assert_allclose(code, z, atol=1e-6)
    np.testing.assert_array_equal(moved, pixels(explorer.decode(z)))
    _, still = decoded(vae.client.predict("all", *zeros(explorer), api_name="/decode"))
    assert np.abs(moved.astype(int) - still).mean() > 0.5


def test_a_conditional_model_decodes_with_the_picked_class(served):
    cvae = served["cvae"]
    explorer = cvae.explorer
    _, three = decoded(cvae.client.predict("all", 3, *zeros(explorer), api_name="/decode"))
    np.testing.assert_array_equal(three, pixels(explorer.decode(explorer.directions.average("all"), 3)))
    _, five = decoded(cvae.client.predict("all", 5, *zeros(explorer), api_name="/decode"))
    assert np.abs(three.astype(int) - five).mean() > 0.5


def test_the_interpolation_strip_runs_between_the_chosen_codes(served, tmp_path):
    vae = served["vae"]
    explorer = vae.explorer
    client = Client(vae.url, verbose=False)  # (a session of its own: the uploaded code is per session)
    moved = zeros(explorer)
    moved[1] = -2.0

    def ends(strip, count):
        width = picture(strip).shape[1] // count
        return picture(strip)[:, :width], picture(strip)[:, -width:]

    first, last = ends(client.predict("1", "7", 5, "all", *moved, api_name="/interpolate")[0], 5)
    np.testing.assert_array_equal(first, explore.to_picture(explorer.decode(explorer.directions.average(1))))
    np.testing.assert_array_equal(last, explore.to_picture(explorer.decode(explorer.directions.average(7))))
    strip, note = client.predict(explore.UPLOADED, explore.CURRENT, 4, "all", *moved, api_name="/interpolate")
    assert strip is None and "no image uploaded yet" in note
    pixels_of_digit = np.zeros((8, 8), np.uint8)
    pixels_of_digit[2:6, 3:5] = 255
    Image.fromarray(pixels_of_digit).save(tmp_path / "one.png")
    client.predict(handle_file(str(tmp_path / "one.png")), api_name="/upload")
    first, last = ends(client.predict(explore.UPLOADED, explore.CURRENT, 4, "all", *moved,
                                      api_name="/interpolate")[0], 4)
    uploaded = explorer.analyse(pixels_of_digit[..., None] / np.float32(255))["code"]
    np.testing.assert_array_equal(first, explore.to_picture(explorer.decode(uploaded)))
    axes = len(explorer.axes)
    current = explorer.code("all", moved[:axes], moved[axes:])
    np.testing.assert_array_equal(last, explore.to_picture(explorer.decode(current)))


def test_an_uploads_outlier_score_is_the_keras_models_and_its_percentile_the_test_splits(served, zoo, tmp_path):
    vae = served["vae"]
    run = runs.load_run(zoo["vae"][0])
    x, _ = run.splits.sample("test")
    pixels = np.round(x[3] * 255).astype(np.uint8)
    Image.fromarray(pixels[..., 0]).save(tmp_path / "digit.png")
    seen, rebuilt, verdict = vae.client.predict(handle_file(str(tmp_path / "digit.png")), api_name="/upload")
    image = (pixels / 255.0).astype("float32")[None]
    score = float(np.asarray(run.model.outlier_score(image))[0])  # what the report's outlier scores are
    assert run.model.outlier_score_name in verdict
    shown = float(verdict.split("Outlier score ")[1].split(" ")[0])
    assert shown == pytest.approx(score, abs=2e-3)
    percentile = 100 * np.mean(vae.explorer.directions.scores <= vae.explorer.analyse(image[0])["score"])
    assert f"({percentile:.1f}th percentile" in verdict
    assert "resized" not in verdict and picture(rebuilt).shape == picture(seen).shape


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(served, tmp_path, monkeypatch):
    vae = served["vae"]
    (tmp_path / "notes.png").write_text("not an image")
    seen, rebuilt, verdict = vae.client.predict(handle_file(str(tmp_path / "notes.png")), api_name="/upload")
    assert seen is None and rebuilt is None
    assert verdict == "**Not done:** notes.png: unreadable image (cannot identify image file)"
    Image.fromarray(np.full((40, 30, 3), 200, np.uint8)).save(tmp_path / "big.png")
    _, _, verdict = vae.client.predict(handle_file(str(tmp_path / "big.png")), api_name="/upload")
    assert "resized from 30x40 to the model's 8x8" in verdict
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (explore.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(Exception, match="(?i)file size|too large|exceed"):
        vae.client.predict(handle_file(str(huge)), api_name="/upload")
    with pytest.raises(InputError, match="huge.png is 20.0 MB; the limit is 20 MB"):  # the app's own limit
        vae.explorer.read_upload(huge)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 30x40 is now a decompression bomb's size
    with pytest.raises(InputError, match="big.png: unreadable image .*exceeds limit"):
        vae.explorer.read_upload(tmp_path / "big.png")
    assert decoded(vae.client.predict(*["all", *zeros(vae.explorer)], api_name="/decode"))[1].size > 0


def test_a_density_draws_samples_and_completes_the_bottom_half(served, zoo, tmp_path):
    density = served["pixelcnn"]
    model = runs.load_run(zoo["pixelcnn"][0]).model
    drawn = picture(density.client.predict(3, api_name="/sample"))
    np.testing.assert_array_equal(drawn, explore.to_picture(model.sample(explore.SAMPLES, seed=3)))  # the model's
    pixels = np.zeros((8, 8), np.uint8)
    pixels[:4, 2:6] = 255
    Image.fromarray(pixels).save(tmp_path / "top.png")
    completed, note = density.client.predict(handle_file(str(tmp_path / "top.png")), 5, api_name="/complete")
    expected = model.complete(pixels[None, :, :, None] / np.float32(255), 4, seed=5)  # the top half given
    np.testing.assert_array_equal(picture(completed), explore.to_picture(expected))


def test_the_tflite_backend_shows_what_the_savedmodels_show(zoo):
    on_device = explore.Explorer(zoo["vae"][1], backend="tflite")
    served = explore.Explorer(zoo["vae"][1])
    z = served.code("3", [0.5] * len(served.axes), [1.0] * len(served.attributes))
    np.testing.assert_allclose(on_device.decode(z), served.decode(z), atol=1e-5)
    image = served.decode(z)[0]
    assert on_device.analyse(image)["score"] == pytest.approx(served.analyse(image)["score"], rel=1e-4)


def test_the_command_binds_loopback_says_its_address_and_serves(zoo):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "keras_ae.explore", str(zoo["vae"][1]), "--port", str(port)],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "serving" not in line:
            line = server.stderr.readline()
            assert line or server.poll() is None, "the server ended before it said where it serves"
        assert f"on http://127.0.0.1:{port} " in line
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        assert decoded(client.predict("all", *zeros(explore.Explorer(zoo["vae"][1])), api_name="/decode"))[1].size
        listening = {c.laddr.ip for c in psutil.Process(server.pid).net_connections("inet")  # loopback only
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port}
        assert listening == {"127.0.0.1"}
    finally:
        server.terminate()
        server.wait(30)


def test_the_command_refuses_what_it_cannot_serve_in_one_line(zoo, tmp_path, capsys):
    def refused(argv) -> str:
        assert explore.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert err.startswith("error: "), err
        return err

    assert "no metadata.json" in refused([tmp_path])
    assert "do not apply to vqvae" in refused([zoo["vqvae"][1]])
    copy = shutil.copytree(zoo["vae"][1], tmp_path / "vae")
    (copy / "1" / "directions.npz").write_bytes(b"tampered")
    assert "sha256 mismatch" in refused([copy])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert f"port {port} on 127.0.0.1 is in use" in refused([zoo["vae"][1], "--port", port])


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER or BROWSER_REQUIRED),
                    reason="no headless Chromium here: apt-get install chromium chromium-driver (.ci/run does)")
def test_in_a_real_browser_a_slider_changes_the_shown_image(served, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    assert CHROMIUM and CHROMEDRIVER, "KERAS_AE_REQUIRE_BROWSER=1 but chromium or chromedriver is not on PATH"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(served["vae"].url)
        wait = WebDriverWait(driver, 60)

        def shown():
            images = driver.find_elements(By.CSS_SELECTOR, "img")
            return next((i.get_attribute("src") for i in images if "image.png" in (i.get_attribute("src") or "")), None)

        def pixels_at(src) -> np.ndarray:
            with urllib.request.urlopen(src) as reply:
                return np.asarray(Image.open(io.BytesIO(reply.read())))

        first = wait.until(lambda _: shown())
        number = driver.find_elements(By.CSS_SELECTOR, "input[type=number]")[0]  # the first slider's number box
        number.clear()
        number.send_keys("2.5\n")
        after = wait.until(lambda _: shown() not in (None, first) and shown())
        explorer = served["vae"].explorer
        def picture(first_slider: float) -> np.ndarray:
            values = [first_slider] + [0.0] * (len(explorer.axes) - 1)
            return explore.to_picture(explorer.decode(explorer.code("all", values, [0.0] * len(explorer.attributes))))

        np.testing.assert_array_equal(pixels_at(first), picture(0.0))  # the picture of the starting code
        np.testing.assert_array_equal(pixels_at(after), picture(2.5))  # the picture of the moved code
        assert np.any(picture(0.0) != picture(2.5))
        driver.save_screenshot(str(tmp_path / "explore.png"))
        assert (tmp_path / "explore.png").stat().st_size > 10_000
    finally:
        driver.quit()
