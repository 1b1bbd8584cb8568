"""The preparation pass: splits, vocabularies and statistics, learnt once and cached.

:func:`prepare` makes one streaming pass over a :class:`~dcn_cli.data.table.Table`.
It assigns each row to train, validation or test (seeded and deterministic: a
row's split depends only on its row number and the seed, so the splits are
disjoint by construction), learns vocabularies and normalisation statistics
from the training rows only, counts each shard's rows, and keeps the rows in
memory when the source is small enough.

The result is cached as JSON in ``.dcn-cache/`` beside the data files (or in
the user's cache directory when the data's directory is read-only), keyed by
the files' paths, sizes and modification times and by every option that
changes it. A second run on the same data reads the cache instead of the rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dcn_cli import environment
from dcn_cli.data import cache
from dcn_cli.data.features import FeatureSpec
from dcn_cli.data.schema import Column, Schema
from dcn_cli.data.splits import SPLITS, TEST, TRAIN, VALIDATION, coded, count_rows, split_chunks
from dcn_cli.data.table import Chunk, Table, concat, head, to_numpy
from dcn_cli.errors import DcnError
from dcn_cli.settings import FLOAT32_MAX, LIST_LENGTH, MIN_COUNT, check

HASH_THRESHOLD = 100_000  # distinct training values above which a feature is hashed
OOV_TOKENS = {"string": "[UNK]", "int64": -1}  # what StringLookup / IntegerLookup reserve
MERGE_EVERY = 16  # chunks of value counts gathered before they are summed


@dataclass
class DataOptions:
    validation: float = 0.0  # fraction of the training rows held out for validation
    hash_threshold: int = HASH_THRESHOLD
    hash_buckets: dict[str, int] = field(default_factory=dict)  # feature -> buckets, forced
    memory_budget: int = field(default_factory=lambda: environment.memory_budget())
    cache: bool = True
    min_count: int = MIN_COUNT  # training rows a value needs to get its own embedding row
    validation_optional: bool = False  # an empty validation split is no error (early stopping)

    def __post_init__(self) -> None:
        check("validation", self.validation, "the validation fraction")
        check("hash_buckets", self.hash_buckets, "--hash-buckets")
        check("min_count", self.min_count, "--min-count")

    def keyed(self) -> dict[str, Any]:
        """The options that change what the pass learns, for the cache's key."""
        return {
            "validation": self.validation,
            "hash_threshold": self.hash_threshold,
            "hash_buckets": sorted(self.hash_buckets.items()),
            "min_count": self.min_count,
        }


@dataclass
class Prepared:
    """A table with its splits decided and its feature encodings learnt from train."""

    table: Table
    features: list[FeatureSpec]
    rows: dict[str, int]
    validation: float
    shard_rows: list[list[int]]  # per shard: its train, validation and test rows
    memory: dict[str, Chunk] | None = None  # the rows of each split, when held in memory
    cached: bool = False  # read from the cache, not learnt by a pass over the rows
    cache: Path | None = None  # the cache file it was read from or saved to
    encoded: dict[str, Any] = field(default_factory=dict)  # split -> the engine's tensors

    @property
    def schema(self) -> Schema:
        return self.table.schema

    @property
    def in_memory(self) -> bool:
        """Whether the rows are held in memory (small sources) or streamed from disk."""
        return self.memory is not None

    def release(self, split: str) -> None:
        """Let one split's raw rows go (they are encoded); reading them again reads the disk."""
        if self.memory is not None and split in self.memory:
            self.memory[split] = None
            pa.default_memory_pool().release_unused()

    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def label(self) -> str:
        return self.schema.label

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    def vocabulary_sizes(self) -> dict[str, int]:
        return {f.name: f.input_size() for f in self.features if f.kind == "categorical"}

    def chunks(self, split: str, shards: list[int] | None = None) -> Iterator[Chunk]:
        """One split's rows, from memory or read again from the shards."""
        if shards is None and self.memory is not None and self.memory[split] is not None:
            yield self.memory[split]
            return
        try:
            yield from split_chunks(
                self.table, split, self.validation, self.total_rows, shards, self.shard_rows
            )
        except DcnError:
            # The rows were good when prepared: the data changed since, so the cache is stale.
            if self.cache is not None:
                with contextlib.suppress(OSError):  # a read-only cache: the error still stands
                    self.cache.unlink(missing_ok=True)
            raise

    def arrays(self, split: str) -> dict[str, np.ndarray]:
        """All rows of one split as NumPy columns (strings as Python objects)."""
        table = concat(list(self.chunks(split)), self.schema)
        return {name: to_numpy(table[name]) for name in table.column_names}

    def head(self, split: str, rows: int) -> dict[str, np.ndarray]:
        """The first ``rows`` rows of one split as NumPy columns, reading no further."""
        table = head(self.chunks(split), rows, self.schema)
        return {name: to_numpy(table[name]) for name in table.column_names}


# ------------------------------------------------------------------ the pass


@dataclass
class _Stats:
    """Running training-split statistics for one feature."""

    counts: list[pa.Table] | None = None  # categorical: (values, counts) parts, until hashed
    longest: int = 0  # a list feature: the most elements a training row holds
    total: float = 0.0
    total_sq: float = 0.0
    n: int = 0


def prepare(table: Table, options: DataOptions | None = None) -> Prepared:
    """Decide the splits and learn vocabularies and statistics from the training rows."""
    options = options or DataOptions()
    schema = table.schema
    for name in options.hash_buckets:
        if name not in {c.name for c in schema.features}:
            raise DcnError(f"--hash-buckets names {name!r}, which is not a feature of {table.name}")
    in_memory = table.nbytes <= options.memory_budget
    path = cache.path_for(table, options.keyed()) if options.cache else None
    learnt = cache.load(path, table) if path else None
    prepared = None
    if learnt is not None:
        prepared = Prepared(
            table, learnt.features, learnt.rows, options.validation, learnt.shard_rows, cached=True
        )
    if prepared is not None and in_memory:
        memory, shard_rows = _held(table, options.validation, prepared.total_rows)
        if shard_rows == prepared.shard_rows:
            prepared.memory = memory
        else:  # the files changed under the same sizes and times: the cache is stale
            prepared = None
    if prepared is None:
        prepared = _learn(table, options, in_memory)
        if path is not None:
            learnt = cache.Learnt(prepared.features, prepared.rows, prepared.shard_rows)
            cache.save(path, table, learnt)
    prepared.cache = path
    pa.default_memory_pool().release_unused()  # what the pass's chunks took, back to the system
    return prepared


def _held(
    table: Table, validation: float, total_rows: int
) -> tuple[dict[str, Chunk], list[list[int]]]:
    """Every split's rows in memory, from one pass over the table, and each shard's rows
    of each split."""
    kept: dict[int, list[Chunk]] = {TRAIN: [], VALIDATION: [], TEST: []}
    shard_rows = [[0, 0, 0] for _ in table.shards]
    for chunk, codes in _by_shard(table, validation, total_rows, shard_rows):
        for code, parts in kept.items():
            parts.append(chunk.filter(pa.array(codes == code)))
    memory = {SPLITS[code]: concat(parts, table.schema) for code, parts in kept.items()}
    return memory, shard_rows


def _by_shard(
    table: Table, validation: float, total_rows: int, shard_rows: list[list[int]]
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Every chunk of every shard with its rows' split codes, counting each shard's rows
    of each split into ``shard_rows`` (one ``[train, validation, test]`` per shard)."""
    start = 0
    for index, shard in enumerate(table.shards):
        for chunk, codes in coded(shard(), start, table.schema, validation, total_rows):
            counts = np.bincount(codes, minlength=3)
            shard_rows[index] = [r + int(n) for r, n in zip(shard_rows[index], counts, strict=True)]
            yield chunk, codes
        start += sum(shard_rows[index])


def _learn(table: Table, options: DataOptions, in_memory: bool) -> Prepared:
    schema = table.schema
    features = schema.features
    stats = {c.name: _Stats(counts=[] if c.role == "categorical" else None) for c in features}
    # An ordered split needs the row count before it can place the first row.
    total = count_rows(table) if schema.split.kind == "ordered" else 0
    kept: dict[int, list[Chunk]] = {TRAIN: [], VALIDATION: [], TEST: []}
    shard_rows = [[0, 0, 0] for _ in table.shards]
    positives = 0  # binary: training rows labelled 1
    weights = 0.0  # the training rows' weights, summed (with a weight column)
    for chunk, codes in _by_shard(table, options.validation, total, shard_rows):
        train = chunk.filter(pa.array(codes == TRAIN))
        if in_memory:
            kept[TRAIN].append(train)
            for code in (VALIDATION, TEST):
                kept[code].append(chunk.filter(pa.array(codes == code)))
        for column in features:
            _update(stats[column.name], train[column.name], column, options)
        label = train[schema.label].to_numpy()
        positives += int(np.count_nonzero(label == 1))
        if schema.weight is not None:
            weights += float(train[schema.weight].to_numpy().astype(np.float64).sum())
    rows = [sum(r[code] for r in shard_rows) for code in (TRAIN, VALIDATION, TEST)]
    if sum(rows) == 0:
        raise DcnError(f"{table.name}: no data rows")
    for code, name in ((TRAIN, "training"), (TEST, "test"), (VALIDATION, "validation")):
        if rows[code] == 0 and (
            code != VALIDATION or options.validation and not options.validation_optional
        ):
            raise DcnError(
                f"{table.name}: the {name} split is empty ({sum(rows)} rows in all); "
                "dcn needs rows to train, validate and test on"
            )
    if schema.weight is not None and weights == 0:
        raise DcnError(
            f"{table.name}: the training rows' weights ({schema.weight!r}) are all 0; "
            "a model needs rows that count"
        )
    if schema.task == "binary" and positives in (0, rows[TRAIN]):
        raise DcnError(
            f"{table.name}: every training label is {0 if positives == 0 else 1}; "
            "a binary model needs rows of both classes"
        )
    return Prepared(
        table=table,
        features=[_feature_spec(c, stats[c.name], options, table.name) for c in features],
        rows=dict(zip(SPLITS, rows, strict=True)),
        validation=options.validation,
        shard_rows=shard_rows,
        memory={SPLITS[c]: concat(parts, schema) for c, parts in kept.items()}
        if in_memory
        else None,
    )


def _update(stat: _Stats, values: pa.ChunkedArray, column: Column, options: DataOptions) -> None:
    if column.separator is not None:  # a list: its elements are what is counted
        values, lengths = elements(values, column.separator)
        stat.longest = max(stat.longest, int(lengths.max(initial=0)))
    if column.role == "categorical":
        if stat.counts is None:
            return
        if column.name in options.hash_buckets:
            stat.counts = None
            return
        counted = pc.value_counts(values)
        stat.counts.append(
            pa.table({"value": counted.field("values"), "count": counted.field("counts")})
        )
        if len(stat.counts) >= MERGE_EVERY:
            stat.counts = [_merged(stat.counts)]
            if stat.counts[0].num_rows > options.hash_threshold:
                stat.counts = None  # hashed from here on; stop counting, memory stays flat
        return
    as64 = values.to_numpy().astype(np.float64)
    stat.total += float(as64.sum())
    stat.total_sq += float(np.square(as64).sum())
    stat.n += len(as64)


def elements(values, separator: str) -> tuple[pa.Array, np.ndarray]:
    """The non-empty elements of list cells, in order, and how many each cell holds."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    parts = pc.split_pattern(values, separator)
    flat = pc.list_flatten(parts)
    keep = pc.not_equal(flat, "")
    rows = pc.list_parent_indices(parts).to_numpy()
    kept = np.asarray(keep.to_numpy(zero_copy_only=False), bool)
    lengths = np.bincount(rows[kept], minlength=len(values))
    return pc.filter(flat, keep), lengths


def _merged(parts: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(parts)
    summed = table.group_by("value").aggregate([("count", "sum")])
    return summed.rename_columns(["value", "count"])


def _feature_spec(column: Column, stat: _Stats, options: DataOptions, where: str) -> FeatureSpec:
    if column.role == "numerical":
        spec = FeatureSpec(column.name, "numerical", column.dtype)
        if column.normalize and stat.n:
            mean = stat.total / stat.n
            variance = max(stat.total_sq / stat.n - mean * mean, 0.0)
            if variance > FLOAT32_MAX:  # the model normalises in float32
                raise DcnError(
                    f"{where}: column {column.name!r}: its values spread too far to normalise in "
                    f"float32 (variance {variance:.3g}); rescale them, e.g. by a logarithm"
                )
            spec.mean, spec.variance = mean, variance if variance > 0 else 1.0
        return spec
    counts = _merged(stat.counts) if stat.counts else None
    if counts is None or counts.num_rows > options.hash_threshold:
        buckets = options.hash_buckets.get(column.name, options.hash_threshold)
        return FeatureSpec(
            column.name, "categorical", column.dtype, hash_buckets=buckets, **_list_of(column, stat)
        )
    if counts.num_rows == 0:
        raise DcnError(f"feature {column.name!r} has no values in the training split")
    # Most frequent first; ties by the value's text, so the order is deterministic.
    counts = counts.append_column("text", pc.cast(counts["value"], pa.string()))
    counts = counts.sort_by([("count", "descending"), ("text", "ascending")])
    # Values rarer than --min-count share the out-of-vocabulary row; the commonest
    # value keeps its own, so that a feature always has one.
    frequent = pc.greater_equal(counts["count"], options.min_count)
    counts = counts.filter(frequent) if pc.any(frequent).as_py() else counts.slice(0, 1)
    # Keras' lookup layers reserve a token for unseen values ("[UNK]", or -1 for
    # integers) and strip it from a vocabulary: the value is then out of vocabulary.
    reserved = OOV_TOKENS[column.dtype]
    vocabulary = [v for v in counts["value"].to_pylist() if v != reserved]
    if not vocabulary:
        raise DcnError(f"feature {column.name!r} has no values in the training split")
    return FeatureSpec(
        column.name, "categorical", column.dtype, vocabulary=vocabulary, **_list_of(column, stat)
    )


def _list_of(column: Column, stat: _Stats) -> dict[str, Any]:
    """A list feature's settings: its separator, pooling and length (the longest training
    list, at most :data:`~dcn_cli.settings.LIST_LENGTH`)."""
    if column.separator is None:
        return {}
    length = min(max(stat.longest, 1), LIST_LENGTH)
    return {"separator": column.separator, "pooling": column.pooling, "max_length": length}
