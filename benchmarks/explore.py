"""keras-ae explore over a conv VAE trained on mnist-small: slider latency, memory, and the README's screenshot.

    KERAS_AE_DATA=../shared/datasets python benchmarks/explore.py --epochs 20

Trains a conv VAE (``--latent-dim``, default 32: sliders along the two main directions) on mnist-small and
exports it, then starts ``keras-ae explore EXPORT`` as a user would, in its own process, and measures:

- the time from a slider move to the new image through ``gradio_client``: ``/decode`` (what a slider's change
  computes, the image as a PNG inside the reply) over ``--requests`` moves to random positions, median and
  90th percentile; beside it, a class-mean button (``/mean_all``), whose picture is a file that the client
  downloads with a second request, and the same client's time for an endpoint that does nothing (echoing a
  string), gradio_client's own floor here;
- the same work inside one process, with no HTTP in between (the code, the exported decoder, the PNG);
- the server's resident memory after 10 requests and after 1,000 (one in ten an upload of a test digit:
  encoder, outlier score, reconstruction);
- in headless Chromium, the time from a change of the first slider's value to the new picture loaded in the
  page (a MutationObserver on the picture), over 40 moves; then a screenshot: ``docs/figures/explore/explore.png``.

Writes ``benchmarks/results/explore.json``.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from keras_ae.train import parse_args, run

from common import benchmark_parser  # benchmarks/common.py, beside this script

RESULTS = Path(__file__).parent / "results"
FIGURE = Path(__file__).parent.parent / "docs" / "figures" / "explore" / "explore.png"


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_for(port: int, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise RuntimeError(f"nothing listens on port {port} after {seconds} s")


WATCH = """
const done = arguments[arguments.length - 1];
const picture = () => [...document.querySelectorAll('img')].find(i => (i.src || '').includes('image.png'));
const before = picture().src, box = document.querySelectorAll('input[type=number]')[0], t0 = performance.now();
const observer = new MutationObserver(() => {
  const now = picture();
  if (now && now.src !== before) {
    const finish = () => { observer.disconnect(); done(performance.now() - t0); };
    if (now.complete) finish(); else now.onload = finish;
  }
});
observer.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
box.value = arguments[0];
box.dispatchEvent(new Event('input', {bubbles: true}));
box.dispatchEvent(new Event('change', {bubbles: true}));
box.blur();
"""


def in_the_browser(url: str, path: Path, moves: int = 40) -> dict:
    """Milliseconds from a slider value change to the new picture loaded, in headless Chromium; then a
    screenshot of the page to ``path``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        driver.get(url)
        WebDriverWait(driver, 60).until(lambda _: any("image.png" in (i.get_attribute("src") or "")
                                                      for i in driver.find_elements(By.CSS_SELECTOR, "img")))
        driver.set_script_timeout(20)
        times = [driver.execute_async_script(WATCH, f"{(i % 50) / 10 - 2.5:.2f}") for i in range(moves)]
        driver.execute_async_script(WATCH, "1.5")
        time.sleep(1)
        path.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(path))
    finally:
        driver.quit()
    ms = np.asarray(times[5:])
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "moves": moves}


def gradio_client_floor(calls: int = 200) -> dict:
    """gradio_client's own time for a round trip that does nothing: an echo app on loopback."""
    import gradio as gr
    from gradio_client import Client

    with gr.Blocks() as app:
        text = gr.Textbox()
        gr.Button().click(lambda value: value, text, text, api_name="echo", queue=False)
    app.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    try:
        client, times = Client(app.local_url, verbose=False), []
        for _ in range(calls):
            began = time.perf_counter()
            client.predict("a", api_name="/echo")
            times.append(time.perf_counter() - began)
    finally:
        app.close()
    ms = np.asarray(times[10:]) * 1000
    return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90))}


def main() -> None:
    parser = benchmark_parser(__doc__, epochs=20, latent_dim=32)
    parser.add_argument("--requests", type=int, default=1000, help="slider moves sent through gradio_client")
    parser.add_argument("--port", type=int, default=7871)
    parser.add_argument("--export", default=None, help="measure this export instead of training one")
    options = parser.parse_args()
    from gradio_client import Client, handle_file
    from PIL import Image

    from keras_ae import explore, serving

    root = Path(options.run_root)
    run_dir, export_root = root / "explore-vae-conv", root / "export"
    start = time.monotonic()
    if options.export is None:
        run(parse_args(["--model", "vae", "--arch", "conv", "--latent-dim", str(options.latent_dim), "--binarize",
                        "--dataset", options.dataset, "--epochs", str(options.epochs), "--seed", str(options.seed),
                        "--run-dir", str(run_dir), "--overwrite", "--verbose", "2", "--no-evaluate",
                        "--export-root", str(export_root), "--export-name", run_dir.name]))
    train_seconds = None if options.export else time.monotonic() - start
    export_dir = Path(options.export) if options.export else export_root / run_dir.name
    explorer = explore.Explorer(export_dir)
    metadata = serving.read_metadata(export_dir)
    root.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "keras_ae.cli", "explore", str(export_dir), "--port",
                               str(options.port)], stderr=(root / "explore-server.log").open("w"))
    try:
        wait_for(options.port)
        url = f"http://127.0.0.1:{options.port}/"
        client = Client(url, verbose=False)
        rng = np.random.default_rng(options.seed)
        sliders = len(client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/decode"]
                      ["parameters"]) - 1
        seconds, memory = {"/decode": [], "/mean_all": []}, {}
        digit = root / "explore-upload.png"
        Image.fromarray(np.asarray(explorer.decode(explorer.directions.average("all"))[0, :, :, 0] * 255,
                                   np.uint8)).save(digit)
        for i in range(1, options.requests + 1):
            values = rng.uniform(-3, 3, sliders).round(2).tolist()
            began = time.perf_counter()
            reply = client.predict("all", *values, api_name="/decode")
            seconds["/decode"].append(time.perf_counter() - began)
            assert base64.b64decode(reply["png"]).startswith(b"\x89PNG")
            began = time.perf_counter()
            *_, picture = client.predict(api_name="/mean_all")
            seconds["/mean_all"].append(time.perf_counter() - began)
            assert Path(picture).read_bytes().startswith(b"\x89PNG")
            if i % 10 == 0:
                assert "Outlier score" in client.predict(handle_file(str(digit)), api_name="/upload")[2]
            if i in (10, options.requests):
                memory[str(i)] = resident_mb(server.pid)
        floor = gradio_client_floor()
        in_process = []
        for _ in range(200):
            values = rng.uniform(-3, 3, sliders).round(2).tolist()
            began = time.perf_counter()
            z = explorer.code("all", values[:len(explorer.axes)], values[len(explorer.axes):])
            explore.to_png(explorer.decode(z)[0])
            in_process.append(time.perf_counter() - began)
        browser = in_the_browser(url, FIGURE)
    finally:
        server.terminate()
        server.wait(30)
    def summary(times) -> dict:
        ms = np.asarray(times[10:]) * 1000  # (the first calls warm the graph)
        return {"median": float(np.median(ms)), "p90": float(np.percentile(ms, 90)), "mean": float(ms.mean())}

    result = {"export": export_dir.name,
              "model": f"{metadata['model']} ({metadata['architecture']}), {metadata['latent_dim']}-D code, "
                       f"trained on {metadata['dataset']['name'] if metadata.get('dataset') else 'unknown data'}",
              "train_seconds": train_seconds, "requests": options.requests, "sliders": sliders,
              "slider_to_image_ms": {how: summary(times) for how, times in seconds.items()},
              "gradio_client_floor_ms": floor, "browser_slider_to_image_ms": browser,
              "in_process_code_decode_png_ms": summary(in_process),
              "server_resident_mb": memory,
              "memory_growth": memory[str(options.requests)] / memory["10"] - 1, "screenshot": str(FIGURE.relative_to(FIGURE.parents[3]))}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explore.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
