"""The training engine: the one loop that ``dcn train`` and ``dcn compare`` run.

:class:`Engine` trains a compiled model on a :class:`~dcn_cli.train.pipeline.Prepared`
table under a ``tf.distribute`` strategy: one device, the local GPUs
(``MirroredStrategy``) or a cluster (``MultiWorkerMirroredStrategy``; see
:mod:`dcn_cli.train.distribute`). What the callers add (a progress bar,
checkpoints, early stopping, TensorBoard) are :class:`Hook` objects, each
written once.

How a step runs, and why:

- **The model's core trains on encoded rows.** Rows are encoded to
  vocabulary ids and numbers (:class:`~dcn_cli.train.pipeline.Encoder`) outside the
  model; the *core* (:func:`~dcn_cli.model.factory.split_model`), which shares the
  model's weights, trains on them. Looking strings up again every batch cost
  as much as the arithmetic on MovieLens 100K.
- **Data held in memory** is encoded once. Each epoch is one seeded
  permutation of the rows, cut into global batches of ``batch_size`` rows;
  replica ``r`` takes the ``r``-th slice of every global batch, so any number
  of replicas sees the batches one device would.
- **Data streamed from disk** is encoded as it is read
  (:func:`~dcn_cli.train.pipeline.streamed_batches`). Each input pipeline (one per
  worker) reads its own share of the shards and cuts it into per-replica
  batches.
- **Every replica batch has the same shape**: the last, short batch is padded
  with rows of weight 0. Collective ops inside a loop require it (TF 2.21
  refuses a gather whose shape changes between iterations). One replica of
  data in memory needs no padding, and gets none.
- **The loss** of a step is the weighted sum of the per-example losses over
  the global batch, divided by the global row count (all-reduced), plus the
  regularisation losses: summed over replicas, the data gradients are
  exactly the one-device gradient of Keras' mean loss, and the penalty's
  gradient, the same on every replica, is added once after the all-reduce.
- **One traced function runs many steps**: the Python loop calls it a few
  times an epoch (``calls_per_epoch``: ``train`` makes 20 for its progress
  bar, ``compare`` one), not once per step. The call sizes never depend on
  timing, since a cluster's workers must make the same calls.
- Embedding gradients travel sparse: they are all-reduced as the rows a batch
  touched (or as the whole table, when that is fewer bytes), and
  ``dcn_cli.model.optimizers`` sums duplicate rows (or densifies, for Adam) only
  after that.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from dcn_cli.data.prepare import Prepared
from dcn_cli.errors import DcnError
from dcn_cli.model.config import ModelConfig
from dcn_cli.model.factory import split_model
from dcn_cli.train.distribute import cluster_shape
from dcn_cli.train.metrics import evaluate_batches, example_losses
from dcn_cli.train.pipeline import (
    Encoder,
    encoded_split,
    pipeline_rows,
    scored,
    source_errors,
    streamed_batches,
)

EVAL_BATCH = 8192  # rows per evaluation batch: its activations are held at once


def compile_model(model: keras.Model, task: str, optimizer) -> None:
    """Attach the optimizer (built on every trainable weight) and the loss.

    The optimizer is what ``model.keras`` saves and ``--resume`` restores; it
    is built on the whole model's weights, in their order, so that its saved
    state loads back onto the same weights.
    """
    loss = "binary_crossentropy" if task == "binary" else "mse"
    model.compile(optimizer=optimizer, loss=loss)
    optimizer.build(model.trainable_variables)


class Hook:
    """Something to run around training; every method is optional."""

    def on_train_begin(self, engine: Engine, epochs: int, first_epoch: int) -> None: ...

    def on_epoch_begin(self, engine: Engine, epoch: int) -> None: ...

    def on_steps(self, engine: Engine, done: int, loss: float, rows_per_second: float) -> None:
        """After a call of the step function: ``done`` steps of this epoch, its mean loss so far."""

    def on_epoch_end(self, engine: Engine, epoch: int, logs: dict[str, float]) -> None:
        """``epoch`` counts from 1; ``logs`` holds ``loss`` and, with validation, ``val_*``."""

    def on_train_end(self, engine: Engine, finished: bool) -> None:
        """Always called; ``finished`` is False when training raised (or was stopped)."""


@dataclass
class _Encoded:
    columns: list[tf.Tensor]  # per feature, in config order: ids or numbers
    labels: tf.Tensor  # (rows, 1)
    weights: tf.Tensor  # (rows,): each row's weight (1 without a weight column)

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])


class Engine:
    """Trains ``model`` (compiled, its variables made under ``strategy``) on ``prepared``.

    Build it once and call :meth:`fit` as often as needed (``compare`` resets
    the weights between seeds); the step function is traced on the first call.
    """

    def __init__(
        self,
        model: keras.Model,
        config: ModelConfig,
        prepared: Prepared,
        batch_size: int,
        strategy: tf.distribute.Strategy | None = None,
    ):
        self.model, self.config, self.prepared = model, config, prepared
        self.task = config.task
        self.strategy = strategy or tf.distribute.get_strategy()
        self.batch_size = batch_size
        self.replicas = self.strategy.num_replicas_in_sync
        self.per_replica = -(-batch_size // self.replicas)
        self.pipelines = cluster_shape(self.strategy)["workers"]
        self.names = [f.name for f in config.features]
        self.optimizer = model.optimizer
        if self.replicas > 1:
            if not hasattr(self.optimizer, "gradients_reduced"):
                raise TypeError(f"{type(self.optimizer).__name__} is not one of dcn's optimizers")
            self.optimizer.gradients_reduced = True
        self.stop_training = False
        _, self.trainee = split_model(model, config)
        self.encoder = Encoder(config.features)
        if prepared.in_memory:
            self._splits = {
                split: _Encoded(*encoded_split(prepared, split))
                for split in ("train", "validation", "test")
                if prepared.rows[split]
            }
            self._train_function = tf.function(self._memory_steps)
        else:
            self._train_function = tf.function(self._streamed_steps)
        self._predict = scorer(self.trainee)

    # -------------------------------------------------------------- data

    def steps_per_epoch(self) -> int:
        """Global steps in one epoch: every replica batch, padded ones included."""
        rows = self.prepared.rows["train"]
        if self.prepared.in_memory:
            return -(-rows // self.batch_size)
        # The pipeline with the most rows decides; a step takes its local replicas' batches.
        most = max(
            pipeline_rows(self.prepared, "train", p, self.pipelines) for p in range(self.pipelines)
        )
        return max(1, math.ceil(most / (self.replicas // self.pipelines * self.per_replica)))

    def _epoch_order(self, order: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        """Row numbers and weights of every replica batch of an epoch, end to end.

        Global step ``s`` takes rows ``order[s*B : (s+1)*B]``; replica ``r`` the
        ``r``-th slice of ``per_replica`` of them. Slots past the end of a batch
        hold row 0 with weight 0, except on one replica, whose last batch is
        just shorter.
        """
        if self.replicas == 1:  # no collectives: the last batch may simply be short
            return tf.constant(order), tf.ones(len(order), tf.float32)
        steps, b, replicas = self.steps_per_epoch(), self.per_replica, self.replicas
        slot = np.arange(replicas)[:, None] * b + np.arange(b)[None, :]
        position = np.arange(steps)[:, None, None] * self.batch_size + slot[None]
        valid = (slot < self.batch_size)[None] & (position < len(order))
        rows = np.where(valid, order[np.minimum(position, len(order) - 1)], 0)
        return tf.constant(rows.reshape(-1)), tf.constant(valid.reshape(-1), tf.float32)

    # -------------------------------------------------------------- steps

    def _replica_step(self, x, y, weight):
        context = tf.distribute.get_replica_context()
        rows = context.all_reduce("sum", tf.reduce_sum(weight))
        variables = self.trainee.trainable_variables
        with tf.GradientTape(persistent=self.replicas > 1) as tape:
            y_pred = self.trainee(x, training=True)
            data_sum = tf.reduce_sum(example_losses(self.task, y, y_pred) * weight)
            penalty = tf.add_n(self.trainee.losses) if self.trainee.losses else 0.0
            data_loss = data_sum / tf.maximum(rows, 1.0)
            loss = data_loss + penalty
        if self.replicas == 1:
            gradients = tape.gradient(loss, variables)
            self.optimizer.apply(gradients, variables)
        else:
            # The data gradients are all-reduced here, embedding ones as the rows the
            # batch touched; the penalty's (an L2 term covers whole tables, and is the
            # same on every replica) is added after, so no table crosses the network.
            gradients = tape.gradient(data_loss, variables)
            gradients = [self._cheaper(g, v) for g, v in zip(gradients, variables, strict=True)]
            gradients = context.all_reduce("sum", gradients)
            if self.trainee.losses:
                extra = tape.gradient(penalty, variables)
                gradients = [
                    g if p is None else tf.convert_to_tensor(g) + p
                    for g, p in zip(gradients, extra, strict=True)
                ]
            self.optimizer.apply(gradients, variables)  # gradients_reduced: no second one
        # The global batch's loss, as Keras reports it, times its rows.
        return data_sum + penalty * tf.reduce_sum(weight)

    def _cheaper(self, gradient, variable):
        """An embedding gradient as its rows, unless the whole table is fewer bytes.

        A batch's rows cost ``per_replica * (width * 4 + 8)`` bytes (values and
        int64 indices): more than a small table (MovieLens' gender, age or
        occupation; even its movies at batch 8192), far less than a large one.
        """
        if not isinstance(gradient, tf.IndexedSlices):
            return gradient
        width = int(np.prod(variable.shape[1:]))
        if int(np.prod(variable.shape)) * 4 <= self.per_replica * (width * 4 + 8):
            return tf.convert_to_tensor(gradient)
        return gradient

    def _memory_steps(self, rows, weights, first, steps):
        data = self._splits["train"]
        total = tf.constant(0.0)
        for step in tf.range(first, first + steps):

            def batch(context, step=step):
                start = (step * self.replicas + context.replica_id_in_sync_group) * self.per_replica
                with tf.device("CPU:0"):  # this worker's host: the rows live there
                    take = rows[start : start + self.per_replica]
                    x = [_int64(tf.gather(column, take)) for column in data.columns]
                    return (
                        x,
                        tf.gather(data.labels, take),
                        weights[start : start + self.per_replica] * tf.gather(data.weights, take),
                    )

            x, y, w = self.strategy.experimental_distribute_values_from_function(batch)
            per_replica = self.strategy.run(self._replica_step, args=(x, y, w))
            total += self.strategy.reduce("sum", per_replica, axis=None)
        return total

    def _streamed_steps(self, iterator, steps):
        total = tf.constant(0.0)
        for _ in tf.range(steps):
            x, y, w = next(iterator)
            per_replica = self.strategy.run(self._replica_step, args=(x, y, w))
            total += self.strategy.reduce("sum", per_replica, axis=None)
        return total

    def _streamed_iterator(self, seed: int, epoch: int):
        steps = self.steps_per_epoch()

        def dataset(context: tf.distribute.InputContext):
            return streamed_batches(
                self.prepared,
                self.encoder,
                "train",
                self.per_replica,
                seed=seed,
                epoch=epoch,
                pipeline=context.input_pipeline_id,
                pipelines=context.num_input_pipelines,
                batches=None
                if self.replicas == 1
                else steps * context.num_replicas_in_sync // context.num_input_pipelines,
            )

        return iter(self.strategy.distribute_datasets_from_function(dataset))

    # -------------------------------------------------------------- training

    def fit(
        self,
        epochs: int,
        seed: int,
        first_epoch: int = 0,
        hooks: list[Hook] | tuple[Hook, ...] = (),
        validate: bool = False,
        calls_per_epoch: int = 1,
    ) -> None:
        """Train from epoch ``first_epoch`` to ``epochs`` in ``seed``'s batch order.

        The orders of epochs before ``first_epoch`` are skipped, so a resumed
        run sees the batches an unbroken one would. With ``validate`` each
        epoch ends with a pass over the validation split (``val_*`` logs).
        Each epoch runs in about ``calls_per_epoch`` calls of the traced step
        function; the hooks' ``on_steps`` follows each call.
        """
        self.stop_training = False
        rng = np.random.default_rng(seed)
        rows = self.prepared.rows["train"]
        if self.prepared.in_memory:
            for _ in range(first_epoch):
                rng.permutation(rows)  # the orders of the epochs already trained
        for hook in hooks:
            hook.on_train_begin(self, epochs, first_epoch)
        finished = False
        try:
            for epoch in range(first_epoch, epochs):
                for hook in hooks:
                    hook.on_epoch_begin(self, epoch + 1)
                if self.prepared.in_memory:
                    loss = self._run_epoch(
                        hooks, calls_per_epoch, memory=self._epoch_order(rng.permutation(rows))
                    )
                else:
                    with source_errors():  # a streamed file that changed, or went, mid-run
                        loss = self._run_epoch(
                            hooks, calls_per_epoch, iterator=self._streamed_iterator(seed, epoch)
                        )
                logs = {"loss": loss}
                if validate:
                    logs.update({f"val_{k}": v for k, v in self.evaluate("validation").items()})
                logs = self._agreed(logs)
                if not all(math.isfinite(v) for v in logs.values()):
                    raise DcnError(
                        f"training diverged: the loss is {loss} after epoch {epoch + 1}; "
                        "try a lower --lr"
                    )
                for hook in hooks:
                    hook.on_epoch_end(self, epoch + 1, logs)
                if self.stop_training:
                    break
            finished = True
        finally:
            _end(hooks, self, finished)

    def _agreed(self, logs: dict[str, float]) -> dict[str, float]:
        """``logs`` averaged over a cluster's workers, so that every worker decides alike.

        Each worker computes them from the same weights, but a worker on other
        hardware may round differently, and a stop decided on one worker alone
        would leave the others waiting in a collective.
        """
        if self.pipelines == 1:
            return logs
        mean = self._mean(tf.constant(list(logs.values()), tf.float64)).numpy()
        return dict(zip(logs, (float(v) for v in mean), strict=True))

    @tf.function
    def _mean(self, values):
        per_replica = self.strategy.run(tf.identity, args=(values,))
        return self.strategy.reduce("mean", per_replica, axis=None)

    def _run_epoch(self, hooks, calls: int, memory=None, iterator=None) -> float:
        steps, done, total = self.steps_per_epoch(), 0, 0.0
        # Calls of the same sizes on every worker: a cluster's collectives pair up
        # call by call and iteration by iteration, so the size must not depend on
        # timing, nor on which hooks a worker runs.
        chunk = -(-steps // calls)
        start = time.perf_counter()
        while done < steps:
            n = min(chunk, steps - done)
            if memory is not None:
                total += float(self._train_function(*memory, tf.constant(done), tf.constant(n)))
            else:
                total += float(self._train_function(iterator, tf.constant(n)))
            done += n
            trained = min(done * self.batch_size, self.prepared.rows["train"])
            rate = trained / max(time.perf_counter() - start, 1e-9)
            for hook in hooks:
                hook.on_steps(self, done, total / trained, rate)
        return total / self.prepared.rows["train"]

    # -------------------------------------------------------------- evaluation

    def evaluate(self, split: str) -> dict[str, float]:
        """``loss`` (with the regularisation terms, as training counts it) and the metrics."""
        if self.prepared.in_memory:
            data = self._splits[split]
            batches = (
                (
                    [_int64(c[i : i + EVAL_BATCH]) for c in data.columns],
                    data.labels[i : i + EVAL_BATCH],
                    data.weights[i : i + EVAL_BATCH],
                )
                for i in range(0, data.rows, EVAL_BATCH)
            )
        else:
            batches = streamed_batches(self.prepared, self.encoder, split, EVAL_BATCH)
        with source_errors():  # a streamed file that changed, or went, since the run began
            results = evaluate_batches(self._predict, self.task, batches)
        del results["rows"]
        penalty = sum(float(loss) for loss in self.trainee.losses)
        return {"loss": results.pop("loss") + penalty, **results}

    def measure(self, split: str, group: str) -> dict[str, float]:
        """:meth:`evaluate`'s figures and the group AUC by the column ``group``, from the
        split's rows read again (held in memory, or from disk)."""
        from dcn_cli.train.metrics import measure

        name = self.prepared.table.name
        rows = scored(
            [(lambda r: f"{name}: {split} row {r + 1}", self.prepared.chunks(split))],
            self.encoder,
            self._predict,
            EVAL_BATCH,
        )
        with source_errors():
            results, _ = measure(
                self.task, rows, self.prepared.label, self.prepared.schema.weight, group, name
            )
        del results["rows"]
        penalty = sum(float(loss) for loss in self.trainee.losses)
        return {**results, "loss": results["loss"] + penalty}


def scorer(core):
    """``core`` as one traced function of encoded batches, in inference mode."""
    return tf.function(lambda x: core(x, training=False), reduce_retracing=True)


def _int64(column):
    """Ids held as int32 in memory, as the core takes them."""
    return tf.cast(column, tf.int64) if column.dtype == tf.int32 else column


def _end(hooks, engine: Engine, finished: bool) -> None:
    """Every hook's ``on_train_end``, even when one raises; the first error then goes on."""
    error: BaseException | None = None
    for hook in hooks:
        try:
            hook.on_train_end(engine, finished)
        except BaseException as err:  # noqa: B902 - re-raised below
            error = error or err
    if error is not None:
        raise error
