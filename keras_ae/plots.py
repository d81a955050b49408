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


def image_grid(images: np.ndarray, path, columns: int = 10, title: str | None = None) -> None:
    """Save images (N, H, W, C) in [0, 1] as an unlabelled grid with ``columns`` per row."""
    _draw_rows([("", images[start:start + columns]) for start in range(0, len(images), columns)], path, title)


def _draw_rows(rows: list[tuple[str, np.ndarray]], path, title: str | None) -> None:
    """Rows of images (rows may differ in length; missing cells stay empty)."""
    columns = max(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0 + 0.3), squeeze=False)
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
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def code_heatmap(codes: np.ndarray, path, title: str | None = None) -> None:
    """Save the codes (N images x latent units) as a heatmap: sparse codes show as mostly white."""
    magnitude = np.abs(codes)
    fig, ax = plt.subplots(figsize=(min(12, 2 + codes.shape[1] * 0.12), 4))
    shown = ax.imshow(magnitude, aspect="auto", cmap="Greys", interpolation="nearest")
    ax.set_xlabel("code unit")
    ax.set_ylabel("test image")
    fig.colorbar(shown, ax=ax, label="|z|")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def scatter(points: np.ndarray, labels, path, title: str | None = None, axis_names=("z1", "z2")) -> None:
    """Save 2-D points coloured by integer label (or in one colour when ``labels`` is None)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    shown = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
    if labels is not None:
        fig.colorbar(shown, ax=ax, label="label", ticks=np.unique(labels))
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def curves(history: dict[str, list[float]], path, title: str | None = None) -> None:
    """Save training curves: one panel per loss term, training and validation together."""
    terms = [name for name in history if not name.startswith("val_") and name != "epoch"]
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms), 2.8), squeeze=False)
    for ax, name in zip(axes[0], terms):
        epochs = np.arange(1, len(history[name]) + 1)
        ax.plot(epochs, history[name], label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], label="validation")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
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
