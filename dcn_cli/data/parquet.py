"""Parquet files, what click-log pipelines write: read a row group at a time by pyarrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dcn_cli.data.delimited import check_header, check_roles
from dcn_cli.data.schema import EXTRA, Column, Schema
from dcn_cli.data.table import ARROW_TYPES, CHUNK_ROWS, DECODED_PER_BYTE, Chunk, Table
from dcn_cli.errors import DcnError


def parquet_columns(path: Path) -> list[str]:
    """The column names of a Parquet file."""
    return list(_open(path).schema_arrow.names)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DcnError(f"{path}: not a readable Parquet file ({err})") from None


def read_parquet(schema: Schema, path: Path) -> Iterator[Chunk]:
    """Typed chunks of one Parquet file; a missing or non-finite value names its row."""
    names = [c.name for c in schema.columns]
    handle = _open(path)
    missing = [n for n in names if n not in handle.schema_arrow.names]
    if missing:
        raise DcnError(f"{path}: no column(s) {', '.join(missing)} that the schema names")
    start = 0
    try:
        for batch in handle.iter_batches(batch_size=CHUNK_ROWS, columns=names):
            yield _typed(schema, pa.Table.from_batches([batch]), path, start)
            start += batch.num_rows
    except (pa.ArrowException, OSError) as err:
        raise DcnError(f"{path}: damaged Parquet file ({err})") from None


def _typed(schema: Schema, chunk: Chunk, path: Path, start: int) -> Chunk:
    columns = []
    for column in schema.columns:
        values = chunk[column.name]
        if column.role == EXTRA:
            pass  # handed on as it is
        elif column.dtype == "string":
            values = values.cast(pa.string()).fill_null("")  # a missing category is its own value
        else:
            if values.null_count:
                row = start + int(
                    np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]
                )
                raise DcnError(f"{path}: row {row + 1}: column {column.name!r} has no value")
            source = values
            try:
                # A number becomes float32 as a CSV's does, rounded (a Unix time, an id
                # above 2^24); an integer category must stay exact.
                values = values.cast(ARROW_TYPES[column.dtype], safe=column.dtype != "float32")
            except pa.ArrowInvalid as err:
                raise DcnError(
                    f"{path}: column {column.name!r} does not convert to {column.dtype} ({err})"
                ) from None
            array = values.to_numpy()
            finite = np.isfinite(array) if column.dtype == "float32" else np.ones(len(array), bool)
            bad = np.flatnonzero(~finite)
            if len(bad):
                raise DcnError(
                    f"{path}: row {start + int(bad[0]) + 1}: column {column.name!r}: "
                    f"{source[int(bad[0])].as_py()} is not a finite float32 number"
                )
            if column.role == "label" and schema.task == "binary":
                bad = np.flatnonzero((array != 0) & (array != 1))
                if len(bad):
                    raise DcnError(
                        f"{path}: row {start + int(bad[0]) + 1}: label {column.name!r} is "
                        f"{array[bad[0]]:g}; a binary label must be 0 or 1"
                    )
        columns.append(values)
    return pa.table(columns, names=[c.name for c in schema.columns])


def parquet_files_table(schema: Schema, paths: list[Path], name: str) -> Table:
    """A table over Parquet files laid out as ``schema`` says: one shard per file."""
    for path in paths:
        if not path.is_file():
            raise DcnError(f"{path}: no such file")

    def shard(path: Path):
        return lambda: read_parquet(schema, path)

    schema.files = [str(p) for p in paths]
    # Parquet is compressed: decoded, its rows take several times its size on disk.
    nbytes = DECODED_PER_BYTE * sum(p.stat().st_size for p in paths)
    return Table(schema, name, [shard(p) for p in paths], nbytes, list(paths))


def parquet_table(
    path: Path,
    label: str | None,
    categorical: str | None = None,
    numerical: str | None = None,
    task: str | None = None,
) -> Table:
    """One Parquet file with ``--label``; roles follow the column types (text: categorical)."""
    if not label:
        raise DcnError(f"{path}: a Parquet file needs --label COL to name its label column")
    fields = _open(path).schema_arrow
    header = list(fields.names)
    check_header(header, path)
    forced_cat, forced_num = check_roles(header, label, categorical, numerical, path)
    columns = []
    for field in fields:
        kind = field.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
        if field.name == label:
            columns.append(Column(field.name, "label", "float32"))
        elif field.name in forced_num:
            columns.append(Column(field.name, "numerical", "float32"))
        elif field.name in forced_cat or text:
            integer = pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            columns.append(Column(field.name, "categorical", "int64" if integer else "string"))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
            columns.append(Column(field.name, "numerical", "float32"))
        else:
            raise DcnError(
                f"{path}: column {field.name!r} holds {field.type}, which dcn cannot use; "
                "expected numbers or text"
            )
    kind = fields.field(label).type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise DcnError(f"{path}: label {label!r} holds {kind}; a label must hold numbers")
    if task is None:
        first = next(_open(path).iter_batches(batch_size=10_000, columns=[label]), None)
        values = set(first.column(0).to_pylist()) if first is not None else set()
        task = "binary" if values and values <= {0, 1} else "regression"
    schema = Schema(columns=columns, task=task, source={"kind": "parquet", "path": str(path)})
    return parquet_files_table(schema, [path], str(path))
