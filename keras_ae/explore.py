"""``keras-ae explore EXPORT``: a local web app over an exported model, run on its artifacts alone.

    pip install ".[explore]"
    keras-ae explore export/vae-conv-mnist          # http://127.0.0.1:7860; --port, --host, --backend tflite

For a model with flat codes it decodes, live, the code that its controls set: a start (the mean test code of
all images or of a class, with a button per class), sliders along the code (every unit, in test standard
deviations, for codes of 16 or fewer; else the two main directions), a class picker for conditional models,
and a slider per attribute vector (z + k s). Below: an interpolation strip between two codes (mean codes, the
code the sliders set, or the uploaded image's), and an upload box that shows an image's code, its
reconstruction and its outlier score (the report's, which the exported encoder gives) with the test-split
percentile it falls at. For a density (PixelCNN, PixelRNN): samples for a seed, and the completion of an
uploaded image's bottom half. Every picture is a PNG with a download button.

:class:`Explorer` does the work with the export only (:mod:`keras_ae.generate`'s loaders, the code
directions of :mod:`keras_ae.directions`): it never calls a Keras model or the training code. :func:`build_app`
lays it out with Gradio. The server binds 127.0.0.1 unless told otherwise, and says its address.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import socket
import sys
from pathlib import Path

import numpy as np

from keras_ae import generate, serving
from keras_ae.errors import DataError, InputError, KerasAEError, exit_code, one_line

MAX_UPLOAD_BYTES = 20 * 2**20
UNIT_SLIDERS = 16  # codes of at most this size get one slider per unit
SLIDER_RANGE = 3.0  # sliders span -3..3 (test standard deviations, or k of z + k s)
DISPLAY_PIXELS = 224  # pictures are upscaled (nearest) to about this size
SAMPLES = 8
DEFAULT_PORT = 7860
STARTUP_SECONDS = 60  # how long the server may take to answer its first request (Gradio's own check: 3 s)
CURRENT, UPLOADED = "the sliders' code", "your image's code"  # the interpolation's ends besides the mean codes


def to_picture(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Images [N, H, W, C] in [0, 1] as one uint8 picture: a row of them (or ``columns`` a row), upscaled."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    count, height, width, channels = images.shape
    columns = columns or count
    rows = -(-count // columns)
    grid = np.ones((rows * height, columns * width, channels), np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    scale = max(1, DISPLAY_PIXELS // max(height, width))
    return _as_uint8(np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1))


def to_png(image: np.ndarray) -> str:
    """One image [H, W, C] in [0, 1] as a base64 PNG of its own size: how ``/decode`` gives API clients the
    picture inside its reply (a picture file would cost gradio_client a second request, about 23 ms here)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(_as_uint8(image)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _as_uint8(image: np.ndarray) -> np.ndarray:
    """[H, W, C] in [0, 1] -> uint8 pixels, [H, W] for one channel."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return pixels[..., 0] if pixels.shape[-1] == 1 else pixels


class Explorer:
    """What the app computes, from an export alone (``backend``: its SavedModels or its TFLite files)."""

    def __init__(self, export_dir, backend: str = "saved_model", version: int | None = None):
        self.metadata = serving.read_metadata(export_dir, version)
        self.backend, self.shape = backend, tuple(self.metadata["image_shape"])
        self.classes = self.metadata["num_classes"]
        version = self.metadata["version"]
        self.density = serving.networks(self.metadata) == ("density",)
        if self.density:
            self._sample, _ = generate.load_density(export_dir, backend, version)
            self._complete = generate.load_completion(export_dir, backend, version)
            return
        self.directions = serving.read_directions(self.metadata)  # refuses codes that are not flat, and tampering
        self._decode = generate.load_decoder(export_dir, backend, "float32", version)
        self._encode = generate.load_encoder(export_dir, backend, version)
        latent_dim = self.metadata["latent_dim"]
        if latent_dim <= UNIT_SLIDERS:
            spread = self.directions.spread
            self.axes = {f"z{i + 1}": np.eye(latent_dim, dtype=np.float32)[i] * spread[i] for i in range(latent_dim)}
        else:
            self.axes = {name: self.directions.vector(name) for name in ("main1", "main2")}
        self.attributes = [name for name in self.directions.vectors if name not in ("main1", "main2")]

    @property
    def title(self) -> str:
        m = self.metadata
        return f"{m['name']} v{m['version']} ({m['model']}, {self.backend})"

    # ---- codes
    def code(self, start: str, axes=(), attributes=()) -> np.ndarray:
        """The mean code ``start``, moved by ``axes`` (one value per slider of :attr:`axes`) and by k times each
        attribute vector (one k per :attr:`attributes`)."""
        z = self.directions.average(start).copy()
        for value, axis in zip(axes, self.axes.values()):
            z = z + np.float32(value) * axis
        return self.directions.edited(z, list(zip(self.attributes, attributes)))

    def _labels(self, label, count: int):
        return None if not self.classes else np.full(count, int(label or 0), np.int32)

    def decode(self, z, label=None) -> np.ndarray:
        """Decoded images [N, H, W, C] of codes ``z``."""
        z = np.array(z, np.float32, ndmin=2)
        return self._decode(z, self._labels(label, len(z)))

    def interpolation(self, start, end, steps: int, label=None) -> np.ndarray:
        """Decoded codes evenly spaced from code ``start`` to code ``end``, both included."""
        from keras_ae import latent

        return self.decode(latent.interpolate(np.ravel(start), np.ravel(end), int(steps)), label)

    # ---- an image of the user's
    def read_upload(self, path) -> tuple[np.ndarray, str]:
        """An uploaded file as one image [H, W, C] in [0, 1] of the model's size, and a note (e.g. resized).
        Read as a folder's images are (:func:`keras_ae.data.images.read_image`: decompression bombs refused)."""
        from PIL import Image

        from keras_ae.data.images import read_image

        path = Path(path)
        size = path.stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise InputError(f"{path.name} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES >> 20} MB")
        try:
            pixels = read_image(path)
        except DataError as error:
            raise InputError(f"{path.name}{str(error).removeprefix(str(path))}") from None  # (not the server's path)
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        image = image.convert("L" if self.shape[2] == 1 else "RGB")
        note = ""
        if image.size != (self.shape[1], self.shape[0]):
            note = (f"resized from {image.size[0]}x{image.size[1]} to the model's {self.shape[1]}x{self.shape[0]}")
            image = image.resize((self.shape[1], self.shape[0]), Image.Resampling.BILINEAR)
        array = np.asarray(image, np.float32) / 255.0
        return array.reshape(self.shape), note

    def analyse(self, image: np.ndarray, label=None) -> dict:
        """The code of ``image``, its reconstruction, and its outlier score (the exported encoder's: the model's
        own, as its report gives it) with its test-split percentile."""
        heads = self._encode(image[None], self._labels(label, 1))
        z = heads["z"] if "z" in heads else heads["z_mean"]
        score = float(heads["outlier_score"][0])
        return {"code": z[0], "reconstruction": self.decode(z, label)[0], "score": score,
                "percentile": self.directions.percentile(score)}

    # ---- a density
    def samples(self, seed: int, count: int = SAMPLES, label=None) -> np.ndarray:
        return self._sample(int(count), self._labels(label, int(count)), int(seed))

    def completion(self, image: np.ndarray, seed: int = 0, label=None) -> np.ndarray:
        """``image`` with its bottom half drawn given its top half."""
        start = (self.shape[0] // 2) * self.shape[1] * self.shape[2]
        return self._complete(image[None], start, self._labels(label, 1), int(seed))[0]


def _refusal(error: Exception) -> str:
    return f"**Not done:** {one_line(error)}"


def build_app(explorer: Explorer):
    """The Gradio Blocks app over ``explorer``; its endpoints are named (``api_name``) for API clients."""
    import gradio as gr

    with gr.Blocks(title=f"keras-ae explore: {explorer.metadata['name']}") as app:
        gr.Markdown(f"## keras-ae explore: {explorer.title}")
        if explorer.density:
            _density_controls(gr, explorer)
        else:
            _code_controls(gr, app, explorer)
    return app


def _image(gr, label: str):
    return gr.Image(label=label, type="numpy", format="png", interactive=False, buttons=["download"])


def _code_controls(gr, app, explorer: Explorer) -> None:
    found = explorer.directions
    averages = found.describe()["averages"]
    gr.Markdown(f"Code of {explorer.metadata['latent_dim']} numbers. Directions from {found.images} test images.")
    with gr.Row():
        with gr.Column():
            start = gr.Dropdown(averages, value="all", label="start from the mean code of")
            label = (gr.Dropdown(list(range(explorer.classes)), value=0, label="class (the decoder's label)")
                     if explorer.classes else gr.State(None))
            with gr.Row():
                buttons = {name: gr.Button(f"mean of {name}", size="sm") for name in averages}
            axes = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, 0.0, step=0.05, label=f"{name} (standard deviations)")
                    for name in explorer.axes]
            attributes = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, 0.0, step=0.05, label=f"+ k {name}")
                          for name in explorer.attributes]
        with gr.Column():
            decoded = _image(gr, "decoded")
    controls = [start, label, *axes, *attributes]

    def show(start_name, label_value, *values):
        z = explorer.code(start_name, values[:len(axes)], values[len(axes):])
        return to_picture(explorer.decode(z, label_value))

    for control in [start, *axes, *attributes] + ([label] if explorer.classes else []):  # live, off the queue
        control.change(show, controls, decoded, api_name=False, show_progress="hidden", queue=False)

    def reply(start_name, label_value, *values):
        z = explorer.code(start_name, values[:len(axes)], values[len(axes):])
        return {"code": np.ravel(z).tolist(), "png": to_png(explorer.decode(z, label_value)[0])}

    # The endpoint API clients call: for given control values, the code and its image in one reply.
    gr.Button("decode", visible=False).click(reply, controls, gr.JSON(visible=False), api_name="decode", queue=False)
    app.load(show, controls, decoded, api_name=False, queue=False)
    centred = [0.0] * (len(axes) + len(attributes))
    for name, button in buttons.items():  # a class mean: the start, every slider back to 0, and its picture
        def reset(label_value, name=name):
            return (name, *centred, show(name, label_value, *centred))
        button.click(reset, [label], [start, *axes, *attributes, decoded], api_name=f"mean_{name}")

    uploaded = gr.State(None)  # the code of the last uploaded image: an end of the interpolation
    with gr.Accordion("interpolation between two codes", open=True):
        ends = [*averages, CURRENT, UPLOADED]
        with gr.Row():
            a = gr.Dropdown(ends, value=averages[0], label="from (a mean code, the sliders' code or your image's)")
            b = gr.Dropdown(ends, value=averages[1] if len(averages) > 1 else CURRENT, label="to")
            steps = gr.Slider(2, 16, 8, step=1, label="steps")
        strip, strip_note = _image(gr, "interpolation"), gr.Markdown()

        def interpolate(from_name, to_name, count, uploaded_code, start_name, label_value, *values):
            def end(name):
                if name == CURRENT:
                    return explorer.code(start_name, values[:len(axes)], values[len(axes):])
                if name == UPLOADED:
                    if uploaded_code is None:
                        raise InputError("no image uploaded yet: upload one below, its code is this end")
                    return np.asarray(uploaded_code, np.float32)
                return explorer.directions.average(name)
            try:
                return to_picture(explorer.interpolation(end(from_name), end(to_name), count, label_value)), ""
            except KerasAEError as error:
                return None, _refusal(error)

        gr.Button("interpolate").click(interpolate, [a, b, steps, uploaded, *controls], [strip, strip_note],
                                       api_name="interpolate")

    with gr.Accordion("your image: its code, reconstruction and outlier score", open=True):
        with gr.Row():
            upload = gr.File(label="an image file (PNG, JPEG, ...; at most 20 MB)", type="filepath")
            seen, rebuilt = _image(gr, "the image, as the model takes it"), _image(gr, "reconstruction")
        verdict = gr.Markdown()

        def analyse(path, label_value):
            if path is None:
                return None, None, "", None
            try:
                image, note = explorer.read_upload(path)
                found = explorer.analyse(image, label_value)
            except (KerasAEError, OSError) as error:
                return None, None, _refusal(error), None  # (no image shown: no code of it to interpolate from)
            code = ", ".join(f"{v:.2f}" for v in found["code"][:16]) + (", ..." if len(found["code"]) > 16 else "")
            return (to_picture(image[None]), to_picture(found["reconstruction"][None]),
                    f"Outlier score {found['score']:.3f} ({found['percentile']:.1f}th percentile of the test images; "
                    f"{explorer.directions.score_name}). Code: [{code}]." + (f" Note: {note}." if note else ""),
                    found["code"].tolist())

        upload.change(analyse, [upload, label], [seen, rebuilt, verdict, uploaded], api_name="upload")


def _density_controls(gr, explorer: Explorer) -> None:
    label = (gr.Dropdown(list(range(explorer.classes)), value=0, label="class") if explorer.classes
             else gr.State(None))
    with gr.Row():
        seed = gr.Number(0, precision=0, label="seed")
        draw = gr.Button("draw samples")
    samples = _image(gr, f"{SAMPLES} samples, drawn pixel by pixel")
    draw.click(lambda s, lab: to_picture(explorer.samples(s, SAMPLES, lab)), [seed, label], samples, api_name="sample")
    with gr.Row():
        upload = gr.File(label="an image file: its bottom half is drawn given its top half", type="filepath")
        completed = _image(gr, "completion")
    verdict = gr.Markdown()

    def complete(path, seed_value, label_value):
        if path is None:
            return None, ""
        try:
            image, note = explorer.read_upload(path)
            return to_picture(explorer.completion(image, seed_value, label_value)[None]), note
        except (KerasAEError, OSError) as error:
            return None, _refusal(error)

    upload.change(complete, [upload, seed, label], [completed, verdict], api_name="complete")


def check_port(host: str, port: int) -> None:
    """An InputError naming the port when something already listens there."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise InputError(f"port {port} on {host} is in use or cannot be bound ({error.strerror}); give another "
                             "with --port") from None


def build_parser(prog: str = "python -m keras_ae.explore") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A local web app over an exported model: sliders, "
                                                            "class means, attributes, interpolation, your images.")
    parser.add_argument("export_dir", metavar="EXPORT", help="model folder <root>/<name> written by keras-ae export")
    parser.add_argument("--version", type=int, default=None, help="which version (default: the latest)")
    parser.add_argument("--backend", choices=serving.BACKENDS, default="saved_model",
                        help="run the SavedModels (default) or the TFLite files")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    return parser


def launch(app, host: str, port: int) -> None:
    """Start ``app``'s server on host:port and return once it answers. Gradio's launch checks that the page
    answers with one 3-second request and, if not, refuses to start (asking for a share link): on a loaded
    machine the first answer can take longer, so the check here retries for up to ``STARTUP_SECONDS``."""
    import time

    import httpx
    from gradio import networking

    def answers(url: str) -> bool:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=10).status_code < 400:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        return False

    gradios_check, networking.url_ok = networking.url_ok, answers
    try:
        app.launch(server_name=host, server_port=port, max_file_size=MAX_UPLOAD_BYTES, quiet=True, show_error=False,
                   prevent_thread_lock=True)
    finally:
        networking.url_ok = gradios_check


def main(argv=None, prog: str = "python -m keras_ae.explore") -> int:
    """Entry point: serve until interrupted; exit code 2 with one ``error:`` line for a user error."""
    from keras_ae import console

    console.command_started()
    args = build_parser(prog).parse_args(argv)

    def serve():
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # (no calls home from a local app)
        try:
            import gradio  # noqa: F401
        except ImportError:
            raise InputError('keras-ae explore needs Gradio: pip install ".[explore]"') from None
        if not 1 <= args.port <= 65535:
            raise InputError(f"--port must be in [1, 65535], got {args.port}")
        if not (Path(args.export_dir) / serving.METADATA).is_file() and not serving.complete_versions(
                serving.model_folder(args.export_dir)[0]):
            raise InputError(f"{args.export_dir}: no metadata.json (not a folder written by keras-ae export)")
        app = build_app(Explorer(args.export_dir, args.backend, args.version))
        check_port(args.host, args.port)
        launch(app, args.host, args.port)
        print(f"keras-ae explore: serving {args.export_dir} on http://{args.host}:{args.port} (Ctrl-C stops it)",
              file=sys.stderr, flush=True)  # said once the server answers, so a script may connect on this line
        app.block_thread()

    return exit_code(serve, "stopped")


if __name__ == "__main__":
    sys.exit(main())
