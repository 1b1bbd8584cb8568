"""Delimited text: CSV, TSV and Criteo's files, plain or gzip, read by pyarrow.

pyarrow's CSV reader parses blocks of the file in C++ threads, 4-6x faster
than Python's ``csv`` module. When it rejects a block (a bad number, a short
row, bytes that are not UTF-8, a quoted newline) or a value fails dcn's own
checks (NaN, infinity, a binary label that is not 0 or 1), the same file is
read again from the start by the exact reader here, which either accepts
what pyarrow would not (a number with spaces around it, a newline inside
quotes) or names the line and column that is wrong.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from dcn_cli.data.infer import Profile, as_list, check_roles, infer, notes, profile_of
from dcn_cli.data.schema import WEIGHT, Column, Schema
from dcn_cli.data.table import (
    ARROW_TYPES,
    CHUNK_ROWS,
    DECODED_PER_BYTE,
    NUMPY_DTYPES,
    Chunk,
    Table,
    from_columns,
)
from dcn_cli.errors import DcnError

PIECE_BYTES = 8 << 20  # bytes of a file read and parsed at a time
BLOCK_BYTES = 2 << 20  # bytes each of pyarrow's threads parses
SAMPLE_ROWS = 10_000  # rows read to infer a CSV's column roles

# A field may be as long as a line can be; the csv module's default cap is 128 KiB.
csv.field_size_limit(2**31 - 1)


class _Rejected(Exception):
    """pyarrow could not read a block, or a value failed a check: read the file exactly."""


# ---------------------------------------------------------------- the fast path


def _fast_chunks(schema: Schema, path: Path, fill: bool) -> Iterator[Chunk]:
    """The file in pieces of about :data:`PIECE_BYTES`, cut at line ends, each parsed by
    ``pyarrow.csv.read_csv`` on several threads (its streaming reader parses on one)."""
    names = [c.name for c in schema.columns]
    parse = pa_csv.ParseOptions(delimiter=schema.delimiter)
    convert = pa_csv.ConvertOptions(
        column_types={c.name: ARROW_TYPES[c.dtype] for c in schema.columns},
        # Criteo leaves numbers out, and so may a column of fill_empty; elsewhere "" is an error
        null_values=[""] if fill or any(c.fill_empty for c in schema.columns) else [],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    skip = 1 if schema.header else 0
    try:
        gzip_file = path.suffix == ".gz"
        opened = pa.input_stream(str(path), "gzip") if gzip_file else pa.OSFile(str(path))
        with opened as source:
            for piece in _pieces(source):
                read = pa_csv.ReadOptions(
                    column_names=names, skip_rows=skip, block_size=BLOCK_BYTES
                )
                skip = 0
                table = pa_csv.read_csv(pa.BufferReader(piece), read, parse, convert)
                if table.num_rows:
                    yield _checked(schema, table, fill)
    except (pa.ArrowException, OSError, EOFError, zlib.error) as err:
        raise _Rejected(str(err)) from None


def _pieces(source) -> Iterator[pa.Buffer]:
    """Buffers of whole lines, about :data:`PIECE_BYTES` at a time.

    After each piece a plain file seeks back to the start of the line that was
    cut. A gzip stream cannot seek, so the cut line's bytes are carried into
    the next piece.
    """
    carry = b""
    while True:
        buffer = source.read_buffer(PIECE_BYTES)
        if buffer.size == 0:
            break
        if carry:
            buffer, carry = pa.py_buffer(carry + buffer.to_pybytes()), b""
        cut = _last_newline(buffer)
        if cut < 0:
            carry = buffer.to_pybytes()  # no line end yet: a very long line, or the last
            continue
        yield buffer.slice(0, cut + 1)
        if source.seekable():
            source.seek(source.tell() - (buffer.size - cut - 1))
        else:
            carry = buffer.slice(cut + 1).to_pybytes()
    if carry.strip():
        yield pa.py_buffer(carry)


def _last_newline(buffer: pa.Buffer) -> int:
    start = max(0, buffer.size - (1 << 20))  # a line is rarely longer than 1 MiB
    cut = buffer.slice(start).to_pybytes().rfind(b"\n")
    if cut < 0 and start > 0:
        return buffer.to_pybytes().rfind(b"\n")
    return cut + start if cut >= 0 else -1


def _checked(schema: Schema, chunk: Chunk, fill: bool) -> Chunk:
    """``chunk`` with Criteo's empty numbers as 0, after dcn's checks on the values."""
    for column in schema.columns:
        values = chunk[column.name]
        if column.dtype == "string":
            continue
        if values.null_count:
            if not (fill or column.fill_empty):
                raise _Rejected("empty")
            values = values.fill_null(0)
            chunk = chunk.set_column(chunk.schema.get_field_index(column.name), column.name, values)
        array = values.to_numpy()
        if column.dtype == "float32" and not np.isfinite(array).all():
            raise _Rejected("not finite")
        if (
            column.role == "label"
            and schema.task == "binary"
            and ((array != 0) & (array != 1)).any()
        ):
            raise _Rejected("not binary")
        if column.role == WEIGHT and (array < 0).any():
            raise _Rejected("negative weight")
    return chunk


def read_delimited(schema: Schema, paths: list[Path], fill: bool = False) -> Iterator[Chunk]:
    """Typed chunks out of CSV/TSV files laid out as ``schema`` says: fast, else exact."""
    for path in paths:
        yield from _file_chunks(schema, path, fill)


def _file_chunks(schema: Schema, path: Path, fill: bool) -> Iterator[Chunk]:
    if schema.header:
        _check_header(schema, path)
    done = 0  # rows already handed out when pyarrow gave up
    try:
        for chunk in _fast_chunks(schema, path, fill):
            yield chunk
            done += chunk.num_rows
    except _Rejected:
        for chunk in _exact_chunks(schema, path, fill):
            skip = min(done, chunk.num_rows)
            done -= skip
            if chunk.num_rows > skip:
                yield chunk.slice(skip)


def _check_header(schema: Schema, path: Path) -> None:
    names = [c.name for c in schema.columns]
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=schema.delimiter)
        with _reading(path, reader):
            header = next(reader, None)
    if header is None:
        raise DcnError(f"{path}: empty file")
    if header != names:
        raise DcnError(
            f"{path}:1: header {','.join(header)} contradicts the schema, "
            f"which expects {','.join(names)}"
        )


# ---------------------------------------------------------------- the exact path


def _open_text(path: Path):
    """A text handle on a UTF-8 file, plain or gzip; a byte-order mark is dropped."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def _first_bad_utf8(path: Path) -> tuple[int, int, int]:
    """Line, column (1-based) and value of the first byte that is not valid UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return line_no, err.start + 1, line[err.start]
    return 0, 0, 0


@contextlib.contextmanager
def _reading(path: Path, reader=None):
    """Turn what reading ``path`` can raise into one :class:`DcnError` naming the place."""
    try:
        yield
    except UnicodeDecodeError:
        line, column, byte = _first_bad_utf8(path)
        raise DcnError(
            f"{path}:{line}:{column}: byte 0x{byte:02x} is not UTF-8; "
            "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        ) from None
    except csv.Error as err:
        at = f":{reader.line_num}" if reader is not None else ""
        raise DcnError(f"{path}{at}: {err}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DcnError(f"{path}: damaged or truncated gzip file ({err})") from None


def _exact_chunks(schema: Schema, path: Path, fill: bool) -> Iterator[Chunk]:
    """The chunks of one file by Python's csv module, naming the line of any bad value."""
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=schema.delimiter)
        with _reading(path, reader):
            yield from _read_rows(schema, path, reader, fill)


def _read_rows(schema: Schema, path: Path, reader, fill: bool) -> Iterator[Chunk]:
    """``reader.line_num`` numbers lines for messages."""
    names = [c.name for c in schema.columns]
    if schema.header:
        next(reader, None)  # checked already
    cells: list[list[str]] = [[] for _ in names]
    lines: list[int] = []  # each kept row's line number, for messages
    for row in reader:
        if not row:  # a blank line
            continue
        if len(row) != len(names):
            raise DcnError(
                f"{path}:{reader.line_num}: expected {len(names)} fields, found {len(row)}"
            )
        for store, value in zip(cells, row, strict=True):
            store.append(value)
        lines.append(reader.line_num)
        if len(lines) >= CHUNK_ROWS:
            yield _chunk(schema, cells, path, lines, fill)
            cells, lines = [[] for _ in names], []
    if lines:
        yield _chunk(schema, cells, path, lines, fill)


def _chunk(schema: Schema, cells, path: Path, lines: list[int], fill: bool) -> Chunk:
    columns = {}
    for column, values in zip(schema.columns, cells, strict=True):
        array = _convert(values, column, path, lines, fill)
        if column.role == "label" and schema.task == "binary":
            _check_binary(array, column, path, lines)
        if column.role == WEIGHT and (array < 0).any():
            i = int(np.flatnonzero(array < 0)[0])
            raise DcnError(
                f"{path}:{lines[i]}: weight {column.name!r} is {values[i]}; a weight must be >= 0"
            )
        columns[column.name] = array
    return from_columns(schema, columns)


def _convert(values: list[str], column: Column, path: Path, lines: list[int], fill: bool):
    """Strings of one column -> a typed array, or a DcnError naming the bad cell."""
    if column.dtype == "string":
        return np.array(values, dtype=object)
    if fill or column.fill_empty:
        values = [v if v != "" else "0" for v in values]
    target = np.float64 if column.dtype == "float32" else np.int64
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, reported just below
            array = np.array(values, dtype=target).astype(NUMPY_DTYPES[column.dtype])
    except (ValueError, OverflowError):
        pass
    else:
        _check_finite(array, values, column, path, lines)
        return array
    for i, value in enumerate(values):
        try:
            if target is np.float64:
                target(value)
            elif not -(2**63) <= int(value) < 2**63:
                raise DcnError(
                    f"{path}:{lines[i]}: column {column.name!r}: {value} does not fit a "
                    "64-bit integer; give the column dtype string"
                )
        except (ValueError, OverflowError):
            if value == "" and column.role == WEIGHT:
                raise DcnError(f"{path}:{lines[i]}: weight {column.name!r} is empty") from None
            if value == "":
                raise DcnError(
                    f"{path}:{lines[i]}: column {column.name!r} is empty; the first rows had no "
                    'empty cell there, so it must hold a number (set "fill_empty": true for it '
                    "in a schema.json to read empty cells as 0; see dcn describe --schema-out)"
                ) from None
            kind = "a number" if column.dtype == "float32" else "an integer"
            raise DcnError(
                f"{path}:{lines[i]}: column {column.name!r}: {value!r} is not {kind}"
            ) from None
    raise AssertionError("unreachable: a value failed to convert but none was found")


def _check_finite(array: np.ndarray, values, column: Column, path: Path, lines: list[int]) -> None:
    """NaN, infinity, or a number beyond float32's range is an error, not a silent NaN."""
    if array.dtype.kind != "f":
        return
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        i = int(bad[0])
        raise DcnError(
            f"{path}:{lines[i]}: column {column.name!r}: {values[i]!r} is not a finite "
            "float32 number"
        )


def _check_binary(labels: np.ndarray, column: Column, path: Path, lines: list[int]) -> None:
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        i = int(bad[0])
        raise DcnError(
            f"{path}:{lines[i]}: label {column.name!r} is {labels[i]:g}; "
            "a binary label must be 0 or 1"
        )


# ---------------------------------------------------------------- tables


def delimited_table(schema: Schema, paths: list[Path], name: str, fill: bool = False) -> Table:
    """A table over CSV/TSV files: one shard per file."""
    for path in paths:
        if not path.is_file():
            raise DcnError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise DcnError(f"{path}: empty file")

    schema.files = [str(p) for p in paths]

    def shard(path: Path):
        return lambda: read_delimited(schema, [path], fill)

    def locate(shard: int, row: int) -> str:
        return f"{paths[shard]}:{line_of(schema, paths[shard], row)}"

    nbytes = sum(p.stat().st_size * (DECODED_PER_BYTE if p.suffix == ".gz" else 1) for p in paths)
    return Table(schema, name, [shard(p) for p in paths], nbytes, list(paths), locate)


def line_of(schema: Schema, path: Path, row: int) -> int:
    """The line of ``path`` that ends data row ``row`` (from 0), as the readers count rows."""
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=schema.delimiter)
        with _reading(path, reader):
            if schema.header:
                next(reader, None)
            seen = -1
            for fields in reader:
                seen += 1 if fields else 0  # blank lines hold no row
                if seen == row:
                    break
    return reader.line_num


def csv_table(
    path: Path, label: str | None, given: dict[str, str | None], task: str | None = None
) -> Table:
    """A CSV file with a header; column roles inferred from the first rows
    (:mod:`dcn_cli.data.infer`), the warnings about them in ``table.notes``."""
    if not label:
        raise DcnError(f"{path}: a CSV file needs --label COL to name its label column")
    columns, profiles, task = infer_csv(path, label, given, task)
    schema = Schema(
        columns=columns, task=task or "regression", source={"kind": "csv", "path": str(path)}
    )
    if not schema.features:
        raise DcnError(f"{path}: no feature columns besides the label {label!r}")
    table = delimited_table(schema, [path], str(path))
    table.profiles = profiles
    table.notes = notes(profiles)
    return table


def infer_csv(
    path: Path, label: str | None, given: dict[str, str | None], task: str | None = None
) -> tuple[list[Column], list[Profile], str | None]:
    """Each column of a CSV file and its profile, from the first rows, as dcn would read
    them with the roles ``given`` (see :func:`~dcn_cli.data.infer.check_roles`); and the
    task, ``task`` or inferred from the sampled labels (0/1: binary). With ``label``
    None every column is profiled as a feature, and the task is None."""
    header, sample, lines = read_head(path)
    forced = check_roles(header, label, given, path)
    columns, profiles = [], []
    for i, name in enumerate(header):
        values = [row[i] if len(row) == len(header) else "" for row in sample]
        if name == label:
            columns.append(Column(name, "label", "float32"))
            profiles.append(profile_of(name, values, "label", "float32"))
            continue
        column, profile = infer(name, values, lines, str(path), forced.get(name))
        as_list(column, profile, given)
        columns.append(column)
        profiles.append(profile)
    if label is None or task is not None:
        return columns, profiles, task
    labels = {row[header.index(label)] for row in sample if len(row) == len(header)}
    binary = labels and labels <= {"0", "1", "0.0", "1.0"}
    return columns, profiles, "binary" if binary else "regression"


def read_head(path: Path, rows: int | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV file's header, checked, its first ``rows`` rows (default
    :data:`SAMPLE_ROWS`) and their line numbers."""
    rows = SAMPLE_ROWS if rows is None else rows
    if path.stat().st_size == 0:
        raise DcnError(f"{path}: empty file")
    sample: list[list[str]] = []
    lines: list[int] = []
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        with _reading(path, reader):
            header = next(reader, None)
            if not header:
                raise DcnError(f"{path}: empty file")
            for row in reader:
                if len(sample) >= rows:
                    break
                if row:
                    sample.append(row)
                    lines.append(reader.line_num)
    check_header(header, path)
    return header, sample, lines


def check_header(header: list[str], path: Path) -> None:
    """Every column has a name, and no name is used twice."""
    for i, name in enumerate(header):
        if not name.strip():
            raise DcnError(f"{path}:1: column {i + 1} has no name")
        if name in header[:i]:
            first = header.index(name) + 1
            raise DcnError(f"{path}:1: column {name!r} appears twice (columns {first} and {i + 1})")


CRITEO_COLUMNS = (
    [Column("label", "label", "float32")]
    + [Column(f"I{i}", "numerical", "float32") for i in range(1, 14)]
    + [Column(f"C{i}", "categorical", "string") for i in range(1, 27)]
)


def criteo_table(path: Path, labelled: bool = True) -> Table:
    """Criteo TSV, as in the Kaggle dac and 1TB day files: no header, empty fields allowed.

    Without ``labelled``, the 39 feature fields alone (Kaggle's test file).
    """
    schema = Schema(
        columns=list(CRITEO_COLUMNS if labelled else CRITEO_COLUMNS[1:]),
        task="binary",
        delimiter="\t",
        header=False,
        source={"kind": "criteo", "path": str(path)},
    )
    return delimited_table(schema, [path], str(path), fill=True)


def looks_like_criteo(path: Path, labelled: bool = True) -> bool:
    """Whether the first line has Criteo's 40 tab-separated fields (39 without a label)."""
    try:
        with _open_text(path) as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return False  # not Criteo; the CSV reader reports what is wrong with it
    fields = len(CRITEO_COLUMNS) - (0 if labelled else 1)
    return first.rstrip("\r\n").count("\t") == fields - 1
