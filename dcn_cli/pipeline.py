"""From a :class:`~dcn_cli.sources.Table` to model features and tf.data batches.

:func:`prepare` makes one streaming pass over the table. It assigns each row
to train, validation or test (seeded and deterministic: a row's split depends
only on its row number and the seed, so the splits are disjoint by
construction), builds vocabularies and normalisation statistics from the
training rows only, and keeps the rows in memory when the source is small
enough. :meth:`Prepared.dataset` then serves any split as a ``tf.data``
pipeline of ``(features, label)`` batches, streaming from disk again for
sources above the memory budget.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dcn_cli.config import FeatureSpec
from dcn_cli.errors import DcnError
from dcn_cli.schema import Schema
from dcn_cli.sources import NUMPY_DTYPES, Chunk, Table

SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2
MEMORY_BUDGET = 512 * 2**20  # bytes of source; above this, batches stream from disk
MAX_VOCAB = 100_000  # distinct training values above which a feature is hashed


@dataclass
class DataOptions:
    validation: float = 0.0  # fraction of the training rows held out for validation
    max_vocab: int = MAX_VOCAB
    hash_buckets: dict[str, int] = field(default_factory=dict)  # feature -> buckets, forced
    memory_budget: int = MEMORY_BUDGET

    def __post_init__(self) -> None:
        if not 0.0 <= self.validation < 1.0:
            raise DcnError(f"validation fraction must be in [0, 1), got {self.validation}")
        for name, buckets in self.hash_buckets.items():
            if buckets <= 0:
                raise DcnError(f"--hash-buckets for {name!r} must be positive, got {buckets}")


def parse_hash_buckets(text: str | None) -> dict[str, int]:
    """``"zip=1000,C1=50000"`` -> ``{"zip": 1000, "C1": 50000}``."""
    result: dict[str, int] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, value = part.partition("=")
        try:
            result[name.strip()] = int(value)
        except ValueError:
            raise DcnError(
                f"--hash-buckets expects NAME=N pairs like zip=1000, got {part!r}"
            ) from None
    return result


def _hash01(index: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per row number: splitmix64 of (index, seed)."""
    with np.errstate(over="ignore"):
        z = index.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(seed % 2**64) * np.uint64(0xD1B54A32D192ED03)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / 2.0**53


def assign_splits(
    index: np.ndarray, schema: Schema, validation: float, total_rows: int
) -> np.ndarray:
    """Split codes (0 train, 1 validation, 2 test) for the given row numbers."""
    split = schema.split
    if split.kind == "ordered":
        train_part = int(round(total_rows * (1.0 - split.test)))
        train_only = train_part - int(round(train_part * validation))
        return np.where(index >= train_part, TEST, np.where(index >= train_only, VALIDATION, TRAIN))
    u = _hash01(index, split.seed)
    cut = split.test + validation * (1.0 - split.test)
    return np.where(u < split.test, TEST, np.where(u < cut, VALIDATION, TRAIN)).astype(np.int8)


def _coded_chunks(
    table: Table, validation: float, total_rows: int
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Each chunk of ``table`` with the split code of each of its rows."""
    start = 0
    for chunk in table.chunks():
        n = len(chunk[table.schema.label])
        yield (
            chunk,
            assign_splits(np.arange(start, start + n), table.schema, validation, total_rows),
        )
        start += n


@dataclass
class _Stats:
    """Running training-split statistics for one feature."""

    counts: Counter | None = None  # categorical, until it outgrows max_vocab
    total: float = 0.0
    total_sq: float = 0.0
    n: int = 0


@dataclass
class Prepared:
    """A table with its splits decided and its feature encodings learnt from train."""

    table: Table
    features: list[FeatureSpec]
    rows: dict[str, int]
    validation: float
    _memory: dict[str, Chunk] | None = None

    @property
    def schema(self) -> Schema:
        return self.table.schema

    @property
    def in_memory(self) -> bool:
        """Whether the rows are held in memory (small sources) or streamed from disk."""
        return self._memory is not None

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def label(self) -> str:
        return self.schema.label

    def vocabulary_sizes(self) -> dict[str, int]:
        return {f.name: f.input_size() for f in self.features if f.kind == "categorical"}

    def arrays(self, split: str) -> Chunk:
        """All rows of one split as column arrays (streamed and gathered if need be)."""
        if self._memory is not None:
            return self._memory[split]
        parts = list(self._split_chunks(split))
        return _concat(parts, self.schema)

    def _split_chunks(self, split: str) -> Iterator[Chunk]:
        code = SPLITS.index(split)
        total = sum(self.rows.values())
        for chunk, codes in _coded_chunks(self.table, self.validation, total):
            keep = codes == code
            if keep.any():
                yield {name: values[keep] for name, values in chunk.items()}

    def dataset(
        self, split: str, batch_size: int, shuffle_seed: int | None = None, first_epoch: int = 0
    ):
        """A ``tf.data.Dataset`` of ``(features dict, label)`` batches for one split.

        With ``shuffle_seed`` the rows are reshuffled every epoch (seeded);
        streamed sources shuffle within each chunk. The first pass gives epoch
        ``first_epoch``'s order, so a resumed run sees the batches it would
        have seen without the break.
        """
        from dcn_cli import backend

        backend.load()

        if self.rows[split] == 0:
            raise DcnError(f"{self.table.name}: the {split} split is empty")
        names = [f.name for f in self.features]
        label = self.label
        if self._memory is not None:
            return _memory_dataset(
                self._memory[split], names, label, batch_size, shuffle_seed, first_epoch
            )
        return streamed_dataset(
            lambda: self._split_chunks(split),
            self.schema,
            names,
            batch_size,
            shuffle_seed,
            rows=self.rows[split],
            first_epoch=first_epoch,
        )


def _memory_dataset(
    data: Chunk,
    names: list[str],
    label: str,
    batch_size: int,
    shuffle_seed: int | None,
    first_epoch: int = 0,
):
    """Batches cut from columns held as tensors, in a fresh seeded order each epoch.

    Shuffling makes one permutation per epoch (NumPy) and gathers whole batches,
    instead of tf.data's row-by-row shuffle buffer, which cost about as much as
    the model's own arithmetic on MovieLens 100K.
    """
    import tensorflow as tf

    n = len(data[label])
    # Labels as (n, 1), the model's output shape: Keras 3 losses such as binary
    # cross-entropy insist on equal ranks.
    labels = tf.constant(data[label].reshape(-1, 1))
    columns = {k: tf.constant(data[k]) for k in names}
    if shuffle_seed is None:
        ds = tf.data.Dataset.from_tensor_slices((columns, labels)).batch(batch_size)
        return ds.prefetch(tf.data.AUTOTUNE)
    rng = np.random.default_rng(shuffle_seed)
    for _ in range(first_epoch):
        rng.permutation(n)  # the orders of the epochs already trained
    batches = -(-n // batch_size)

    def permutation():
        yield rng.permutation(n)

    def cut(order):
        starts = tf.data.Dataset.range(batches)
        return starts.map(lambda b: order[b * batch_size : tf.minimum((b + 1) * batch_size, n)])

    ds = tf.data.Dataset.from_generator(
        permutation, output_signature=tf.TensorSpec((n,), tf.int64)
    ).flat_map(cut)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    ds = ds.map(
        lambda rows: ({k: tf.gather(c, rows) for k, c in columns.items()}, tf.gather(labels, rows))
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def streamed_dataset(
    chunks,
    schema: Schema,
    names: list[str],
    batch_size: int,
    shuffle_seed: int | None = None,
    rows: int | None = None,
    first_epoch: int = 0,
):
    """Batches of ``batch_size`` rows cut from a fresh ``chunks()`` pass each epoch.

    With ``shuffle_seed`` each chunk is shuffled, in a new order every epoch.
    ``rows``, when known, tells Keras how many batches an epoch has. A
    :class:`DcnError` met while reading (a bad row) reaches the caller through
    :func:`source_errors`, not wrapped in tf.data's traceback.
    """
    import tensorflow as tf

    dtypes = {c.name: c.dtype for c in schema.columns}
    epochs = itertools.count(first_epoch)

    def batches():
        try:
            yield from cut()
        except DcnError as err:
            _raised.append(err)
            raise

    def cut():
        rng = np.random.default_rng([shuffle_seed or 0, next(epochs)])
        yield from _cut(
            chunks(), schema, names, batch_size, rng if shuffle_seed is not None else None
        )

    signature = (
        {n: tf.TensorSpec((None,), _tf_dtype(tf, dtypes[n])) for n in names},
        tf.TensorSpec((None, 1), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    if rows is not None:
        ds = ds.apply(tf.data.experimental.assert_cardinality(-(-rows // batch_size)))
    return ds.prefetch(2)


def replica_batches(
    prepared: Prepared,
    split: str,
    batch_size: int,
    seed: int,
    epoch: int,
    pipeline: int = 0,
    pipelines: int = 1,
    batches: int | None = None,
):
    """One input pipeline's share of a streamed split, as ``(x, y, weight)`` batches.

    The pipeline keeps every ``pipelines``-th row of the split (from row
    ``pipeline``), shuffles each chunk in the order ``(seed, epoch)`` gives,
    and cuts batches of exactly ``batch_size`` rows: the last one is padded
    with rows of weight 0, and empty batches follow until there are
    ``batches`` of them, so that every replica of a cluster runs the same
    number of steps with the same shapes.
    """
    import tensorflow as tf

    schema, label = prepared.schema, prepared.label
    names = [f.name for f in prepared.features]
    dtypes = {c.name: c.dtype for c in schema.columns}

    def shard() -> Iterator[Chunk]:
        seen = 0
        for chunk in prepared._split_chunks(split):
            n = len(chunk[label])
            keep = (np.arange(seen, seen + n) % pipelines) == pipeline
            seen += n
            yield {k: v[keep] for k, v in chunk.items()}

    def padded(x: Chunk, y: np.ndarray):
        n, pad = len(y), batch_size - len(y)
        fill = {k: "" if dtypes[k] == "string" else 0 for k in names}
        x = {
            k: np.concatenate([x[k], np.full(pad, fill[k], NUMPY_DTYPES[dtypes[k]])]) for k in names
        }
        weight = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
        return x, np.concatenate([y, np.zeros((pad, 1), np.float32)]), weight

    def generate():
        rng = np.random.default_rng([seed, epoch])
        made = 0
        try:
            for x, y in _cut(shard(), schema, names, batch_size, rng):
                yield padded(x, y)  # only the last batch is short
                made += 1
            empty = {k: np.array([], NUMPY_DTYPES[dtypes[k]]) for k in names}
            while batches is not None and made < batches:
                yield padded(empty, np.zeros((0, 1), np.float32))
                made += 1
        except DcnError as err:
            _raised.append(err)
            raise
        if batches is not None and made != batches:
            raise RuntimeError(f"pipeline {pipeline} made {made} batches, expected {batches}")

    signature = (
        {n: tf.TensorSpec((batch_size,), _tf_dtype(tf, dtypes[n])) for n in names},
        tf.TensorSpec((batch_size, 1), tf.float32),
        tf.TensorSpec((batch_size,), tf.float32),
    )
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return ds.prefetch(2)


def _cut(chunks: Iterator[Chunk], schema: Schema, names: list[str], batch_size: int, rng):
    """``(x, label column)`` batches of ``batch_size`` rows, then the short rest.

    With ``rng`` each chunk is shuffled first; rows carry over between chunks.
    """
    label = schema.label
    carry: list[Chunk] = []
    for chunk in chunks:
        if rng is not None:
            order = rng.permutation(len(chunk[label]))
            chunk = {k: v[order] for k, v in chunk.items()}
        carry.append(chunk)
        merged = _concat(carry, schema)
        n = len(merged[label])
        full = n - n % batch_size
        for i in range(0, full, batch_size):
            rows = slice(i, i + batch_size)
            yield {k: merged[k][rows] for k in names}, merged[label][rows, None]
        carry = [{k: v[full:] for k, v in merged.items()}]
    rest = _concat(carry, schema)
    if len(rest[label]):
        yield {k: rest[k] for k in names}, rest[label][:, None]


_raised: list[DcnError] = []  # what a streamed dataset's reader raised, for source_errors()


@contextlib.contextmanager
def source_errors():
    """Run Keras over streamed datasets; a reader's DcnError comes out as itself.

    tf.data runs the reader inside a ``py_func`` and re-raises what it raised as
    a TensorFlow error whose message is a whole traceback.
    """
    _raised.clear()
    try:
        yield
    except Exception:
        if _raised:
            raise _raised[0] from None
        raise
    finally:
        _raised.clear()


def _tf_dtype(tf, dtype: str):
    return {"string": tf.string, "int64": tf.int64, "float32": tf.float32}[dtype]


def _concat(parts: list[Chunk], schema: Schema) -> Chunk:
    if not parts:
        return {c.name: np.array([], dtype=NUMPY_DTYPES[c.dtype]) for c in schema.columns}
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _count_rows(table: Table) -> int:
    return sum(len(next(iter(chunk.values()))) for chunk in table.chunks())


def prepare(table: Table, options: DataOptions | None = None) -> Prepared:
    """Decide the splits and learn vocabularies and statistics from the training rows."""
    options = options or DataOptions()
    schema = table.schema
    for name in options.hash_buckets:
        if name not in {c.name for c in schema.features}:
            raise DcnError(f"--hash-buckets names {name!r}, which is not a feature of {table.name}")
    features = schema.features
    stats = {
        c.name: _Stats(counts=Counter() if c.role == "categorical" else None) for c in features
    }
    # An ordered split needs the row count before it can place the first row.
    total = _count_rows(table) if schema.split.kind == "ordered" else 0
    in_memory = table.nbytes <= options.memory_budget
    kept: dict[int, list[Chunk]] = {TRAIN: [], VALIDATION: [], TEST: []}
    rows = [0, 0, 0]
    positives = 0  # binary: training rows labelled 1
    for chunk, codes in _coded_chunks(table, options.validation, total):
        train = codes == TRAIN
        for code in (TRAIN, VALIDATION, TEST):
            rows[code] += int(np.count_nonzero(codes == code))
            if in_memory:
                kept[code].append({k: v[codes == code] for k, v in chunk.items()})
        for column in features:
            _update(stats[column.name], chunk[column.name][train], column.name, options)
        positives += int(np.count_nonzero(chunk[schema.label][train] == 1))
    if sum(rows) == 0:
        raise DcnError(f"{table.name}: no data rows")
    for code, name in ((TRAIN, "training"), (TEST, "test"), (VALIDATION, "validation")):
        if rows[code] == 0 and (code != VALIDATION or options.validation):
            raise DcnError(
                f"{table.name}: the {name} split is empty ({sum(rows)} rows in all); "
                "dcn needs rows to train, validate and test on"
            )

    if schema.task == "binary" and positives in (0, rows[TRAIN]):
        raise DcnError(
            f"{table.name}: every training label is {0 if positives == 0 else 1}; "
            "a binary model needs rows of both classes"
        )
    specs = [_feature_spec(c, stats[c.name], options) for c in features]
    memory = (
        {SPLITS[code]: _concat(parts, schema) for code, parts in kept.items()}
        if in_memory
        else None
    )
    return Prepared(
        table=table,
        features=specs,
        rows=dict(zip(SPLITS, rows, strict=True)),
        validation=options.validation,
        _memory=memory,
    )


def _update(stat: _Stats, values: np.ndarray, name: str, options: DataOptions) -> None:
    if stat.counts is not None:
        if name in options.hash_buckets:
            stat.counts = None
            return
        stat.counts.update(values.tolist())
        if len(stat.counts) > options.max_vocab:
            stat.counts = None  # hashed from here on; stop counting, memory stays flat
        return
    if values.dtype.kind == "f":
        as64 = values.astype(np.float64)
        stat.total += float(as64.sum())
        stat.total_sq += float(np.square(as64).sum())
        stat.n += len(values)


def _feature_spec(column, stat: _Stats, options: DataOptions) -> FeatureSpec:
    if column.role == "numerical":
        spec = FeatureSpec(column.name, "numerical", column.dtype)
        if column.normalize and stat.n:
            mean = stat.total / stat.n
            variance = max(stat.total_sq / stat.n - mean * mean, 0.0)
            spec.mean, spec.variance = mean, variance if variance > 0 else 1.0
        return spec
    if stat.counts is None:
        buckets = options.hash_buckets.get(column.name, options.max_vocab)
        return FeatureSpec(column.name, "categorical", column.dtype, hash_buckets=buckets)
    # Most frequent first; ties by value, so the order is deterministic.
    vocabulary = [v for v, _ in sorted(stat.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    if not vocabulary:
        raise DcnError(f"feature {column.name!r} has no values in the training split")
    return FeatureSpec(column.name, "categorical", column.dtype, vocabulary=vocabulary)
