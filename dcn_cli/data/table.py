"""The one shape every reader gives its rows: a :class:`Table` of Arrow chunks.

A table is a schema plus shards (one per file), each a re-iterable stream of
``pyarrow.Table`` chunks whose columns have the schema's types: ``string``,
``int64`` or ``float32``. Files bigger than memory stream through, and each
shard can be read on its own (in parallel, or by one worker of a cluster).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from dcn_cli.data.schema import Schema
from dcn_cli.errors import DcnError

Chunk: TypeAlias = Any  # a pyarrow.Table with the schema's columns (pyarrow has no type hints)
CHUNK_ROWS = 65_536
ARROW_TYPES = {"string": pa.string(), "int64": pa.int64(), "float32": pa.float32()}
NUMPY_DTYPES = {"string": object, "int64": np.int64, "float32": np.float32}
# A compressed file's rows (gzip, Parquet), decoded, take about this many times its
# size on disk: what the in-memory budget counts for them.
DECODED_PER_BYTE = 5


@dataclass
class Table:
    schema: Schema
    name: str  # where the rows come from, for messages and config.json
    shards: list[Callable[[], Iterator[Chunk]]]  # each call starts a fresh pass over one shard
    nbytes: int  # size as text (compressed files: estimated), to choose memory or streaming
    files: list[Path] = field(default_factory=list)  # what the cache key looks at; [] = no cache
    # Where row r (from 0) of shard s is, for messages: "file:line" for text files.
    locate: Callable[[int, int], str] | None = None
    notes: list[str] = field(default_factory=list)  # warnings about the columns, for the user
    profiles: list[Any] = field(default_factory=list)  # infer.Profile of each feature column

    def chunks(self) -> Iterator[Chunk]:
        """Every chunk of every shard, in order."""
        rows = 0
        for chunk in itertools.chain.from_iterable(shard() for shard in self.shards):
            rows += chunk.num_rows
            yield chunk
        if rows == 0:
            raise DcnError(f"{self.name}: no data rows")

    def where(self, shard: int, row: int) -> str:
        """Where row ``row`` (from 0) of shard ``shard`` comes from: ``file:line``, or
        ``file: row N`` where a file has no lines."""
        if self.locate is not None:
            return self.locate(shard, row)
        name = self.files[shard] if shard < len(self.files) else self.name
        return f"{name}: row {row + 1}"


def head(chunks: Iterator[Chunk], rows: int, schema: Schema) -> Chunk:
    """The first ``rows`` rows of ``chunks``, reading no further."""
    parts, have = [], 0
    for chunk in chunks:
        parts.append(chunk.slice(0, rows - have))
        have += parts[-1].num_rows
        if have >= rows:
            break
    return concat(parts, schema)


def arrow_schema(schema: Schema) -> pa.Schema:
    return pa.schema([(c.name, ARROW_TYPES[c.dtype]) for c in schema.columns])


def from_columns(schema: Schema, columns: Mapping[str, list | np.ndarray]) -> Chunk:
    """A chunk from Python or NumPy columns, typed as ``schema`` says."""
    return pa.table(
        {c.name: pa.array(columns[c.name], type=ARROW_TYPES[c.dtype]) for c in schema.columns}
    )


def concat(parts: list[Chunk], schema: Schema) -> Chunk:
    if not parts:
        return arrow_schema(schema).empty_table()
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An Arrow column as NumPy: numbers as they are, strings as Python objects."""
    return (
        column.to_numpy(zero_copy_only=False)
        if len(column)
        else np.array(
            [], dtype=object if pa.types.is_string(column.type) else column.type.to_pandas_dtype()
        )
    )
