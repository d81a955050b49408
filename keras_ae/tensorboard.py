"""What a run adds to TensorBoard (``tensorboard --logdir runs/``) beyond Keras's epoch scalars.

- ``images``: each epoch, fixed validation images over their reconstructions, and samples of the
  prior once it can be sampled (a VAE's from the start);
- ``test``: the test split's metrics of results.json, as scalars at the last epoch;
- HParams: the run's options beside those test metrics, so runs compare in the HParams tab;
- Projector: the codes of up to ``PROJECTED`` test images with their labels and a sprite of the images.

The images and the projector are for models with codes (autoencoders); a density model has neither.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from keras_ae import plots

PROJECTED = 1000  # test codes in the embedding projector
SHOWN = 8  # images per row of the epoch images


def _picture(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of equally many images (N, H, W, C) as one [1, rows*H, N*W, C] picture for tf.summary.image."""
    return plots.tiled(np.concatenate([np.asarray(row, "float32") for row in rows]), len(rows[0]))[None]


class EpochImages(keras.callbacks.Callback):
    """Write validation images over their reconstructions, and prior samples, to ``<logs>/images`` each epoch."""

    def __init__(self, logs, images: np.ndarray, labels=None):
        super().__init__()
        self.folder, self.images = Path(logs) / "images", np.asarray(images[:SHOWN], "float32")
        self.labels = None if labels is None else np.asarray(labels[:SHOWN])
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        model = self.model
        if model.code is None:  # a density model has no reconstruction
            return
        labels = self.labels if model.num_classes else None
        self.writer = self.writer or tf.summary.create_file_writer(str(self.folder))
        with self.writer.as_default():
            reconstructed = np.asarray(model.reconstruct(self.images, labels))
            tf.summary.image("reconstructions (validation images over them)",
                             _picture([self.images, reconstructed]), step=epoch)
            if model.prior.fitted and model.sampling_passes == 1:  # (a prior drawn element by element is slow)
                codes = model.prior.sample(SHOWN, seed=0)
                tf.summary.image("samples of the prior", _picture([np.asarray(model.decode(codes, labels))]),
                                 step=epoch)
        self.writer.flush()


def write_summary(logs, model, options: dict, test_metrics: dict, images: np.ndarray, labels, epoch: int) -> None:
    """The test metrics and the options (HParams) at ``epoch``, and the projector of the test codes."""
    import tensorflow as tf
    from tensorboard.plugins import projector
    from tensorboard.plugins.hparams import api as hparams

    logs = Path(logs)
    writer = tf.summary.create_file_writer(str(logs / "test"))
    with writer.as_default():
        shown = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                 for key, value in options.items() if value is not None}
        hparams.hparams(shown, trial_id=str(logs.parent.name))
        for name, value in test_metrics.items():
            tf.summary.scalar(f"test_{name}", float(value), step=epoch)
    writer.flush()

    if model.code is None or not model.code.flat:  # the projector shows flat codes
        return
    folder = logs / "projector"
    folder.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images[:PROJECTED], "float32")
    labels = None if labels is None else np.asarray(labels[:PROJECTED])
    codes = np.asarray(model.codes(images, labels if model.num_classes else None), "float32")
    tf.train.Checkpoint(codes=tf.Variable(codes)).save(str(folder / "codes.ckpt"))
    side = int(np.ceil(np.sqrt(len(images))))
    padded = np.concatenate([images, np.zeros((side * side - len(images), *images.shape[1:]), "float32")])
    sprite = (plots.tiled(padded, side) * 255).round().astype(np.uint8)
    keras.utils.save_img(folder / "sprite.png", sprite, scale=False)
    config = projector.ProjectorConfig()
    embedding = config.embeddings.add()
    embedding.tensor_name = "codes/.ATTRIBUTES/VARIABLE_VALUE"
    embedding.sprite.image_path = "sprite.png"
    embedding.sprite.single_image_dim.extend([images.shape[2], images.shape[1]])  # width, height
    if labels is not None:
        (folder / "metadata.tsv").write_text("".join(f"{label}\n" for label in labels))
        embedding.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(folder), config)
