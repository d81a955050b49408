"""Figures written to run folders (PNG, matplotlib without a display)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from keras_ae.io import atomic_path  # noqa: E402


def image_rows(rows: dict[str, np.ndarray], path, title: str | None = None) -> None:
    """Save a figure with one labelled row of images per entry (e.g. originals over reconstructions).

    Each value is an array (N, H, W, C) of pixels in [0, 1]; all rows show the same N columns.
    """
    _draw_rows(list(rows.items()), path, title)


def image_grid(images: np.ndarray, path, columns: int = 10, title: str | None = None) -> None:
    """Save images (N, H, W, C) in [0, 1] as an unlabelled grid with ``columns`` per row."""
    _draw_rows([("", images[start:start + columns]) for start in range(0, len(images), columns)], path, title)


def _draw_rows(rows: list[tuple[str, np.ndarray]], path, title: str | None) -> None:
    columns = min(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), columns, figsize=(columns * 0.9, len(rows) * 1.0 + 0.3), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(columns):
            ax = axes[r, c]
            image = np.clip(images[c], 0.0, 1.0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
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


def sample_grid(model, path, title: str | None = None, columns: int = 10, seed: int = 0) -> None:
    """Save images drawn from the prior through the decoder: one row per class for a conditional model."""
    import keras

    generator = keras.random.SeedGenerator(seed)
    if model.num_classes:
        image_rows({f"y = {c}": np.asarray(model.sample(columns, labels=c, seed=generator))
                    for c in range(model.num_classes)}, path, title=title)
    else:
        image_grid(np.asarray(model.sample(columns * columns, seed=generator)), path, columns, title=title)


def _save(fig, path) -> None:
    """Write ``fig`` as a PNG atomically and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
