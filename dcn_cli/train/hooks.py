"""What ``dcn train`` adds around the engine's loop, each written once.

:class:`Saver` keeps ``history.csv`` and ``model.keras`` on disk,
:class:`EarlyStopping` stops when validation stops improving and keeps the
best weights, and :class:`TensorBoard` writes the epoch scalars. Under a cluster only the chief
runs the hooks that write or print (the progress hook, from
:mod:`dcn_cli.commands.render`, among them); every worker runs :class:`EarlyStopping`,
whose decision depends only on the weights, which all workers share.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.model import checkpoint
from dcn_cli.train.engine import Engine, Hook

SAVE_EVERY_SECONDS = 10.0


class Saver(Hook):
    """Write history.csv, then model.keras, whole, at most every 10 s and at the end.

    Saving after every epoch cost more than training on the toy (100 short
    epochs); a kill loses at most the last 10 seconds, and ``--resume``
    restarts from the last saved epoch. History goes first: a kill between
    the two leaves it ahead of the model, and ``--resume`` trusts the model's
    own step count. ``seconds_before`` is the training time of the epochs a
    resumed run already has, so the ``seconds`` column adds up.
    """

    def __init__(self, out: Path, history: list[dict[str, float]], seconds_before: float = 0.0):
        self.out, self.history, self.before = out, history, seconds_before
        self.last_save = float("-inf")

    def on_train_begin(self, engine: Engine, epochs: int, first_epoch: int) -> None:
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.before + time.perf_counter() - self.start

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        self.history.append({"epoch": epoch, **logs, "seconds": round(self.seconds(), 3)})
        now = time.monotonic()
        if now - self.last_save >= SAVE_EVERY_SECONDS:
            self.save(engine)
            self.last_save = now

    def on_train_end(self, engine: Engine, finished: bool) -> None:
        self.train_seconds = self.seconds()
        if finished and self.history:
            self.save(engine)  # the final state; a failed or stopped run keeps its last save

    def save(self, engine: Engine) -> None:
        if not all(np.isfinite(w).all() for w in engine.model.get_weights()):
            raise DcnError(
                f"training diverged: the weights hold NaN or infinity after epoch "
                f"{len(self.history)}; try a lower --lr"
            )
        checkpoint.save_history(self.out, self.history)
        checkpoint.save_model(engine.model, self.out)


class EarlyStopping(Hook):
    """Stop after ``patience`` epochs without a lower ``val_loss``; end on the best weights."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_train_begin(self, engine: Engine, epochs: int, first_epoch: int) -> None:
        self.best, self.best_weights, self.wait = float("inf"), None, 0

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        if logs["val_loss"] < self.best:
            self.best, self.wait = logs["val_loss"], 0
            self.best_weights = engine.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            engine.stop_training = True

    def on_train_end(self, engine: Engine, finished: bool) -> None:
        if finished and self.best_weights is not None:
            engine.model.set_weights(self.best_weights)


class TensorBoard(Hook):
    """``epoch_loss`` and friends under logs/train and logs/validation, as Keras names them."""

    def __init__(self, logs: Path):
        self.logs = logs

    def on_train_begin(self, engine: Engine, epochs: int, first_epoch: int) -> None:
        import tensorflow as tf

        self.writers = {
            part: tf.summary.create_file_writer(str(self.logs / part))
            for part in ("train", "validation")
        }

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        import tensorflow as tf

        for name, value in logs.items():
            part = "validation" if name.startswith("val_") else "train"
            with self.writers[part].as_default():
                # Keras numbers epochs from 0 in TensorBoard.
                tf.summary.scalar(f"epoch_{name.removeprefix('val_')}", value, step=epoch - 1)

    def on_train_end(self, engine: Engine, finished: bool) -> None:
        for writer in self.writers.values():
            writer.close()
