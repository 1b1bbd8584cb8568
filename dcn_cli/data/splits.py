"""Which rows are train, validation and test: seeded, deterministic, disjoint.

A row's split depends only on its row number and the seed (a random split) or
its position (an ordered split), so every reader of the same file agrees on
it with no state shared between them, and the splits are disjoint by
construction. The functions here read one split's rows of a table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from dcn_cli.data.rowhash import hash01
from dcn_cli.data.schema import Schema
from dcn_cli.data.table import Chunk, Table
from dcn_cli.errors import DcnError

SPLITS = ("train", "validation", "test")
TRAIN, VALIDATION, TEST = 0, 1, 2


def assign_splits(
    index: np.ndarray, schema: Schema, validation: float, total_rows: int
) -> np.ndarray:
    """Split codes (0 train, 1 validation, 2 test) for the given row numbers."""
    split = schema.split
    if split.kind == "ordered":
        train_part = int(round(total_rows * (1.0 - split.test)))
        train_only = train_part - int(round(train_part * validation))
        return np.where(
            index >= train_part, TEST, np.where(index >= train_only, VALIDATION, TRAIN)
        ).astype(np.int8)
    u = hash01(index, split.seed)
    cut = split.test + validation * (1.0 - split.test)
    return np.where(u < split.test, TEST, np.where(u < cut, VALIDATION, TRAIN)).astype(np.int8)


def coded(
    chunks: Iterator[Chunk], start: int, schema: Schema, validation: float, total_rows: int
) -> Iterator[tuple[Chunk, np.ndarray]]:
    """Each chunk with the split code of each of its rows, the first row being ``start``."""
    for chunk in chunks:
        n = chunk.num_rows
        yield chunk, assign_splits(np.arange(start, start + n), schema, validation, total_rows)
        start += n


def split_chunks(
    table: Table,
    split: str,
    validation: float,
    total_rows: int = 0,
    shards: list[int] | None = None,
    shard_rows: list[list[int]] | None = None,
) -> Iterator[Chunk]:
    """The rows of one split, chunk by chunk: all shards in order, or the ``shards`` named.

    Reading a shard on its own needs what the preparation pass counted of
    every shard (``shard_rows``): where its first row is, and how many rows
    it must hold. A shard that no longer holds them is an error.
    """
    code = SPLITS.index(split)
    if shard_rows is None:
        pairs = coded(table.chunks(), 0, table.schema, validation, total_rows)
    else:
        sizes = [sum(r) for r in shard_rows]
        offsets = [0, *itertools.accumulate(sizes)]
        pairs = itertools.chain.from_iterable(
            coded(_counted(table, i, sizes[i]), offsets[i], table.schema, validation, total_rows)
            for i in (shards if shards is not None else range(len(table.shards)))
        )
    for chunk, codes in pairs:
        mask = codes == code
        if mask.all():
            yield chunk
        elif mask.any():
            yield chunk.filter(pa.array(mask))


def _counted(table: Table, shard: int, rows: int) -> Iterator[Chunk]:
    """Shard ``shard``'s chunks, checked to hold the ``rows`` rows it held when prepared."""
    seen = 0
    for chunk in table.shards[shard]():
        seen += chunk.num_rows
        if seen > rows:
            break
        yield chunk
    if seen != rows:
        where = table.files[shard] if shard < len(table.files) else table.name
        raise DcnError(
            f"{where}: holds {f'more than {rows}' if seen > rows else seen} rows, not the "
            f"{rows} it held when prepared: it changed since; run the command again to "
            "prepare it anew"
        )


def count_rows(table: Table) -> int:
    return sum(chunk.num_rows for chunk in table.chunks())


def split_of(table: Table, split: str, validation: float) -> Iterator[Chunk]:
    """One split's rows with no preparation pass (an ordered split counts the rows first)."""
    total = count_rows(table) if table.schema.split.kind == "ordered" else 0
    return split_chunks(table, split, validation, total)


def split_by_file(
    table: Table, split: str, validation: float
) -> Iterator[tuple[Callable[[int], str], Iterator[Chunk]]]:
    """One split's rows file by file, with no preparation pass, for
    :func:`dcn_cli.train.pipeline.scored`: each file's rows with a function naming
    where its ``r``-th row of the split is (the file is read again to find it).

    The files follow one another: a file's first row number is known once the
    one before it has been read to its end.
    """
    total = count_rows(table) if table.schema.split.kind == "ordered" else 0
    code = SPLITS.index(split)
    start = 0
    for shard, read in enumerate(table.shards):
        first = start

        def rows(read=read, first=first) -> Iterator[Chunk]:
            nonlocal start
            for chunk, codes in coded(read(), first, table.schema, validation, total):
                start += chunk.num_rows
                if (codes == code).any():
                    yield chunk.filter(pa.array(codes == code))

        def where(r: int, read=read, first=first, shard=shard) -> str:
            done = 0
            for chunk, codes in coded(read(), first, table.schema, validation, total):
                hits = np.flatnonzero(codes == code)
                if r < len(hits):
                    break
                r, done = r - len(hits), done + chunk.num_rows
            return table.where(shard, done + int(hits[r]))

        yield where, rows()
