"""Figures written to run folders (PNG, matplotlib without a display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from keras_ae.io import atomic_path  # noqa: E402


def image_rows(rows: dict[str, np.ndarray], path, title: str | None = None) -> None:
    """Save a figure with one labelled row of images per entry (e.g. originals over reconstructions).

    Each value is an array (N, H, W, C) of pixels in [0, 1].
    """
    _draw_rows(list(rows.items()), path, title)


def image_grid(images: np.ndarray, path, columns: int = 10, title: str | None = None,
               column_titles: list[str] | None = None) -> None:
    """Save images (N, H, W, C) in [0, 1] as a grid with ``columns`` per row (and a title over each column)."""
    _draw_rows([("", images[start:start + columns]) for start in range(0, len(images), columns)], path, title,
               column_titles)


def _draw_rows(rows: list[tuple[str, np.ndarray]], path, title: str | None, column_titles=None) -> None:
    """Rows of images (rows may differ in length; missing cells stay empty)."""
    columns = max(len(images) for _, images in rows)
    title = _wrapped(title, columns * 0.9)
    lines = 0 if not title else title.count("\n") + 1
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0 + 0.3 + 0.2 * lines),
                             squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images):
                ax.axis("off")
                continue
            image = np.clip(images[c], 0.0, 1.0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    for c, text in enumerate((column_titles or [])[:columns]):
        axes[0, c].set_title(text, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _wrapped(title: str | None, width_inches: float) -> str | None:
    """``title`` broken into lines that fit a figure ``width_inches`` wide at 10 points (no clipped titles)."""
    import textwrap

    return title and textwrap.fill(title, max(24, int(width_inches * 12)))


def code_heatmap(codes: np.ndarray, path, title: str | None = None) -> None:
    """Save the codes (N images x latent units) as a signed heatmap (zero is white: sparse codes look empty)."""
    limit = float(np.abs(codes).max()) or 1.0
    fig, ax = plt.subplots(figsize=(max(6.0, min(12.0, 2 + codes.shape[1] * 0.12)), 4))
    shown = ax.imshow(codes, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    ax.set_xlabel("code unit")
    ax.set_ylabel("test image")
    fig.colorbar(shown, ax=ax, label="z")
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def tiled(images: np.ndarray, columns: int) -> np.ndarray:
    """Images (N, H, W, C), row-major, ``columns`` a row (N a multiple of it), as one picture with no gaps."""
    count, height, width, channels = images.shape
    rows = count // columns
    canvas = np.asarray(images).reshape(rows, columns, height, width, channels).transpose(0, 2, 1, 3, 4)
    return np.clip(canvas.reshape(rows * height, columns * width, channels), 0.0, 1.0)


def mosaic(images: np.ndarray, size: int, path, ticks: tuple, axis_names=("z1", "z2"), title: str | None = None) -> None:
    """Save a size x size grid of images as one seamless picture with the codes on its axes.

    ``images`` are in row-major order with the first axis going down from its largest value (as
    :func:`keras_ae.latent.manifold_grid` lays them out); ``ticks`` are the two axes' code values.
    """
    height, width, channels = images.shape[1:]
    canvas = tiled(images, size)
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.imshow(canvas[..., 0] if channels == 1 else canvas, cmap="gray", vmin=0.0, vmax=1.0)
    shown = np.linspace(0, size - 1, min(size, 5)).round().astype(int)
    ax.set_xticks(shown * width + width / 2 - 0.5, [f"{round(float(ticks[1][i]), 4) + 0.0:.2g}" for i in shown])
    ax.set_yticks(shown * height + height / 2 - 0.5, [f"{round(float(ticks[0][::-1][i]), 4) + 0.0:.2g}" for i in shown])
    ax.set_xlabel(axis_names[1])
    ax.set_ylabel(axis_names[0])
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def scatter(points: np.ndarray, labels, path, title: str | None = None, axis_names=("z1", "z2")) -> None:
    """Save 2-D points, one colour and one legend entry per class (one colour without ``labels``)."""
    fig, ax = plt.subplots(figsize=(6.5, 5))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=6, alpha=0.8)
    else:
        colours = plt.get_cmap("tab10" if len(np.unique(labels)) <= 10 else "tab20")
        for i, label in enumerate(np.unique(labels)):
            chosen = labels == label
            ax.scatter(points[chosen, 0], points[chosen, 1], s=6, alpha=0.8, color=colours(i % colours.N),
                       label=str(label))
        ax.legend(title="class", fontsize=8, markerscale=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title, fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def curves(history: dict[str, list[float]], path, title: str | None = None, units: dict | None = None) -> None:
    """Save training curves: one panel per loss term (training and validation), in a grid of up to 3 columns."""
    import math

    from matplotlib.ticker import MaxNLocator

    terms = [name for name in history if not name.startswith("val_") and name != "epoch"]
    columns = min(3, len(terms))
    rows = math.ceil(len(terms) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.9 * rows), squeeze=False)
    for ax, name in zip(axes.flat, terms):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_title(name + (f" ({units[name]})" if units and name in units else ""), fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in list(axes.flat)[len(terms):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path) -> None:
    """Write ``fig`` as a PNG atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
