"""Parquet files, what click-log pipelines write: read a row group at a time by pyarrow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dcn_cli.data import delimited
from dcn_cli.data.delimited import check_header
from dcn_cli.data.infer import LIST, Profile, as_list, check_roles, infer, notes, profile_of
from dcn_cli.data.schema import IGNORE, WEIGHT, Column, Schema
from dcn_cli.data.table import ARROW_TYPES, CHUNK_ROWS, DECODED_PER_BYTE, Chunk, Table
from dcn_cli.errors import DcnError
from dcn_cli.settings import parse_lists


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
        if column.role == IGNORE:
            pass  # handed on as it is
        elif column.separator is not None:
            values = joined(values, column.separator, path, column.name)
            values = pc.fill_null(values.cast(pa.string()), "")
        elif column.dtype == "string":
            values = values.cast(pa.string()).fill_null("")  # a missing category is its own value
        else:
            if values.null_count and column.fill_empty:
                values = values.fill_null(0)
            elif values.null_count:
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
            if column.role == WEIGHT and (array < 0).any():
                row = start + int(np.flatnonzero(array < 0)[0]) + 1
                raise DcnError(
                    f"{path}: row {row}: weight {column.name!r} is negative; a weight must be >= 0"
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
    path: Path, label: str | None, given: dict[str, str | None], task: str | None = None
) -> Table:
    """One Parquet file with ``--label``. Roles follow the column types (text:
    categorical; numbers: numerical), and for integers and text the rules of
    :mod:`dcn_cli.data.infer` on the first rows (ids ignored, codes categorical)."""
    if not label:
        raise DcnError(f"{path}: a Parquet file needs --label COL to name its label column")
    columns, profiles, task = infer_parquet(path, label, given, task)
    schema = Schema(
        columns=columns, task=task or "regression", source={"kind": "parquet", "path": str(path)}
    )
    if not schema.features:
        raise DcnError(f"{path}: no feature columns besides the label {label!r}")
    table = parquet_files_table(schema, [path], str(path))
    table.profiles = profiles
    table.notes = notes(profiles)
    return table


def infer_parquet(
    path: Path, label: str | None, given: dict[str, str | None], task: str | None = None
) -> tuple[list[Column], list[Profile], str | None]:
    """Each column of a Parquet file and its profile from the first rows, as dcn would
    read them with the roles ``given``; and the task, ``task`` or inferred from the first
    labels (0/1: binary; None without ``label``)."""
    handle = _open(path)
    fields = handle.schema_arrow
    header = list(fields.names)
    check_header(header, path)
    forced = check_roles(header, label, given, path)
    first = next(handle.iter_batches(batch_size=delimited.SAMPLE_ROWS), None)
    columns, profiles = [], []
    for field in fields:
        values = first.column(field.name) if first is not None else pa.array([], field.type)
        if field.name == label:
            kind = field.type
            if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) and not (
                pa.types.is_boolean(kind)
            ):
                raise DcnError(f"{path}: label {label!r} holds {kind}; a label must hold numbers")
            columns.append(Column(field.name, "label", "float32"))
            profiles.append(profile_of(field.name, _cells(values, False), "label", "float32"))
            continue
        if _is_list(field.type):  # list<string> or list<int>: a list feature, always
            if field.name not in parse_lists(given.get(LIST)):  # --list may name a separator
                given = {**given, LIST: ",".join(filter(None, [given.get(LIST), field.name]))}
            forced[field.name] = LIST
            values = joined(values, parse_lists(given[LIST])[field.name], path, field.name)
            field = pa.field(field.name, pa.string())
        column, profile = _infer(field, values, path, forced.get(field.name))
        as_list(column, profile, given)
        columns.append(column)
        profiles.append(profile)
    if label is None or task is not None:
        return columns, profiles, task
    labels = set(first.column(label).to_pylist()) if first is not None else set()
    return columns, profiles, "binary" if labels and labels <= {0, 1} else "regression"


def _is_list(kind: pa.DataType) -> bool:
    if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
        return False
    element = kind.value_type
    return pa.types.is_string(element) or pa.types.is_integer(element)


def joined(values, separator: str, path: Path, name: str):
    """A Parquet list column as text: each row's elements joined by ``separator``, as a
    CSV cell holds them (a missing list: no elements). An element holding the separator
    is an error: it would be read as two."""
    if not _is_list(values.type):
        return values
    flat = pc.list_flatten(values)
    if pa.types.is_string(flat.type) or pa.types.is_large_string(flat.type):
        clash = pc.fill_null(pc.match_substring(flat, separator), False)
        if pc.any(clash).as_py():
            element = pc.filter(flat, clash)[0].as_py()
            raise DcnError(
                f"{path}: column {name!r}: the element {element!r} holds the separator "
                f"{separator!r}; give another with --list {name}=SEP"
            )
    text = values.cast(
        pa.large_list(pa.string()) if pa.types.is_large_list(values.type) else pa.list_(pa.string())
    )
    return pc.fill_null(pc.binary_join(text, separator), "")


def _cells(values: pa.Array, integer: bool) -> list[str]:
    return ["" if v is None else str(int(v) if integer else v) for v in values.to_pylist()]


def _infer(field: pa.Field, values: pa.Array, path: Path, forced: str | None):
    """The column and profile of one Parquet column from its first rows."""
    kind = field.type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
        values = values.cast(kind)
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    integer = pa.types.is_integer(kind) or pa.types.is_boolean(kind)
    if not (text or integer or pa.types.is_floating(kind)):
        raise DcnError(
            f"{path}: column {field.name!r} holds {field.type}, which dcn cannot use; "
            "expected numbers or text"
        )
    cells = _cells(values, integer)
    rows = list(range(1, len(cells) + 1))
    column, profile = infer(field.name, cells, rows, f"{path}: row", forced)
    if forced is None and text and column.role != IGNORE:
        column.role, column.dtype = "categorical", "string"  # text stays text
    elif forced is None and pa.types.is_floating(kind):
        column.role, column.dtype = "numerical", "float32"
    elif column.role == "categorical" and column.dtype == "string" and integer:
        column.dtype = "int64" if not values.null_count else "string"
    column.fill_empty = column.role == "numerical" and values.null_count > 0
    profile.role, profile.dtype = column.role, column.dtype
    if not integer and column.role != IGNORE:
        profile.warning = None  # typed text or numbers: taken as typed
    return column, profile
