"""Training callbacks shared by every model of the zoo."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import keras

from keras_ae.io import atomic_path, read_json, write_json


class Backup(keras.callbacks.Callback):
    """Resume after a crash, and keep the last good epoch when the loss turns non-finite.

    At the end of every epoch whose metrics are all finite, the whole model (weights and optimizer
    state) is saved atomically as ``epoch-NNNN.keras`` in ``folder``; then ``state.json`` is
    replaced, atomically too, to point at it. A process killed at any moment therefore leaves a
    consistent pair. :meth:`restore` loads it into a fresh model before ``fit`` and returns the
    epoch to start from (Keras's own ``BackupAndRestore`` writes its weights and metadata in place,
    so a kill mid-write leaves a file it cannot read back).
    """

    def __init__(self, folder):
        super().__init__()
        self.folder, self.epoch = Path(folder), 0

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    @property
    def checkpoint(self) -> Path | None:
        """The file of the last good epoch, if any."""
        if not self.state_path.is_file():
            return None
        return self.folder / read_json(self.state_path)["file"]

    def restore(self, model) -> int:
        """Load the last good epoch into ``model`` (compiled); return the number of epochs it had run."""
        if self.checkpoint is None:
            return 0
        model.optimizer.build(model.trainable_variables)
        model.load_weights(self.checkpoint)
        self.epoch = read_json(self.state_path)["epoch"]
        return self.epoch

    def on_epoch_end(self, epoch, logs=None):
        if not logs or not all(math.isfinite(float(v)) for v in logs.values()):
            return
        previous = self.checkpoint
        name = f"epoch-{epoch + 1:04d}.keras"
        with atomic_path(self.folder / name) as tmp:
            self.model.save(tmp)
        write_json(self.state_path, {"epoch": epoch + 1, "file": name})
        self.epoch = epoch + 1
        if previous is not None and previous.name != name:
            previous.unlink(missing_ok=True)

    def remove(self) -> None:
        """Delete the backup once the final model is safely written."""
        shutil.rmtree(self.folder, ignore_errors=True)
