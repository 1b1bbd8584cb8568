"""Readers: every data source ``--data`` accepts becomes a :class:`Table`.

A table is a schema plus a re-iterable stream of column chunks (a dict of
NumPy arrays per chunk, at most ``chunk_rows`` rows), so files bigger than
memory stream through. Accepted sources:

- a directory with ``schema.json`` (what ``dcn generate`` writes);
- any CSV file with ``--label COL`` (roles inferred, overridable);
- MovieLens 100K (directory or ``ml-100k.zip``), MovieLens 1M (directory or
  zip), or ``tfds:movielens/100k-ratings`` through tensorflow-datasets;
- Criteo TSV (label, I1-I13, C1-C26; plain or gzip), detected by its 40
  tab-separated fields or forced with ``criteo:PATH``.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import socket
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.schema import Column, Schema

Chunk = dict[str, np.ndarray]
CHUNK_ROWS = 65_536
SAMPLE_ROWS = 10_000
NUMPY_DTYPES = {"string": object, "int64": np.int64, "float32": np.float32}


@dataclass
class Table:
    schema: Schema
    name: str  # where the rows come from, for messages and config.json
    chunks: Callable[[], Iterator[Chunk]]  # each call starts a fresh pass
    nbytes: int  # size on disk, to decide between memory and streaming


# ---------------------------------------------------------------- delimited text


# A field may be as long as a line can be; the csv module's default cap is 128 KiB.
csv.field_size_limit(2**31 - 1)


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


def _convert(values: list[str], column: Column, path: Path, lines: list[int], fill: bool):
    """Strings of one column -> a typed array, or a DcnError naming the bad cell."""
    if column.dtype == "string":
        return np.array(values, dtype=object)
    if fill:
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
            target(value) if target is np.float64 else int(value)
        except (ValueError, OverflowError):
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


def read_delimited(
    schema: Schema, paths: list[Path], chunk_rows: int = CHUNK_ROWS, fill: bool = False
) -> Iterator[Chunk]:
    """Stream typed column chunks out of CSV/TSV files laid out as ``schema`` says."""
    for path in paths:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=schema.delimiter)
            with _reading(path, reader):
                yield from _read_rows(schema, path, reader, chunk_rows, fill)


def _read_rows(schema: Schema, path: Path, reader, chunk_rows: int, fill: bool) -> Iterator[Chunk]:
    """The chunks of one open file; ``reader.line_num`` numbers lines for messages."""
    names = [c.name for c in schema.columns]
    if schema.header:
        header = next(reader, None)
        if header is None:
            raise DcnError(f"{path}: empty file")
        if header != names:
            raise DcnError(
                f"{path}:1: header {','.join(header)} contradicts the schema, "
                f"which expects {','.join(names)}"
            )
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
        if len(lines) >= chunk_rows:
            yield _chunk(schema, cells, path, lines, fill)
            cells, lines = [[] for _ in names], []
    if lines:
        yield _chunk(schema, cells, path, lines, fill)


def _chunk(schema: Schema, cells, path: Path, lines: list[int], fill: bool) -> Chunk:
    chunk = {}
    for column, values in zip(schema.columns, cells, strict=True):
        array = _convert(values, column, path, lines, fill)
        if column.role == "label" and schema.task == "binary":
            _check_binary(array, column, path, lines)
        chunk[column.name] = array
    return chunk


def _delimited_table(schema: Schema, paths: list[Path], name: str, fill: bool = False) -> Table:
    for path in paths:
        if not path.is_file():
            raise DcnError(f"{path}: no such file")
        if path.stat().st_size == 0:
            raise DcnError(f"{path}: empty file")
    schema.files = [str(p) for p in paths]

    def chunks() -> Iterator[Chunk]:
        any_rows = False
        for chunk in read_delimited(schema, paths, fill=fill):
            any_rows = True
            yield chunk
        if not any_rows:
            raise DcnError(f"{name}: no data rows")

    return Table(schema, name, chunks, sum(p.stat().st_size for p in paths))


def schema_dir_table(directory: Path) -> Table:
    schema = Schema.load(directory / "schema.json")
    if not schema.files:
        raise DcnError(f"{directory / 'schema.json'}: lists no data files")
    paths = [directory / f for f in schema.files]
    return _delimited_table(schema, paths, str(directory))


def _parse_names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


def csv_table(
    path: Path,
    label: str | None,
    categorical: str | None = None,
    numerical: str | None = None,
    task: str | None = None,
) -> Table:
    """A CSV file with a header; column roles inferred from the first rows."""
    if not label:
        raise DcnError(f"{path}: a CSV file needs --label COL to name its label column")
    if path.stat().st_size == 0:
        raise DcnError(f"{path}: empty file")
    with _open_text(path) as handle:
        reader = csv.reader(handle)
        with _reading(path, reader):
            header = next(reader, None)
            if not header:
                raise DcnError(f"{path}: empty file")
            sample = [row for _, row in zip(range(SAMPLE_ROWS), reader, strict=False)]
    _check_header(header, path)
    if label not in header:
        raise DcnError(f"{path}: no label column {label!r} (columns: {', '.join(header)})")
    forced_cat, forced_num = _parse_names(categorical), _parse_names(numerical)
    for name in forced_cat + forced_num:
        if name not in header:
            raise DcnError(f"{path}: no column {name!r} (columns: {', '.join(header)})")
        if name == label:
            raise DcnError(f"{path}: {name!r} is the label; it cannot also be a feature")
        if name in forced_cat and name in forced_num:
            raise DcnError(
                f"{path}: column {name!r} is named by both --categorical and --numerical"
            )
    if len(header) < 2:
        raise DcnError(f"{path}: no feature columns besides the label {label!r}")
    columns = []
    for i, name in enumerate(header):
        values = [row[i] for row in sample if len(row) == len(header)]
        if name == label:
            columns.append(Column(name, "label", "float32"))
        elif name in forced_num:
            columns.append(Column(name, "numerical", "float32"))
        elif name in forced_cat:
            columns.append(Column(name, "categorical", "int64" if _all(values, int) else "string"))
        elif _all(values, float):
            columns.append(Column(name, "numerical", "float32"))
        else:
            columns.append(Column(name, "categorical", "string"))
    if task is None:
        labels = [row[header.index(label)] for row in sample if len(row) == len(header)]
        task = "binary" if labels and set(labels) <= {"0", "1", "0.0", "1.0"} else "regression"
    schema = Schema(columns=columns, task=task, source={"kind": "csv", "path": str(path)})
    return _delimited_table(schema, [path], str(path))


def _check_header(header: list[str], path: Path) -> None:
    """Every column has a name, and no name is used twice."""
    for i, name in enumerate(header):
        if not name.strip():
            raise DcnError(f"{path}:1: column {i + 1} has no name")
        if name in header[:i]:
            first = header.index(name) + 1
            raise DcnError(f"{path}:1: column {name!r} appears twice (columns {first} and {i + 1})")


def _all(values: list[str], parse) -> bool:
    if not values:
        return False
    try:
        for value in values:
            parse(value)
    except ValueError:
        return False
    return True


CRITEO_COLUMNS = (
    [Column("label", "label", "float32")]
    + [Column(f"I{i}", "numerical", "float32") for i in range(1, 14)]
    + [Column(f"C{i}", "categorical", "string") for i in range(1, 27)]
)


def criteo_table(path: Path) -> Table:
    """Criteo TSV, as in the Kaggle dac and 1TB day files: no header, empty fields allowed."""
    schema = Schema(
        columns=list(CRITEO_COLUMNS),
        task="binary",
        delimiter="\t",
        header=False,
        source={"kind": "criteo", "path": str(path)},
    )
    return _delimited_table(schema, [path], str(path), fill=True)


def _looks_like_criteo(path: Path) -> bool:
    try:
        with _open_text(path) as handle:
            first = handle.readline()
    except (OSError, EOFError, zlib.error, UnicodeDecodeError):
        return False  # not Criteo; the CSV reader reports what is wrong with it
    return first.rstrip("\r\n").count("\t") == len(CRITEO_COLUMNS) - 1


# ------------------------------------------------------------------- MovieLens

AGE_BUCKETS = (1, 18, 25, 35, 45, 50, 56)  # tfds' bucketized_user_age
MOVIELENS_COLUMNS = [
    Column("movie_id", "categorical", "string"),
    Column("user_id", "categorical", "string"),
    Column("user_zip_code", "categorical", "string"),
    Column("user_occupation_text", "categorical", "string"),
    Column("user_gender", "categorical", "int64"),
    Column("bucketized_user_age", "categorical", "int64"),
    Column("user_rating", "label", "float32"),
]
ML1M_OCCUPATIONS = [
    "other/not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
]


def bucketize_age(age: int) -> int:
    return max(b for b in AGE_BUCKETS if b <= max(age, 1))


def _movielens_schema(kind: str, where: str) -> Schema:
    return Schema(columns=list(MOVIELENS_COLUMNS), source={"kind": kind, "path": where})


def _rows(text: str, sep: str, fields: int, where: str) -> Iterator[list[str]]:
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split(sep)
        if len(parts) != fields:
            raise DcnError(
                f"{where}:{line_no}: expected {fields} {sep!r}-separated fields, found {len(parts)}"
            )
        yield parts


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DcnError(f"{where}: {value!r} is not an integer") from None


def _movielens_chunk(ratings, users: dict[str, tuple[str, str, str, int]], where: str) -> Chunk:
    """Join ratings (user, movie, rating) with users (gender, occupation, zip, age)."""
    columns: dict[str, list] = {c.name: [] for c in MOVIELENS_COLUMNS}
    for user, movie, rating in ratings:
        if user not in users:
            raise DcnError(f"{where}: rating for user {user} who is not in the user table")
        gender, occupation, zip_code, age = users[user]
        columns["movie_id"].append(movie)
        columns["user_id"].append(user)
        columns["user_zip_code"].append(zip_code)
        columns["user_occupation_text"].append(occupation)
        columns["user_gender"].append(1 if gender == "M" else 0)
        columns["bucketized_user_age"].append(bucketize_age(age))
        columns["user_rating"].append(rating)
    dtypes = {c.name: NUMPY_DTYPES[c.dtype] for c in MOVIELENS_COLUMNS}
    return {name: np.array(values, dtype=dtypes[name]) for name, values in columns.items()}


class _Files:
    """Read named files from a directory or a zip archive (any folder inside it)."""

    def __init__(self, location: Path):
        self.location = location
        self.zip = zipfile.ZipFile(location) if location.is_file() else None

    def has(self, name: str) -> bool:
        return self._member(name) is not None

    def _member(self, name: str) -> str | None:
        """The file's path (directory) or member name (zip), if present."""
        if self.zip is None:
            path = self.location / name
            return str(path) if path.is_file() else None
        return next((m for m in self.zip.namelist() if m.split("/")[-1] == name), None)

    def read(self, name: str, encoding: str) -> tuple[str, str]:
        member = self._member(name)
        if member is None:
            raise DcnError(f"{self.location}: no {name}")
        if self.zip is None:
            data, where = Path(member).read_bytes(), member
        else:
            where = f"{self.location}:{member}"
            try:
                data = self.zip.read(member)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as err:
                raise DcnError(f"{where}: damaged zip member ({err})") from None
        if not data.strip():
            raise DcnError(f"{where}: empty file")
        return data.decode(encoding), where


def _movielens_table(kind: str, location: Path, chunks, names: tuple[str, ...]) -> Table:
    if location.is_file():  # a zip archive
        nbytes = location.stat().st_size
    else:
        nbytes = sum((location / n).stat().st_size for n in names if (location / n).exists())
    return Table(_movielens_schema(kind, str(location)), str(location), chunks, nbytes)


def movielens_100k_table(location: Path) -> Table:
    files = _Files(location)

    def chunks() -> Iterator[Chunk]:
        text, where = files.read("u.user", "latin-1")
        users = {}
        for i, (uid, age, gender, occupation, zip_code) in enumerate(
            _rows(text, "|", 5, where), start=1
        ):
            users[uid] = (gender, occupation, zip_code, _int(age, f"{where}:{i}"))
        text, where = files.read("u.data", "latin-1")
        yield _movielens_chunk(_ratings(text, "\t", where), users, where)

    return _movielens_table("movielens-100k", location, chunks, ("u.data", "u.user"))


def _ratings(text: str, sep: str, where: str) -> list[tuple[str, str, float]]:
    """(user, movie, rating) of a MovieLens ratings file: user, movie, rating, timestamp."""
    ratings = []
    for i, (uid, movie, rating, _ts) in enumerate(_rows(text, sep, 4, where), start=1):
        ratings.append((uid, movie, float(_int(rating, f"{where}:{i}"))))
    return ratings


def movielens_1m_table(location: Path) -> Table:
    files = _Files(location)

    def chunks() -> Iterator[Chunk]:
        text, where = files.read("users.dat", "latin-1")
        users = {}
        for i, (uid, gender, age, occupation, zip_code) in enumerate(
            _rows(text, "::", 5, where), start=1
        ):
            code = _int(occupation, f"{where}:{i}")
            if not 0 <= code < len(ML1M_OCCUPATIONS):
                raise DcnError(f"{where}:{i}: unknown occupation code {code}")
            users[uid] = (gender, ML1M_OCCUPATIONS[code], zip_code, _int(age, f"{where}:{i}"))
        text, where = files.read("ratings.dat", "latin-1")
        yield _movielens_chunk(_ratings(text, "::", where), users, where)

    return _movielens_table("movielens-1m", location, chunks, ("ratings.dat", "users.dat"))


def tfds_table(name: str) -> Table:
    """``tfds:movielens/100k-ratings`` (or ``1m-ratings``) through tensorflow-datasets."""
    if not name.startswith("movielens/") or not name.endswith("-ratings"):
        raise DcnError(
            f"tfds:{name}: only tfds:movielens/100k-ratings and "
            "tfds:movielens/1m-ratings are supported"
        )

    def chunks() -> Iterator[Chunk]:
        from dcn_cli import backend

        backend.load()
        import tensorflow_datasets as tfds

        try:
            prepared = tfds.builder(name).is_prepared()
        except Exception as err:  # an unknown name or version: tfds raises several kinds
            raise DcnError(
                f"tfds:{name}: tensorflow-datasets does not know it ({_first_line(err)})"
            ) from None
        if not prepared and not _online(MOVIELENS_HOST):
            raise DcnError(
                f"tfds:{name}: not downloaded yet, and {MOVIELENS_HOST} cannot be reached "
                "(offline?); pass the ml-100k directory or zip instead"
            )
        try:
            ds = tfds.load(name, split="train")
        except Exception as err:  # tfds raises many kinds; all mean "could not load"
            raise DcnError(
                f"tfds:{name}: could not load it through tensorflow-datasets "
                f"({_first_line(err)}); "
                "offline, pass the ml-100k directory or zip instead"
            ) from None
        wanted = [c.name for c in MOVIELENS_COLUMNS]  # other fields vary in length
        ds = ds.map(lambda row: {name: row[name] for name in wanted})
        for batch in tfds.as_numpy(ds.batch(CHUNK_ROWS)):
            yield {
                "movie_id": _decode(batch["movie_id"]),
                "user_id": _decode(batch["user_id"]),
                "user_zip_code": _decode(batch["user_zip_code"]),
                "user_occupation_text": _decode(batch["user_occupation_text"]),
                "user_gender": batch["user_gender"].astype(np.int64),
                "bucketized_user_age": batch["bucketized_user_age"].astype(np.int64),
                "user_rating": batch["user_rating"].astype(np.float32),
            }

    return Table(_movielens_schema("tfds", f"tfds:{name}"), f"tfds:{name}", chunks, 0)


MOVIELENS_HOST = "files.grouplens.org"  # where tensorflow-datasets downloads MovieLens from


def _online(host: str, timeout: float = 5.0) -> bool:
    """Whether ``host`` answers on HTTPS within ``timeout`` seconds.

    Offline, tensorflow-datasets retries its download for minutes before it
    gives up; this one look decides at once.
    """
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") for v in values], dtype=object)


# ---------------------------------------------------------------------- dispatch


def builtin_mixer_table() -> Table:
    """The tutorial's toy, made in memory: what every command uses without --data."""
    from dcn_cli.generate import build

    schema, _ = build("mixer")
    return Table(schema, "built-in mixer", lambda: build("mixer")[1], 0)


def open_table(
    data: str,
    label: str | None = None,
    categorical: str | None = None,
    numerical: str | None = None,
    task: str | None = None,
) -> Table:
    """Resolve what ``--data`` names into a :class:`Table`."""
    if task is not None and task not in ("regression", "binary"):
        raise DcnError(f"unknown task {task!r}; expected regression or binary")
    if data.startswith("tfds:"):
        return tfds_table(data[len("tfds:") :])
    if data.startswith("criteo:"):
        path = Path(data[len("criteo:") :])
        if not path.is_file():
            raise DcnError(f"{path}: no such file")
        return criteo_table(path)
    path = Path(data)
    if not path.exists():
        raise DcnError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "schema.json").exists():
            table = schema_dir_table(path)
        elif (path / "u.data").exists():
            table = movielens_100k_table(path)
        elif (path / "ratings.dat").exists():
            table = movielens_1m_table(path)
        else:
            raise DcnError(
                f"{path}: not a dataset directory (expected schema.json, "
                "MovieLens 100K u.data or MovieLens 1M ratings.dat)"
            )
    elif path.suffix == ".zip":
        try:
            files = _Files(path)
        except zipfile.BadZipFile:
            raise DcnError(f"{path}: not a zip file") from None
        if files.has("u.data"):
            table = movielens_100k_table(path)
        elif files.has("ratings.dat"):
            table = movielens_1m_table(path)
        else:
            raise DcnError(f"{path}: holds neither MovieLens u.data nor ratings.dat")
    elif path.stat().st_size == 0:
        raise DcnError(f"{path}: empty file")
    elif _looks_like_criteo(path) and not label:
        table = criteo_table(path)
    else:
        return csv_table(path, label, categorical, numerical, task)
    if task is not None and task != table.schema.task:
        table.schema.task = task
    return table
