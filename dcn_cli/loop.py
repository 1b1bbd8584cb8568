"""The training loop ``dcn compare`` runs on data held in memory.

It trains exactly as ``model.fit`` does on :meth:`Prepared.dataset`'s
batches (the same seeded permutation each epoch, the same loss, gradients and
optimizer step; a test checks the weights agree), with less work around the
arithmetic. On MovieLens 100K (tutorial protocol, DCN, 8 epochs) ``model.fit``
took 4.9-5.6 s and this loop takes 2.9-3.4 s; the difference was work around
the model:

- every batch's strings were looked up in the vocabularies again; here each
  split is encoded to ids once, and the model's *core*
  (:func:`~dcn_cli.model.split_model`), which shares the model's weights,
  trains on the ids;
- tf.data cut and gathered each batch, and Python ran once per step with
  callbacks and metric updates; here one traced function runs a whole epoch,
  gathering its batches from the encoded columns, and metrics are computed
  once, on the test split, at the end.

The README's Speed section measures the difference
(``benchmarks/reproduce.py``).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from dcn_cli.config import ModelConfig
from dcn_cli.model import split_model
from dcn_cli.pipeline import Prepared
from dcn_cli.training import compile_model

EVAL_BATCH = 65536
ENCODE_ROWS = 65536


def make_loop(model: keras.Model, config: ModelConfig, prepared: Prepared, batch_size: int):
    """A :class:`MemoryLoop`, or a :class:`FitLoop` for data streamed from disk."""
    if prepared.in_memory:
        return MemoryLoop(model, config, prepared, batch_size)
    return FitLoop(model, prepared, batch_size)


class _Loop:
    core: keras.Model  # the model that trains: the whole model, or its core
    prepared: Prepared

    def compile(self, optimizer) -> None:
        compile_model(keras, self.core, self.prepared.task, optimizer)
        optimizer.build(self.core.trainable_variables)


class FitLoop(_Loop):
    """``model.fit`` and ``model.evaluate`` on tf.data batches, for tables too big to hold."""

    def __init__(self, model: keras.Model, prepared: Prepared, batch_size: int):
        self.core, self.prepared, self.batch_size = model, prepared, batch_size

    def fit(self, epochs: int, seed: int) -> None:
        batches = self.prepared.dataset("train", self.batch_size, shuffle_seed=seed)
        self.core.fit(batches, epochs=epochs, verbose=0, shuffle=False)

    def evaluate(self) -> dict[str, Any]:
        batches = self.prepared.dataset("test", EVAL_BATCH)
        return self.core.evaluate(batches, verbose=0, return_dict=True)


class MemoryLoop(_Loop):
    """Fit and evaluate ``model`` on a prepared table held in memory.

    Call :meth:`compile` once with an optimizer, then :meth:`fit` and
    :meth:`evaluate` as often as needed; the epoch function is traced on the
    first :meth:`fit` and reused while the model's variables stay the same.
    """

    def __init__(
        self, model: keras.Model, config: ModelConfig, prepared: Prepared, batch_size: int
    ):
        encoder, self.core = split_model(model, config)
        self.names = [f.name for f in config.features]
        self.prepared = prepared
        self.batch_size = batch_size
        self.inputs, self.labels = self._encode(encoder, "train")
        self.test = self._encode(encoder, "test")
        self.rows = int(self.labels.shape[0])
        self._epoch = tf.function(self._run_epoch)
        self._predict = tf.function(lambda x: self.core(x, training=False), reduce_retracing=True)

    def _encode(self, encoder: keras.Model, split: str) -> tuple[list[tf.Tensor], tf.Tensor]:
        data = self.prepared.arrays(split)
        n = len(data[self.prepared.label])
        parts = []
        for start in range(0, n, ENCODE_ROWS):
            rows = slice(start, start + ENCODE_ROWS)
            encoded = encoder({name: tf.constant(data[name][rows]) for name in self.names})
            # A model of one output returns it bare, not in a list.
            parts.append(encoded if isinstance(encoded, list) else [encoded])
        columns = [tf.concat([part[i] for part in parts], 0) for i in range(len(self.names))]
        labels = tf.constant(data[self.prepared.label].reshape(-1, 1))
        return columns, labels

    def fit(self, epochs: int, seed: int) -> None:
        """Train ``epochs`` epochs, in the batch order ``Prepared.dataset`` gives for ``seed``."""
        rng = np.random.default_rng(seed)
        for _ in range(epochs):
            self._epoch(tf.constant(rng.permutation(self.rows)))

    def _run_epoch(self, order):
        # One gather per column puts the epoch in order; each batch is then a slice.
        columns = [tf.gather(column, order) for column in self.inputs]
        labels = tf.gather(self.labels, order)
        for start in tf.range(0, self.rows, self.batch_size):
            rows = slice(start, tf.minimum(start + self.batch_size, self.rows))
            self._step([column[rows] for column in columns], labels[rows])

    def _step(self, x, y) -> None:
        # What keras' own train_step does, less the loss tracker and metrics.
        core = self.core
        with tf.GradientTape() as tape:
            y_pred = core(x, training=True)
            loss = core.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        gradients = tape.gradient(loss, core.trainable_weights)
        core.optimizer.apply_gradients(zip(gradients, core.trainable_weights, strict=True))

    def evaluate(self) -> dict[str, Any]:
        """The compiled metrics on the test split.

        What ``model.evaluate`` reports, without its per-call set-up, which
        cost more than the predictions on MovieLens 100K's test split.
        """
        columns, labels = self.test
        for metric in self.core.metrics:
            metric.reset_state()
        for start in range(0, int(labels.shape[0]), EVAL_BATCH):
            x = [column[start : start + EVAL_BATCH] for column in columns]
            y = labels[start : start + EVAL_BATCH]
            self.core.compute_metrics(x, y, self._predict(x), sample_weight=None)
        results = self.core.get_metrics_result()
        return {k: float(v) for k, v in results.items() if k != "loss"}  # loss: not tracked
