"""Training callbacks shared by every model of the zoo."""

from __future__ import annotations

import math
from pathlib import Path

import keras

from keras_ae.io import atomic_path


class LastGoodCheckpoint(keras.callbacks.Callback):
    """Save the model (atomically) at the end of every epoch whose loss is finite.

    When a loss turns NaN or infinite, training stops (``TerminateOnNaN``) and this file still
    holds the last good epoch; ``epoch`` says which (1-based, 0 when none finished cleanly).
    """

    def __init__(self, path):
        super().__init__()
        self.path, self.epoch = Path(path), 0

    def on_epoch_end(self, epoch, logs=None):
        if logs and all(math.isfinite(float(v)) for v in logs.values()):
            with atomic_path(self.path) as tmp:
                self.model.save(tmp)
            self.epoch = epoch + 1
