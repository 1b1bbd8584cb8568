"""From prepared rows to what the model's core trains on, as ``tf.data`` batches.

:class:`Encoder` turns Arrow chunks into the core's inputs (see
:func:`dcn_cli.model.factory.split_model`): vocabulary ids looked up by Arrow in C++,
hashed buckets by the model's own ``Hashing`` layers, numbers as a column.
Both the rows held in memory and the streamed ones are encoded this way, so
the model never trains on raw strings.

:func:`streamed_batches` reads a split's shards in parallel (``tf.data``
interleave; pyarrow parses and looks up outside Python's lock), mixes the rows
of all shards in a shuffle buffer (seeded, the same order for the same seed
and epoch), and cuts batches.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import tensorflow as tf

from dcn_cli.data.features import FeatureSpec
from dcn_cli.data.prepare import Prepared
from dcn_cli.data.splits import SPLITS
from dcn_cli.data.table import ARROW_TYPES, Chunk, Table, to_numpy
from dcn_cli.errors import DcnError, from_pipeline, in_pipeline

SHUFFLE_ROWS = 131_072  # rows in the shuffle buffer that mixes the shards
SHUFFLE_STEP = 32_768  # rows that enter (and leave) the buffer at a time
ENCODE_ROWS = 65_536  # rows encoded at a time
PARALLEL_SHARDS = 2  # shards read at once (pyarrow parses each piece on every core)


class Encoder:
    """Arrow chunks -> the core's inputs: per feature ``(n,)`` int64 ids, ``(n, L)`` ids
    of a list's first L elements (-1 past its end), or ``(n, 1)`` numbers.

    The same ids as the model's own lookup and hashing layers give (a test
    checks), computed from the features alone.
    """

    def __init__(self, features: list[FeatureSpec]):
        import keras

        self.features = features
        self.lookups: dict[str, pa.Array] = {}
        self.layers = {}
        for f in features:
            if f.kind == "numerical":
                continue
            if f.hash_buckets is None and f.num_oov == 1:
                # What StringLookup / IntegerLookup give: 0 for an unseen value, i + 1 for
                # the vocabulary's i-th.
                self.lookups[f.name] = pa.array(f.vocabulary, type=ARROW_TYPES[f.dtype])
            elif f.hash_buckets is not None:
                self.layers[f.name] = keras.layers.Hashing(num_bins=f.hash_buckets)
            else:  # several OOV buckets: the layer hashes unseen values among them
                lookup = (
                    keras.layers.StringLookup if f.dtype == "string" else keras.layers.IntegerLookup
                )
                self.layers[f.name] = lookup(
                    vocabulary=list(f.vocabulary or []), num_oov_indices=f.num_oov, mask_token=None
                )
        self.categorical = [f.name for f in features if f.kind == "categorical"]
        self.numerical = [f.name for f in features if f.kind == "numerical"]
        self.width = {f.name: f.ids() for f in features}  # id columns of each feature
        self.separator = {f.name: f.separator or "" for f in features if f.is_list}

    def column(self, chunk: Chunk, name: str) -> np.ndarray:
        """One feature's core input: ``(n,)`` int64 ids, ``(n, L)`` a list's, or
        ``(n, 1)`` float32 numbers."""
        if name in self.numerical:
            return chunk[name].to_numpy().reshape(-1, 1)
        if name in self.separator:
            return self._list_ids(name, chunk[name])
        return self._ids(name, chunk[name])

    def _list_ids(self, name: str, values) -> np.ndarray:
        """A list feature's ids: its elements looked up one by one, each row's first
        ``L`` in columns 0..L-1, and -1 where a row has fewer."""
        from dcn_cli.data.prepare import elements

        flat, lengths = elements(values, self.separator[name])
        rows = np.repeat(np.arange(len(lengths)), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        position = np.arange(len(rows)) - np.repeat(starts, lengths)
        keep = position < self.width[name]
        ids = np.full((len(lengths), self.width[name]), -1, np.int64)
        ids[rows[keep], position[keep]] = self._ids(name, flat)[keep]
        return ids

    def packed(
        self, chunk: Chunk, label: str | None, weight: str | None = None
    ) -> tuple[np.ndarray, np.ndarray, Any, Any]:
        """``(ids (n, C) int64, numbers (n, N) float32, labels (n, 1) float32, weights (n,)
        float32)``; labels and weights are ``None`` when ``label`` is, and the weights all
        1 when ``weight`` (their column) is None."""
        n = chunk.num_rows
        ids = np.empty((n, sum(self.width[name] for name in self.categorical)), np.int64)
        j = 0
        for name in self.categorical:
            ids[:, j : j + self.width[name]] = self.column(chunk, name).reshape(n, -1)
            j += self.width[name]
        numbers = np.empty((n, len(self.numerical)), np.float32)
        for j, name in enumerate(self.numerical):
            numbers[:, j] = self.column(chunk, name)[:, 0]
        if label is None:
            return ids, numbers, None, None
        return ids, numbers, labels_of(chunk, label), weights_of(chunk, weight)

    def _ids(self, name: str, values: pa.ChunkedArray) -> np.ndarray:
        if name in self.lookups:
            index = pc.index_in(values, value_set=self.lookups[name])
            return pc.fill_null(pc.add(index, 1), 0).to_numpy().astype(np.int64)
        return self.layers[name](tf.constant(to_numpy(values))).numpy().astype(np.int64)

    def batches(self, rows: Chunk, label: str | None, size: int) -> Iterator[tuple]:
        """``rows`` encoded, ``size`` at a time: ``(core inputs, labels)``; the labels
        are ``None`` when ``label`` is."""
        ids, numbers, y, _ = self.packed(rows, label)
        for start in range(0, rows.num_rows, size):
            part = slice(start, start + size)
            x = self.unpacked(tf.constant(ids[part]), tf.constant(numbers[part]))
            yield x, None if y is None else tf.constant(y[part])

    def unpacked(self, ids, numbers) -> tuple:
        """The packed columns as the core's inputs, in feature order."""
        out, c, n = [], 0, 0
        for f in self.features:
            if f.kind == "numerical":
                out.append(numbers[:, n : n + 1])
                n += 1
            elif f.is_list:
                out.append(ids[:, c : c + self.width[f.name]])
                c += self.width[f.name]
            else:
                out.append(ids[:, c])
                c += 1
        return tuple(out)


def _signature(encoder: Encoder, rows=None):
    return (
        tf.TensorSpec((rows, sum(encoder.width[n] for n in encoder.categorical)), tf.int64),
        tf.TensorSpec((rows, len(encoder.numerical)), tf.float32),
        tf.TensorSpec((rows, 1), tf.float32),
        tf.TensorSpec((rows,), tf.float32),
    )


def streamed_batches(
    prepared: Prepared,
    encoder: Encoder,
    split: str,
    batch_size: int,
    seed: int | None = None,
    epoch: int = 0,
    pipeline: int = 0,
    pipelines: int = 1,
    batches: int | None = None,
) -> tf.data.Dataset:
    """One input pipeline's share of a split, as ``(core inputs, labels, weights)`` batches.

    With several ``pipelines`` (the workers of a cluster), pipeline ``k`` reads
    shards ``k, k + pipelines, ...`` when there are enough shards, else every
    ``pipelines``-th row of the split. With ``seed`` the shards are read in a
    fresh order each epoch and their rows mixed in a buffer of
    :data:`SHUFFLE_ROWS`. With ``batches``, every batch has exactly
    ``batch_size`` rows (the last padded with rows of weight 0) and empty ones
    follow until there are ``batches``: the replicas of a cluster must run the
    same steps with the same shapes.
    """
    code = SPLITS.index(split)
    shards = shards_of(prepared, pipeline, pipelines)
    every = 1 if len(prepared.shard_rows) >= pipelines else pipelines
    if seed is not None:
        shards = [shards[i] for i in np.random.default_rng([seed, epoch]).permutation(len(shards))]
    before = np.cumsum([0] + [r[code] for r in prepared.shard_rows]).tolist()
    label, weight = prepared.label, prepared.schema.weight

    def read(shard):
        shard = int(shard)
        seen = before[shard]  # the split's rows before this shard: which are this pipeline's

        def mine():
            nonlocal seen
            for chunk in prepared.chunks(split, [shard]):
                n = chunk.num_rows
                if every > 1:
                    keep = (np.arange(seen, seen + n) % every) == pipeline
                    seen += n
                    chunk = chunk.filter(pa.array(keep))
                yield chunk

        try:
            for rows in gathered(mine()):
                yield encoder.packed(rows, label, weight)
        except DcnError as err:
            raise in_pipeline(err) from None
        except OSError as err:  # a file removed or made unreadable since the epoch began
            raise in_pipeline(DcnError(f"{prepared.table.name}: {err}")) from None

    signature = _signature(encoder)
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(shards, tf.int64))
    ds = ds.interleave(
        lambda shard: tf.data.Dataset.from_generator(
            read, args=(shard,), output_signature=signature
        ),
        cycle_length=max(1, min(len(shards), PARALLEL_SHARDS)),
        num_parallel_calls=max(1, min(len(shards), PARALLEL_SHARDS)),
        deterministic=True,
    )
    if seed is not None:
        # Chunks of SHUFFLE_STEP rows: each step of the buffer sorts all it holds.
        ds = ds.rebatch(SHUFFLE_STEP)
        ds = _shuffled(ds, encoder, int(np.random.default_rng([seed, epoch]).integers(2**31)))
    ds = ds.rebatch(batch_size)
    if batches is not None:
        ds = ds.map(lambda ids, numbers, y, w: _padded(ids, numbers, y, w, batch_size))
        ids, numbers, y, w = (tf.zeros([0, *s.shape[1:]], s.dtype) for s in signature)
        empty = tf.data.Dataset.from_tensors(_padded(ids, numbers, y, w, batch_size))
        ds = ds.concatenate(empty.repeat()).take(batches)
    ds = ds.map(lambda ids, numbers, y, w: (encoder.unpacked(ids, numbers), y, w))
    return ds.prefetch(2)


def gathered(chunks, rows: int = ENCODE_ROWS):
    """Chunks joined (without copying) into tables of at least ``rows`` rows, then the rest.

    Each lookup builds a hash table of its vocabulary before it looks anything
    up, so it pays to look up many rows at once.
    """
    parts, have = [], 0
    for chunk in chunks:
        if chunk.num_rows:
            parts.append(chunk)
            have += chunk.num_rows
        if have >= rows:
            yield pa.concat_tables(parts)
            parts, have = [], 0
    if parts:
        yield pa.concat_tables(parts)


def scored(
    groups: Iterable[tuple[Callable[[int], str], Iterator[Chunk]]],
    encoder: Encoder,
    score,
    batch: int,
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Rows, gathered, with the model's predictions of them: ``(rows, (n,) predictions)``.

    ``groups`` pairs each run of chunks (a file's) with a function naming where
    its row ``r`` (from 0) comes from (:func:`by_file`). A prediction that is
    not finite (a value far beyond what the model was trained on) is an error
    naming the row.
    """
    for where, chunks in groups:
        done = 0
        for rows in gathered(chunks):
            predictions = np.concatenate(
                [score(x).numpy().reshape(-1) for x, _ in encoder.batches(rows, None, batch)]
            )
            bad = np.flatnonzero(~np.isfinite(predictions))
            if len(bad):
                raise DcnError(
                    f"{where(done + int(bad[0]))}: the model's prediction is not finite; a "
                    "value there is far beyond those it was trained on"
                )
            yield rows, predictions
            done += rows.num_rows


def by_file(table: Table) -> Iterator[tuple[Callable[[int], str], Iterator[Chunk]]]:
    """``table``'s shards (its files) for :func:`scored`, each naming where its rows are."""
    for shard, read in enumerate(table.shards):
        yield functools.partial(table.where, shard), read()


def shards_of(prepared: Prepared, pipeline: int, pipelines: int) -> list[int]:
    """The shards pipeline ``pipeline`` reads: its share of the files, or all of them."""
    shards = list(range(len(prepared.shard_rows)))
    return shards[pipeline::pipelines] if len(shards) >= pipelines else shards


def pipeline_rows(prepared: Prepared, split: str, pipeline: int, pipelines: int) -> int:
    """How many of a split's rows pipeline ``pipeline`` reads."""
    code = SPLITS.index(split)
    if len(prepared.shard_rows) >= pipelines:
        return sum(prepared.shard_rows[i][code] for i in shards_of(prepared, pipeline, pipelines))
    total = prepared.rows[split]
    return total // pipelines + (1 if pipeline < total % pipelines else 0)


def _shuffled(ds: tf.data.Dataset, encoder: Encoder, seed: int) -> tf.data.Dataset:
    """Rows of every chunk mixed through a buffer of :data:`SHUFFLE_ROWS` rows.

    Each chunk joins the buffer, the whole is put in a seeded random order,
    and all but :data:`SHUFFLE_ROWS` rows go on; the last chunk empties it.
    """
    signature = _signature(encoder)
    last = tf.data.Dataset.from_tensors(
        (*(tf.zeros([0, *s.shape[1:]], s.dtype) for s in signature), True)
    )
    ds = ds.map(lambda ids, numbers, y, w: (ids, numbers, y, w, False)).concatenate(last)
    empty = tuple(tf.zeros([0, *s.shape[1:]], s.dtype) for s in signature)

    def step(state, element):
        buffer, k = state
        *parts, end = element
        whole = [tf.concat([b, p], 0) for b, p in zip(buffer, parts, strict=True)]
        total = tf.shape(whole[0])[0]
        order = tf.argsort(tf.random.stateless_uniform([total], seed=tf.stack([seed, k])))
        keep = tf.where(end, 0, tf.minimum(SHUFFLE_ROWS, total))
        out = tuple(tf.gather(w, order[: total - keep]) for w in whole)
        kept = tuple(tf.gather(w, order[total - keep :]) for w in whole)
        return (kept, k + 1), out

    return ds.scan((empty, tf.constant(0, tf.int32)), step)


def _padded(ids, numbers, y, w, batch_size: int):
    """A batch of exactly ``batch_size`` rows: the rows past the end have weight 0."""
    pad = batch_size - tf.shape(y)[0]
    weight = tf.concat([w, tf.zeros([pad], tf.float32)], 0)
    return (
        tf.pad(ids, [[0, pad], [0, 0]]),
        tf.pad(numbers, [[0, pad], [0, 0]]),
        tf.pad(y, [[0, pad], [0, 0]]),
        weight,
    )


def labels_of(chunk: Chunk, label: str) -> np.ndarray:
    return chunk[label].to_numpy().astype(np.float32).reshape(-1, 1)


def weights_of(chunk: Chunk, weight: str | None) -> np.ndarray:
    """Each row's weight: its ``weight`` column, or 1."""
    if weight is None:
        return np.ones(chunk.num_rows, np.float32)
    return chunk[weight].to_numpy().astype(np.float32)


def encoded_split(prepared: Prepared, split: str):
    """A split held in memory, encoded: ``(core inputs, labels, weights)`` as tensors on
    the host.

    Ids are kept as int32 (half the memory; a batch is cast back to int64).
    The encoding depends on the prepared features alone, so it is kept on
    ``prepared`` for the next model (``compare``), and the split's raw rows
    are let go: what reads them later reads them from disk again.
    """
    if split not in prepared.encoded:
        encoder = Encoder(prepared.features)
        (rows,) = prepared.chunks(split)  # held in memory: one table
        with tf.device("CPU:0"):
            columns = []
            for f in encoder.features:
                values = encoder.column(rows, f.name)
                columns.append(
                    tf.constant(values.astype(np.int32) if f.kind != "numerical" else values)
                )
            prepared.encoded[split] = (
                tuple(columns),
                tf.constant(labels_of(rows, prepared.label)),
                tf.constant(weights_of(rows, prepared.schema.weight)),
            )
        prepared.release(split)
    return prepared.encoded[split]


@contextlib.contextmanager
def source_errors():
    """Run over streamed datasets; a reader's DcnError comes out as itself, not as the
    TensorFlow error that carried it out of ``tf.data``."""
    from_pipeline()  # forget what an earlier, handled run left
    try:
        yield
    except Exception:
        raised = from_pipeline()
        if raised is not None:
            raise raised from None
        raise
