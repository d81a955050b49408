"""Training callbacks shared by every model of the zoo."""

from __future__ import annotations

import csv
import io
import math
import shutil
import time
from pathlib import Path

import keras

from keras_ae.errors import KerasAEError, one_line
from keras_ae.io import atomic_path, confined, read_json, write_json


class Backup(keras.callbacks.Callback):
    """Resume after a crash, with the model, the history and the epoch count always in step.

    At the end of every epoch whose metrics are all finite: ``history.csv`` is rewritten with that
    epoch's row, then the whole model (weights and optimizer state) is saved as ``epoch-NNNN.keras`` in
    ``folder``, then ``state.json`` is replaced to point at it -- each write atomic. A process killed
    at any moment leaves a state.json that names a complete checkpoint, and :meth:`restore` cuts the
    history back to that epoch, so a resumed run never loses or repeats a row. (Keras's own
    ``BackupAndRestore`` writes in place, so a kill mid-write leaves a file it cannot read back, and
    its CSVLogger advances apart from it.) The file state.json names must lie inside ``folder``.

    ``seconds`` is the wall time of the training so far, through the last good epoch and across resumes
    (state.json keeps it): what a time budget counts.
    """

    def __init__(self, folder, history):
        super().__init__()
        self.folder, self.history, self.epoch, self.rows = Path(folder), Path(history), 0, []
        self.seconds, self._started = 0.0, None

    @property
    def state_path(self) -> Path:
        return self.folder / "state.json"

    def _state(self) -> dict | None:
        """The checked state.json, or None when there is no backup."""
        if not self.state_path.is_file():
            return None
        state = read_json(self.state_path, KerasAEError, f"remove {self.folder} to train from the start")
        if not (isinstance(state, dict) and isinstance(state.get("epoch"), int) and state["epoch"] >= 1
                and isinstance(state.get("file"), str)):
            raise KerasAEError(f"{self.state_path}: not a backup state (an epoch >= 1 and a file); remove "
                               f"{self.folder} to train from the start")
        path = confined(self.folder, state["file"], self.state_path)
        if path.parent != self.folder or not path.is_file():
            raise KerasAEError(f"{self.state_path}: names {state['file']!r:.80}, which is no checkpoint in "
                               f"{self.folder}; remove {self.folder} to train from the start")
        return {**state, "path": path}

    @property
    def checkpoint(self) -> Path | None:
        """The file of the last good epoch, if any."""
        state = self._state()
        return None if state is None else state["path"]

    def restore(self, model) -> int:
        """Load the last good epoch into ``model`` (compiled) and cut the history back to it; return its epoch."""
        state = self._state()
        if state is None:
            self.history.unlink(missing_ok=True)  # rows of no checkpoint: a fresh start
            return 0
        model.optimizer.build(model.trainable_variables)
        try:
            model.load_weights(state["path"])
        except ValueError as error:  # weights of another layout (a checkpoint of an older keras_ae)
            raise KerasAEError(f"{state['path']}: this checkpoint does not fit the model ({one_line(error)[:160]}); "
                               f"remove {self.folder} or pass --overwrite to train from the start") from None
        self.epoch, self.seconds = state["epoch"], float(state.get("seconds", 0.0))
        if self.history.is_file():
            with self.history.open(newline="") as f:
                self.rows = list(csv.DictReader(f))[:self.epoch]
        self._write_history()
        return self.epoch

    def on_train_begin(self, logs=None):
        self._started, self._base = time.monotonic(), self.seconds

    def on_epoch_end(self, epoch, logs=None):
        if not logs or not all(math.isfinite(float(v)) for v in logs.values()):
            return
        if self._started is not None:
            self.seconds = self._base + time.monotonic() - self._started
        previous = self.checkpoint
        self.rows.append({"epoch": epoch, **{key: logs[key] for key in sorted(logs)}})
        self._write_history()
        name = f"epoch-{epoch + 1:04d}.keras"
        with atomic_path(self.folder / name) as tmp:
            self.model.save(tmp)
        write_json(self.state_path, {"epoch": epoch + 1, "file": name, "seconds": round(self.seconds, 3)})
        self.epoch = epoch + 1
        if previous is not None and previous.name != name:
            previous.unlink(missing_ok=True)

    def _write_history(self) -> None:
        """history.csv with one row per good epoch (the format of Keras's CSVLogger), atomically."""
        text = io.StringIO()
        if self.rows:
            writer = csv.DictWriter(text, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        with atomic_path(self.history) as tmp:
            Path(tmp).write_text(text.getvalue(), newline="")

    def remove(self) -> None:
        """Delete the backup once the final model is safely written."""
        shutil.rmtree(self.folder, ignore_errors=True)


def budget_spent(backup: Backup, minutes: float) -> bool:
    """Whether one more epoch, as long as the mean of ``backup``'s epochs so far, would end past ``minutes``
    of training (never before the first epoch)."""
    return bool(backup.epoch) and backup.seconds * (1 + 1 / backup.epoch) > 60.0 * minutes


class TimeBudget(keras.callbacks.Callback):
    """Stop at the last epoch boundary before the training's wall time passes ``minutes`` (:func:`budget_spent`).
    The clock is ``backup``'s, so the time before a kill counts after the resume."""

    def __init__(self, minutes: float, backup: Backup):
        super().__init__()
        self.minutes, self.backup, self.stopped = minutes, backup, False

    def on_epoch_end(self, epoch, logs=None):
        if budget_spent(self.backup, self.minutes):
            self.model.stop_training = self.stopped = True
