"""Fuzz tests of every input parser: IDX files, .npz archives, image folders, run configs, export metadata.

Each property feeds one family of broken input to one parser -- (a) random bytes, (b) a valid file cut
at a random point, (c) a valid header with random or huge size fields, (d) wrong types, (e) bit flips of
a valid file -- and requires that the parser either returns a well-formed result or raises the project's
own error with a one-line message naming the file. Never another exception, never a hang (hypothesis'
deadline, plus a watchdog alarm for a real hang), never an allocation over MEMORY_LIMIT plus what the
data really holds (tracemalloc's peak for Python and numpy, ru_maxrss growth for C libraries such as
Pillow and zlib).

Every test is derandomized: the same examples run on every machine. KERAS_AE_FUZZ_SCALE=10 runs ten
times as many. The last test prints how many cases each property ran and how they ended;
``pytest tests/test_fuzz.py --hypothesis-show-statistics`` adds hypothesis' own statistics.
"""

from __future__ import annotations

import ast
import contextlib
import gzip
import io
import json
import os
import re
import resource
import signal
import struct
import tempfile
import tracemalloc
import zipfile
import zlib
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp
from PIL import Image

from keras_ae import data, runs, serving
from keras_ae.data import resolve
from keras_ae.data.tfds import Unavailable
from keras_ae.errors import DataError, KerasAEError

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on damaged TIFFs

PACKAGE = Path(__file__).resolve().parents[1] / "keras_ae"
SCALE = float(os.environ.get("KERAS_AE_FUZZ_SCALE", "1"))
MEMORY_LIMIT = 200 * 2**20  # bytes one parser call may allocate, whatever the input claims
WATCHDOG_SECONDS = 30  # a call still running after this is a hang (the deadline below is per example)
COUNTS: dict[str, Counter] = defaultdict(Counter)  # test -> outcome -> cases

FUZZ = settings(
    deadline=timedelta(seconds=5),
    derandomize=True,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],  # no explain phase: it reruns failures for minutes
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)


def examples(count: int) -> settings:
    return settings(FUZZ, max_examples=max(1, int(count * SCALE)))


# ---------------------------------------------------------------- the property


class Hang(BaseException):
    """A parser call outlived the watchdog (BaseException: no `except Exception` in the code can hide it)."""


@contextlib.contextmanager
def watchdog(seconds: float = WATCHDOG_SECONDS):
    def fire(signum, frame):
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def result_bytes(result) -> int:
    """Bytes of the arrays a parser returned (a dataset's three splits); 0 for anything else."""
    if not isinstance(result, data.DataSplits):
        return 0
    return sum(4 * part.nbytes + 8 * len(part) for part in (result.train, result.validation, result.test))  # float32


def outcome(test: str, call, error_type: type[Exception], names: str, check, extra_memory: int = 0) -> str:
    """Run `call`: its result must pass `check`, or it raises `error_type` with one line naming `names`.

    Any other exception propagates (and fails the property); so does a hang, or an allocation over
    MEMORY_LIMIT + `extra_memory` plus a few copies of what the call returned (decoding, stacking and
    splitting copy the data; a header's claims must cost nothing). Memory is tracemalloc's peak (Python,
    numpy) and the growth of the process' max RSS (C libraries: Pillow, zlib).
    """
    rss = _maxrss()
    tracemalloc.start()
    try:
        with watchdog():
            try:
                result, error = call(), None
            except error_type as raised:
                result, error = None, raised
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    grown, allowed = _maxrss() - rss, MEMORY_LIMIT + extra_memory + 6 * result_bytes(result)
    assert peak < allowed, f"allocated {peak / 2**20:.0f} MiB (tracemalloc peak), allowed {allowed / 2**20:.0f} MiB"
    assert grown < allowed, f"max RSS grew by {grown / 2**20:.0f} MiB, allowed {allowed / 2**20:.0f} MiB"
    if error is None:
        check(result)
        kind = "ok"
    else:
        message = str(error)
        assert message and "\n" not in message, f"not a one-line message: {message!r}"
        assert names in message, f"message does not name {names}: {message!r}"
        kind = type(error).__name__
    COUNTS[test][kind] += 1
    with contextlib.suppress(InvalidArgument):  # outside a hypothesis test there are no events
        event(kind)
    return kind


def check_splits(splits: data.DataSplits) -> None:
    """A well-formed dataset: float32 [0, 1] NHWC images, int64 labels in range, matching shapes.

    ``read_all`` has decoded every split already (image folders are read only when streamed), so the
    arrays come from memory here.
    """
    shape = splits.image_shape
    assert len(shape) == 3 and shape[0] >= 1 and shape[1] >= 1 and shape[2] in (1, 3, 4), shape
    assert len(splits.train) >= 1
    for name in data.SPLITS:
        images, labels = splits.arrays(name)
        assert images.ndim == 4 and images.shape[1:] == shape, (name, images.shape)
        assert images.dtype == np.float32, images.dtype
        if images.size:
            assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
        if labels is not None:
            assert labels.dtype == np.int64 and labels.shape == (len(images),), (labels.dtype, labels.shape)
            if labels.size:
                assert labels.min() >= 0, f"negative label {labels.min()}"
                if splits.num_classes is not None:
                    assert labels.max() < splits.num_classes
        assert (labels is None) == (not splits.train.has_labels)


def read_all(splits: data.DataSplits) -> data.DataSplits:
    """Decode every image of every split: the parsers' errors of a streamed folder surface here."""
    for name in data.SPLITS:
        if len(splits.split(name)):
            splits.arrays(name)
    return splits


def load_data(test: str, root: Path, target: Path, extra_memory: int = 0) -> str:
    return outcome(test, lambda: read_all(data.load(str(target), download=False)), DataError, str(root),
                   check_splits, extra_memory)


# ---------------------------------------------------------------- shared strategies


def flip_bits(blob: bytes, positions: list[int]) -> bytes:
    """`blob` with the bits at `positions` (taken modulo its length in bits) inverted."""
    if not blob:
        return blob
    mutable = bytearray(blob)
    for position in positions:
        position %= 8 * len(mutable)
        mutable[position // 8] ^= 1 << (position % 8)
    return bytes(mutable)


def cut(blob: bytes, fraction: float) -> bytes:
    """The first `fraction` of `blob`, always at least one byte short of the whole."""
    return blob[: min(len(blob) - 1, int(len(blob) * fraction))]


bit_positions = st.lists(st.integers(0, 2**24), min_size=1, max_size=8)
fractions = st.floats(0, 1, exclude_max=True)
huge_dims = st.one_of(
    st.sampled_from([0, 1, 2, 255, 2**16 - 1, 2**16, 2**24, 2**31 - 1, 2**31, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)


# ---------------------------------------------------------------- IDX


IDX_NAMES = [stem for pair in data.IDX_FILES.values() for stem in pair]  # train images, labels, t10k ...
IDX_COUNTS = {"train": 12, "t10k": 4}


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    header = struct.pack(">I", 0x800 | array.ndim if magic is None else magic)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def valid_idx() -> dict[str, bytes]:
    """The four files of a small MNIST-style folder: 12 train and 4 test 4x4 images with labels 0..2."""
    files = {}
    for prefix, count in IDX_COUNTS.items():
        images = (np.arange(count * 16) % 256).astype(np.uint8).reshape(count, 4, 4)
        files[f"{prefix}-images-idx3-ubyte"] = idx_bytes(images)
        files[f"{prefix}-labels-idx1-ubyte"] = idx_bytes(np.arange(count) % 3)
    return files


def write_idx(root: Path, files: dict[str, bytes], gz: bool, stored: dict[str, bytes] = ()) -> None:
    """Write `files` (gzipped when `gz`), except those in `stored`, written as they are under their name."""
    for stem, payload in files.items():
        name = f"{stem}.gz" if gz else stem
        (root / name).write_bytes(stored[stem] if stem in stored else
                                  gzip.compress(payload, mtime=0) if gz else payload)


def idx_target(root: Path, single_file: bool, gz: bool) -> Path:
    """The folder, or its train images file when the test asks for a single IDX file."""
    return root / (f"{IDX_NAMES[0]}{'.gz' if gz else ''}") if single_file else root


@examples(300)
@given(stem=st.sampled_from(IDX_NAMES), gz=st.booleans(), single_file=st.booleans(),
       prefix=st.sampled_from([b"", b"\0\0\x08\x03", b"\0\0\x08\x01", b"\x1f\x8b\x08\0"]),
       blob=st.binary(max_size=300), compress=st.booleans())
def test_idx_random_bytes(stem, gz, single_file, prefix, blob, compress):
    payload = prefix + blob
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx(root, valid_idx(), gz, {stem: gzip.compress(payload, mtime=0) if gz and compress else payload})
        load_data("idx random bytes", root, idx_target(root, single_file, gz))


@examples(300)
@given(stem=st.sampled_from(IDX_NAMES), gz=st.booleans(), single_file=st.booleans(), fraction=fractions,
       gz_payload=st.booleans())
def test_idx_truncated(stem, gz, single_file, fraction, gz_payload):
    """A valid file cut short: on disk, or (gz_payload) inside a complete gzip stream."""
    files = valid_idx()
    payload = files[stem]
    stored = gzip.compress(cut(payload, fraction), mtime=0) if gz and gz_payload else \
        cut(gzip.compress(payload, mtime=0) if gz else payload, fraction)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx(root, files, gz, {stem: stored})
        load_data("idx truncated", root, idx_target(root, single_file, gz))


@examples(300)
@given(stem=st.sampled_from(IDX_NAMES), gz=st.booleans(), single_file=st.booleans(),
       dims=st.lists(huge_dims, min_size=3, max_size=3), body=st.binary(max_size=200))
def test_idx_huge_header(stem, gz, single_file, dims, body):
    """A valid magic with random, often huge, dimensions (2**31 x 2**31 ...) over a few bytes of data."""
    ndim = 1 if "labels" in stem else 3
    payload = struct.pack(">I", 0x800 | ndim) + struct.pack(f">{ndim}I", *dims[:ndim]) + body
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx(root, valid_idx(), gz, {stem: gzip.compress(payload, mtime=0) if gz else payload})
        load_data("idx huge header", root, idx_target(root, single_file, gz))


@examples(300)
@given(stem=st.sampled_from(IDX_NAMES), gz=st.booleans(), single_file=st.booleans(),
       type_code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]),
       shape=st.lists(st.integers(0, 6), min_size=0, max_size=5), data_=st.data())
def test_idx_wrong_type(stem, gz, single_file, type_code, shape, data_):
    """Well-formed IDX files of another element type, rank or size (e.g. int16 images, 3-D labels)."""
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(type_code, 1)
    size = int(np.prod(shape, dtype=np.int64)) * itemsize
    body = data_.draw(st.binary(min_size=size, max_size=size))
    payload = struct.pack(">HBB", 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape) + body
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx(root, valid_idx(), gz, {stem: gzip.compress(payload, mtime=0) if gz else payload})
        load_data("idx wrong type", root, idx_target(root, single_file, gz))


@examples(300)
@given(stem=st.sampled_from(IDX_NAMES), gz=st.booleans(), single_file=st.booleans(), positions=bit_positions,
       in_payload=st.booleans())
def test_idx_bit_flips(stem, gz, single_file, positions, in_payload):
    """Bits flipped in a valid file: in the gzip container, or (in_payload) in the bytes it holds."""
    files = valid_idx()
    if gz and in_payload:
        stored = gzip.compress(flip_bits(files[stem], positions), mtime=0)
    else:
        stored = flip_bits(gzip.compress(files[stem], mtime=0) if gz else files[stem], positions)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_idx(root, files, gz, {stem: stored})
        load_data("idx bit flips", root, idx_target(root, single_file, gz))


# ---------------------------------------------------------------- npz

NPZ_KEYS = ["x_train", "y_train", "x_test", "y_test", "x", "y", "images", "labels"]


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)  # object arrays too: the loader must refuse them
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compressed: bool) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    return buffer.getvalue()


def valid_npz_arrays(layout: str) -> dict[str, np.ndarray]:
    """Small archives in each accepted layout: keras (uint8), x/y (float32, int32), images (RGB, no labels)."""
    if layout == "keras":
        return {"x_train": np.arange(16 * 16, dtype=np.uint8).reshape(16, 4, 4), "y_train": np.arange(16) % 3,
                "x_test": np.zeros((4, 4, 4), np.uint8), "y_test": np.arange(4) % 3}
    if layout == "xy":
        return {"x": np.linspace(0, 1, 20 * 16, dtype=np.float32).reshape(20, 4, 4, 1),
                "y": (np.arange(20) % 5).astype(np.int32)}
    return {"images": np.full((20, 4, 4, 3), 200, np.uint8)}


def npz_bytes(arrays: dict[str, np.ndarray], compressed: bool) -> bytes:
    return zip_bytes({f"{key}.npy": npy_bytes(value) for key, value in arrays.items()}, compressed)


npz_layouts = st.sampled_from(["keras", "xy", "images"])


def load_npz(test: str, blob: bytes) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data.npz").write_bytes(blob)
        return load_data(test, root, root / "data.npz")


@examples(250)
@given(prefix=st.sampled_from([b"", b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY\x01\x00", b"\x80\x04"]),
       blob=st.binary(max_size=400), layout=npz_layouts, member=st.none() | st.sampled_from(NPZ_KEYS),
       compressed=st.booleans())
def test_npz_random_bytes(prefix, blob, layout, member, compressed):
    """Random bytes as the file, or (member) as one member of a well-formed zip of otherwise valid arrays."""
    if member is None:
        load_npz("npz random bytes", prefix + blob)
    else:
        members = {f"{k}.npy": npy_bytes(v) for k, v in valid_npz_arrays(layout).items()}
        members[f"{member}.npy"] = prefix + blob
        load_npz("npz random bytes", zip_bytes(members, compressed))


@examples(250)
@given(layout=npz_layouts, compressed=st.booleans(), fraction=fractions)
def test_npz_truncated(layout, compressed, fraction):
    load_npz("npz truncated", cut(npz_bytes(valid_npz_arrays(layout), compressed), fraction))


@examples(250)
@given(layout=npz_layouts, compressed=st.booleans(), data_=st.data(),
       shape=st.lists(st.one_of(huge_dims, st.integers(0, 2**40)), min_size=0, max_size=4),
       descr=st.sampled_from(["|u1", "<f4", "<f8", "<i8", "|b1", "<c16", "<U8"]),
       version=st.sampled_from([(1, 0), (2, 0)]), body=st.binary(max_size=200), bare_npy=st.booleans())
def test_npz_huge_header(layout, compressed, data_, shape, descr, version, body, bare_npy):
    """An array whose .npy header claims a random, often huge, shape over a few bytes of data."""
    header = io.BytesIO()
    writer = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    writer(header, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    member = header.getvalue() + body
    if bare_npy:  # a lone .npy saved under a .npz name
        load_npz("npz huge header", member)
        return
    arrays = valid_npz_arrays(layout)
    key = data_.draw(st.sampled_from(sorted(arrays)))
    members = {f"{k}.npy": member if k == key else npy_bytes(v) for k, v in arrays.items()}
    load_npz("npz huge header", zip_bytes(members, compressed))


npz_dtypes = st.sampled_from([
    np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint64, np.float16, np.float32, np.float64,
    np.complex64, np.bool_, np.dtype("U3"), np.dtype("S3"), np.dtype("M8[s]"), np.dtype("m8[s]"),
    np.dtype([("a", "u1"), ("b", "<f4")]),
])
any_array = st.one_of(
    hnp.arrays(npz_dtypes, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5)),
    st.builds(lambda n: np.array([object()] * n, dtype=object), st.integers(0, 3)),  # pickled on save
)


@st.composite
def edge_labels(draw, count: int) -> np.ndarray:
    """`count` integer labels of some integer dtype, often at its extremes (uint64 over 2**63, -1, ...)."""
    dtype = np.dtype(draw(st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.uint32, np.uint64])))
    info = np.iinfo(dtype)
    extremes = [v for v in (-(2**63), -1, 0, 1, 9, 255, 2**31, 2**62, 2**63 - 1, 2**63, 2**64 - 1)
                if info.min <= v <= info.max]
    values = st.sampled_from(extremes) | st.integers(int(info.min), int(info.max))
    return np.array(draw(st.lists(values, min_size=count, max_size=count)), dtype=dtype)


@st.composite
def wrong_type_archives(draw) -> dict[str, np.ndarray]:
    """Valid arrays with some replaced by arrays of any dtype and shape, labels of floats, extra keys..."""
    layout = draw(npz_layouts)
    arrays = dict(valid_npz_arrays(layout))
    count = len(next(iter(arrays.values())))  # of the first image array: labels of that length get checked
    if draw(st.booleans()):  # labels of any dtype (floats, bools, uint64 over 2**63, ...) and a likely shape
        shapes = st.sampled_from([(count,), (count, 1), (count, 2), (count - 1,)])
        label_key = {"keras": "y_train", "xy": "y", "images": "labels"}[layout]
        arrays[label_key] = draw(st.one_of(hnp.arrays(npz_dtypes, shapes), edge_labels(count)))
    for key in draw(st.lists(st.sampled_from(NPZ_KEYS), max_size=3, unique=True)):
        arrays[key] = draw(st.one_of(
            any_array,
            hnp.arrays(npz_dtypes, st.sampled_from([(count,), (count, 1), (count, 4, 4), (count, 4, 4, 1)])),
        ))
    for key in draw(st.lists(st.sampled_from(sorted(arrays)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del arrays[key]
    names = st.text(min_size=1, max_size=8).filter(lambda k: "/" not in k and "\0" not in k)  # zip-able names
    extra = draw(st.dictionaries(names, any_array, max_size=2))
    return {**arrays, **extra}


@examples(250)
@given(arrays=wrong_type_archives(), compressed=st.booleans())
def test_npz_wrong_types(arrays, compressed):
    load_npz("npz wrong types", npz_bytes(arrays, compressed))


@examples(250)
@given(layout=npz_layouts, compressed=st.booleans(), positions=bit_positions)
def test_npz_bit_flips(layout, compressed, positions):
    load_npz("npz bit flips", flip_bits(npz_bytes(valid_npz_arrays(layout), compressed), positions))


# ---------------------------------------------------------------- image folders

IMAGE_FORMATS = {".png": "PNG", ".bmp": "BMP", ".gif": "GIF", ".jpg": "JPEG"}
MAGICS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"BM", b"GIF89a", b"GIF87a", b"II*\0", b"MM\0*",
          b"P5\n", b"RIFF", b"\0\0\1\0", b"8BPS"]


def image_bytes(suffix: str, mode: str = "L", size: tuple[int, int] = (4, 4), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size)
    image.putdata([tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(size[0] * size[1])])
    if mode == "P+transparency":
        image = image.convert("P")
        image.info["transparency"] = 0
        mode = "P"
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    fmt = IMAGE_FORMATS.get(suffix, suffix.lstrip(".").upper())
    if fmt == "JPEG" and image.mode not in ("1", "L", "RGB", "CMYK"):
        image = image.convert("RGB")
    extra = {"transparency": 0} if image.info.get("transparency") == 0 and fmt in ("PNG", "GIF") else {}
    image.save(buffer, format=fmt, **extra)
    return buffer.getvalue()


def write_folder(root: Path, files: dict[str, bytes]) -> None:
    for name, payload in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)


def valid_image_folder(suffix: str, classes: bool) -> dict[str, bytes]:
    """Eight 4x4 greyscale images, in two class folders or loose."""
    return {(f"{'ab'[i % 2]}/" if classes else "") + f"{i}{suffix}": image_bytes(suffix, "L", seed=i)
            for i in range(8)}


# A JPEG decodes whatever size its header says, filling in missing data: a 361-byte file can be a grey
# image of Pillow's MAX_IMAGE_PIXELS (the limit data.py enforces), which costs ~4 bytes a pixel to read
# (Pillow's copy, its conversion, numpy's). No other claim of a header may cost anything.
IMAGE_DECODE_BYTES = 4 * Image.MAX_IMAGE_PIXELS


# Each image-folder case builds tf.data pipelines to decode the folder (~0.3 s a case): fewer cases than the others.
IMAGE_FOLDER_EXAMPLES = 60


def load_images(test: str, files: dict[str, bytes]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folder(root, files)
        return load_data(test, root, root, IMAGE_DECODE_BYTES)


suffixes = st.sampled_from(sorted(IMAGE_FORMATS))


@st.composite
def folder_with_one(draw, payloads):
    """A valid image folder, one of whose files (or a new one) holds a payload from `payloads`."""
    suffix, classes = draw(suffixes), draw(st.booleans())
    files = valid_image_folder(suffix, classes)
    name = draw(st.sampled_from(sorted(files) + [("a/" if classes else "") + "new" + draw(suffixes)]))
    files[name] = draw(payloads(Path(name).suffix if name in files else suffix, files.get(name)))
    if draw(st.booleans()):  # alone: three copies of it, the only images of the folder
        files = {str(Path(name).with_stem(f"{Path(name).stem}{i}")): files[name] for i in range(3)}
    return files


@examples(IMAGE_FOLDER_EXAMPLES)
@given(files=folder_with_one(lambda suffix, old: st.builds(lambda m, b: m + b, st.sampled_from(MAGICS),
                                                                st.binary(max_size=300))))
def test_image_folder_random_bytes(files):
    load_images("images random bytes", files)


@examples(IMAGE_FOLDER_EXAMPLES)
@given(files=folder_with_one(lambda suffix, old: st.builds(
    lambda mode, fraction: cut(image_bytes(suffix, mode), fraction),
    st.sampled_from(["L", "RGB", "P"]), fractions)))
def test_image_folder_truncated(files):
    load_images("images truncated", files)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(width: int, height: int, depth: int, color: int, idat: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def bmp_header(width: int, height: int, bits: int, body: bytes) -> bytes:
    palette = b"\0\0\0\0" * 256 if bits == 8 else b""
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, bits, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(body), 0, 0, offset) + info + palette + body


def gif_header(width: int, height: int, body: bytes) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02" + bytes([len(body[:255])])
    return b"GIF89a" + screen + descriptor + body[:255] + b"\0;"


def jpeg_header(width: int, height: int) -> bytes:
    """A valid JPEG whose SOF says width x height."""
    blob = bytearray(image_bytes(".jpg", "L", (8, 8)))
    sof = blob.index(b"\xff\xc0")
    blob[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(blob)


@st.composite
def huge_image(draw, suffix, old):
    """An image header declaring random, often huge, dimensions over a little data."""
    kind = draw(st.sampled_from(["png", "bmp", "gif", "jpeg"]))
    body = draw(st.one_of(st.binary(max_size=100), st.builds(zlib.compress, st.binary(max_size=2000))))
    if kind == "png":
        width, height = draw(huge_dims), draw(huge_dims)
        depth, color = draw(st.sampled_from([(8, 0), (8, 2), (8, 3), (8, 6), (1, 0), (16, 0), (16, 2)]))
        return png_header(width, height, depth, color, body)
    if kind == "bmp":
        signed = st.integers(-(2**31), 2**31 - 1)
        return bmp_header(draw(signed), draw(signed), draw(st.sampled_from([8, 24, 32])), body)
    side = st.one_of(st.sampled_from([0, 1, 2**15, 2**16 - 1]), st.integers(0, 2**16 - 1))
    if kind == "gif":
        return gif_header(draw(side), draw(side), body)
    return jpeg_header(draw(side), draw(side))


@examples(IMAGE_FOLDER_EXAMPLES)
@given(files=folder_with_one(huge_image))
def test_image_folder_huge_header(files):
    load_images("images huge header", files)


def test_image_folder_of_tiny_bombs_is_listed_then_decoded_a_batch_at_a_time():
    """140 copies of a 361-byte JPEG that decodes to 4000x4000 grey: 2.2 GB in all. Loading decodes one (the
    first, with Pillow's limits); a pipeline holds a batch of them at a time, never the folder."""
    files = {f"{i:03}.jpg": jpeg_header(4000, 4000) for i in range(140)}
    image = 4000 * 4000
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), files)
        splits = None

        def load_and_take_a_batch():
            nonlocal splits
            splits = data.load(tmp, download=False, validation_fraction=0, test_fraction=0, cache="none")
            return next(iter(splits.pipeline("train", 4)))

        assert outcome("images tiny bombs", load_and_take_a_batch, DataError, tmp, lambda batch: None,
                       extra_memory=40 * image) == "ok"
        assert len(splits.train) == 140


MODE_FORMATS = {"png": ["1", "L", "LA", "P", "P+transparency", "RGB", "RGBA", "I;16"],
                "bmp": ["1", "L", "P", "RGB", "RGBA"], "gif": ["L", "P", "P+transparency", "RGB"],
                "jpeg": ["L", "RGB", "CMYK"], "tiff": ["1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16", "F", "CMYK"],
                "webp": ["RGB", "RGBA"], "ico": ["RGBA"], "ppm": ["1", "L", "RGB", "I;16"]}


@st.composite
def wrong_images(draw):
    """Image folders of mixed modes, sizes, formats (a TIFF named .png), stray files and layouts."""
    files = {}
    classes = draw(st.booleans())
    for i in range(draw(st.integers(1, 6))):
        fmt = draw(st.sampled_from(sorted(MODE_FORMATS)))
        mode = draw(st.sampled_from(MODE_FORMATS[fmt]))
        size = draw(st.sampled_from([(4, 4), (4, 4), (4, 4), (1, 1), (5, 3), (3, 5)]))
        folder = draw(st.sampled_from(["a/", "b/", "c/d/"])) if classes else ""
        name = f"{folder}{i}{draw(suffixes)}"
        files[name] = image_bytes(f".{fmt}", mode, size, seed=i)
    if draw(st.booleans()):  # a stray file: text under an image suffix, or a non-image beside the images
        files[draw(st.sampled_from(["notes.png", "README.txt", "a/x.jpg", "labels.csv"]))] = b"not an image\n"
    return files


@examples(IMAGE_FOLDER_EXAMPLES)
@given(files=wrong_images())
def test_image_folder_wrong_types(files):
    load_images("images wrong types", files)


@examples(IMAGE_FOLDER_EXAMPLES)
@given(files=folder_with_one(lambda suffix, old: st.builds(
    lambda positions: flip_bits(old if old is not None else image_bytes(suffix), positions), bit_positions)))
def test_image_folder_bit_flips(files):
    load_images("images bit flips", files)


# ---------------------------------------------------------------- JSON documents: run configs, export metadata

VALID_CONFIG = {
    "options": {"model": "vae", "arch": "conv", "dataset": "mnist", "data_dir": None, "image_size": None,
                "seed": 0, "limit": None, "validation_fraction": 0.1, "no_download": False, "latent_dim": 2,
                "widths": [32, 64]},
    "model_config": {"latent_dim": 2}, "model_class": "VAE",
    "data": {"name": "mnist", "source": "tfds:mnist", "image_shape": [28, 28, 1], "num_classes": 10,
             "sizes": {"train": 54000, "validation": 6000, "test": 10000},
             "load": {"name": "mnist", "data_dir": None, "validation_fraction": 0.1, "test_fraction": 0.1, "seed": 0,
                      "image_size": None, "limit": None, "download": True}},
    "versions": {"keras_ae": "0.3.0", "tensorflow": "2.21.0", "keras": "3.15.0", "numpy": "2.4.6"},
}
VALID_METADATA = {
    "format_version": 2, "name": "vae-conv-mnist", "version": 1, "model": "vae", "model_class": "VAE",
    "latent_dim": 2, "image_shape": [28, 28, 1], "pixel_range": [0.0, 1.0], "num_classes": None, "labels": None,
    "sampling": {"prior": "normal", "mean": [0.0, 0.0], "std": [1.0, 1.0]},
    "signatures": {"decoder": {"name": "serving_default", "inputs": {"z": {"shape": [None, 2], "dtype": "float32"}},
                               "outputs": {"images": {"shape": [None, 28, 28, 1], "dtype": "float32"}}}},
    "artifacts": {"decoder/1": {"kind": "saved_model", "network": "decoder", "variant": "float32",
                                "sha256": "0" * 64, "bytes": 1}},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def json_text(value) -> str:
    return json.dumps(value)  # NaN and Infinity as JavaScript writes them, which json.loads reads back


@st.composite
def wrong_type_documents(draw, valid: dict):
    """JSON of another shape: any value at the top, or a valid document with fields replaced or removed."""
    how = draw(st.sampled_from(["top", "field", "nested", "remove"]))
    if how == "top":
        return draw(json_values)
    document = json.loads(json.dumps(valid))
    if how == "field":
        document[draw(st.sampled_from(sorted(document)))] = draw(json_values)
    elif how == "nested":
        nested = [k for k, v in document.items() if isinstance(v, dict)]
        inner = document[draw(st.sampled_from(nested))]
        inner[draw(st.sampled_from(sorted(inner) + ["new"]))] = draw(json_values)
    else:
        for key in draw(st.lists(st.sampled_from(sorted(document)), min_size=1, max_size=3, unique=True)):
            del document[key]
    return document


@st.composite
def huge_documents(draw) -> str:
    """JSON that is costly to read: deep nesting, integers of many digits, huge exponents, long strings."""
    kind = draw(st.sampled_from(["deep arrays", "deep objects", "long integer", "huge exponent", "long string",
                                 "many keys"]))
    size = draw(st.one_of(st.sampled_from([10, 1000, 4300, 4301, 100_000, 1_000_000]), st.integers(1, 200_000)))
    closed = draw(st.booleans())
    if kind == "deep arrays":
        return "[" * size + ("]" * size if closed else "")
    if kind == "deep objects":
        return '{"options": ' * size + "{}" + ("}" * size if closed else "")
    if kind == "long integer":
        return '{"options": {"seed": ' + "9" * size + "}}"
    if kind == "huge exponent":
        return '{"options": {"seed": 1e' + "9" * min(size, 10_000) + "}}"
    if kind == "long string":
        return '{"options": {"dataset": "' + "x" * size + ('"}}' if closed else "")
    return "{" + ", ".join(f'"k{i}": {i}' for i in range(min(size, 100_000))) + ', "options": {}}'


def read_json_file(test: str, filename: str, blob: bytes, reader, error_type, check) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / filename).write_bytes(blob)
        return outcome(test, lambda: reader(root), error_type, Path(filename).name, check)


def check_config(config) -> None:
    assert isinstance(config, dict) and isinstance(config["options"], dict)


def read_config(test: str, blob: bytes) -> str:
    return read_json_file(test, "config.json", blob, runs.read_config, KerasAEError, check_config)


@examples(200)
@given(prefix=st.sampled_from([b"", b"{", b'{"options": ', b"[", b"\xef\xbb\xbf"]), blob=st.binary(max_size=200))
def test_config_random_bytes(prefix, blob):
    read_config("config random bytes", prefix + blob)


@examples(100)
@given(fraction=fractions)
def test_config_truncated(fraction):
    read_config("config truncated", cut(json_text(VALID_CONFIG).encode(), fraction))


@examples(200)
@given(text=huge_documents())
def test_config_huge(text):
    read_config("config huge", text.encode())


@examples(200)
@given(document=wrong_type_documents(VALID_CONFIG))
def test_config_wrong_types(document):
    read_config("config wrong types", json_text(document).encode())


@examples(200)
@given(positions=bit_positions)
def test_config_bit_flips(positions):
    read_config("config bit flips", flip_bits(json_text(VALID_CONFIG).encode(), positions))


DATA_DIR = "<the test's data folder>"  # replaced by the real one in each example
small_json = st.recursive(  # JSON whose numbers stay small: an image_size of [10**6, 10**6] is a real request
    st.none() | st.booleans() | st.integers(-2, 12) | st.floats() | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


@st.composite
def load_arguments(draw) -> dict:
    """The data.load arguments a run config records, some replaced by JSON of another type or removed."""
    arguments = {"name": "toy", "data_dir": DATA_DIR, "image_size": None, "seed": 0, "limit": None,
                 "validation_fraction": 0.1, "test_fraction": 0.1, "download": False}
    names = st.sampled_from(["toy", "digits", "", "not-there", "toy.npz", "/no/such/file.npz"])
    choices = {"name": names | small_json.filter(lambda v: not isinstance(v, str)),
               "data_dir": st.sampled_from([DATA_DIR, "/no/such/folder"]) | small_json,
               "image_size": st.lists(st.integers(-1, 12), max_size=3) | small_json}
    for key in draw(st.lists(st.sampled_from(sorted(arguments) + ["unknown"]), min_size=1, max_size=3, unique=True)):
        if draw(st.integers(0, 4)) == 0:
            arguments.pop(key, None)
        else:
            arguments[key] = draw(choices.get(key, small_json))
    return arguments


@examples(100)
@given(arguments=load_arguments())
def test_config_data_load_arguments(arguments):
    """A run folder whose config.json has data.load arguments of any JSON type: load_run loads or says what is wrong.

    The model loader is stubbed (any model.keras loads, and is taken to be the model config.json
    describes) and TFDS says it knows no dataset, so no test downloads; dataset "toy" is a small .npz
    in the data folder.
    """
    def check(run):
        assert isinstance(run, runs.Run) and run.model == "model"
        check_splits(run.splits)

    no_tfds = Unavailable("no TFDS in fuzz tests", unknown=True)
    with tempfile.TemporaryDirectory() as tmp, mock.patch("keras.models.load_model", return_value="model"), \
            mock.patch.object(resolve, "load_tfds", side_effect=no_tfds), mock.patch.object(runs, "check_same_model"):
        root = Path(tmp)
        (root / "data").mkdir()
        (root / "data" / "toy.npz").write_bytes(npz_bytes(valid_npz_arrays("xy"), compressed=False))
        arguments = {k: str(root / "data") if v == DATA_DIR else v for k, v in arguments.items()}
        # The fingerprint of the unchanged arguments: a load of other data must be refused, not used.
        trained_on = data.load("toy", data_dir=str(root / "data"), download=False).fingerprint()
        (root / "config.json").write_text(json_text({"options": {}, "data": {"load": arguments,
                                                                              "fingerprint": trained_on}}))
        (root / "model.keras").write_bytes(b"")
        outcome("config data.load", lambda: runs.load_run(root), KerasAEError, "", check)


# Export metadata: keras_ae.serving.read_metadata(model_dir) -> dict, raising serving.ArtifactError.


def check_metadata(metadata) -> None:
    assert isinstance(metadata, dict) and metadata["format_version"] == serving.FORMAT_VERSION
    assert all(key in metadata for key in serving.REQUIRED_KEYS)


def read_metadata(test: str, blob: bytes) -> str:
    return read_json_file(test, "1/metadata.json", blob, serving.read_metadata, serving.ArtifactError,
                          check_metadata)


@examples(200)
@given(prefix=st.sampled_from([b"", b"{", b'{"format_version": 2, ', b"[", b"\xef\xbb\xbf"]),
       blob=st.binary(max_size=200))
def test_metadata_random_bytes(prefix, blob):
    read_metadata("metadata random bytes", prefix + blob)


@examples(100)
@given(fraction=fractions)
def test_metadata_truncated(fraction):
    read_metadata("metadata truncated", cut(json_text(VALID_METADATA).encode(), fraction))


@examples(200)
@given(text=huge_documents())
def test_metadata_huge(text):
    read_metadata("metadata huge", text.replace('"options"', '"format_version": 2, "sampling"').encode())


@examples(200)
@given(document=wrong_type_documents(VALID_METADATA))
def test_metadata_wrong_types(document):
    read_metadata("metadata wrong types", json_text(document).encode())


@examples(200)
@given(positions=bit_positions)
def test_metadata_bit_flips(positions):
    read_metadata("metadata bit flips", flip_bits(json_text(VALID_METADATA).encode(), positions))


@st.composite
def wrong_samplings(draw) -> dict:
    """Valid metadata whose "sampling" (what sample_codes reads) is any JSON, or has fields of any JSON."""
    metadata = json.loads(json.dumps(VALID_METADATA))
    if draw(st.booleans()):
        metadata["sampling"] = draw(json_values)
    else:
        sampling = metadata["sampling"]
        sampling["prior"] = draw(st.sampled_from(["normal", "empirical_gaussian", "uniform"]))
        for key in draw(st.lists(st.sampled_from(["prior", "mean", "std", "covariance"]), min_size=1, max_size=3)):
            sampling[key] = draw(st.one_of(json_values, st.lists(st.floats(), max_size=3),
                                           st.lists(st.lists(st.floats(), max_size=3), max_size=3)))
    return metadata


@examples(150)
@given(metadata=wrong_samplings())
def test_metadata_sampling_wrong_types(metadata):
    """What read_metadata passes must be usable: sample_codes gives (4, d) float32 codes or an ArtifactError."""
    def sample(root):
        return serving.sample_codes(serving.read_metadata(root)["sampling"], 4, seed=0)

    def check(codes):
        assert isinstance(codes, np.ndarray) and codes.dtype == np.float32 and codes.ndim == 2 and len(codes) == 4
        assert np.isfinite(codes).all()

    read_json_file("metadata sampling", "1/metadata.json", json_text(metadata).encode(), sample,
                   serving.ArtifactError, check)


# ---------------------------------------------------------------- no pickle of user data


def package_sources() -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(PACKAGE.rglob("*.py"))}


FORBIDDEN = {
    r"\b(import|from)\s+(c?pickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b": "a pickle-like module",
    r"\bpickle\.": "the pickle module",
    r"allow_pickle\s*=\s*(True|[^F\s])": "allow_pickle other than False",
    r"\bjoblib\.load\b": "joblib.load (unpickles)",
    r"\btorch\.load\b": "torch.load (unpickles)",
    r"\bread_pickle\b": "pandas.read_pickle",
    r"\bsafe_mode\s*=\s*(False|[^T\s])": "Keras safe_mode other than True",
    r"enable_unsafe_deserialization": "Keras unsafe deserialization",
}


def test_no_pickle_of_user_data_in_the_package():
    sources = package_sources()
    assert len(sources) > 5 and PACKAGE / "data" / "npz.py" in sources
    found = []
    for path, text in sources.items():
        name = path.relative_to(PACKAGE.parent)
        for pattern, what in FORBIDDEN.items():
            found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {what}: {m.group(0)!r}"
                      for m in re.finditer(pattern, text)]
        # Every other mention of pickle must be the `allow_pickle=False` of a numpy call.
        for m in re.finditer(r"pickle", re.sub(r"allow_pickle\s*=\s*False", "", text), flags=re.IGNORECASE):
            found.append(f"{name}: mentions pickle outside allow_pickle=False")
        # Every np.load / numpy.load / np.lib.format.read_array passes allow_pickle=False itself.
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("load", "read_array") and ast.unparse(node.func.value) in (
                        "np", "numpy", "np.lib.format", "numpy.lib.format"):
                flag = next((k.value for k in node.keywords if k.arg == "allow_pickle"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    found.append(f"{name}:{node.lineno}: {ast.unparse(node.func)}(...) without allow_pickle=False")
    assert not found, "possible unpickling of user data:\n" + "\n".join(found)


def test_the_pickle_check_sees_what_it_should():
    """The scan above is not vacuous: it flags each forbidden form in a made-up source."""
    samples = ["import pickle", "from joblib import load", "np.load(path, allow_pickle=True)",
               "keras.models.load_model(p, safe_mode=False)", "torch.load(f)", "x = pickle.loads(b)"]
    for sample in samples:
        assert any(re.search(pattern, sample) for pattern in FORBIDDEN), sample
