"""MovieLens 100K and 1M (a directory or the zip), and through tensorflow-datasets.

The ratings are joined with the user table into the columns tensorflow-datasets'
``movielens/*-ratings`` gives, so every route to MovieLens trains the same model.
From the files, each movie's genres (100K's ``u.item`` flags, 1M's
``movies.dat``) also come as ``movie_genres``, joined by ``|``
(``Action|Comedy``): read, but no feature unless ``--list movie_genres``
makes it one, so the tutorial's six features stay the default.
"""

from __future__ import annotations

import socket
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dcn_cli.data.schema import IGNORE, Column, Schema
from dcn_cli.data.table import CHUNK_ROWS, Chunk, Table, from_columns
from dcn_cli.errors import DcnError, first_line

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
GENRES = "movie_genres"
# u.item's 19 genre flags, in order (u.genre); 1M's movies.dat names genres the same way.
ML100K_GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
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


def _movielens_schema(kind: str, where: str, genres: bool = False) -> Schema:
    columns = list(MOVIELENS_COLUMNS)
    if genres:
        columns.insert(-1, Column(GENRES, IGNORE, "string"))
    return Schema(columns=columns, source={"kind": kind, "path": where})


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


def _movielens_chunk(
    ratings,
    users: dict[str, tuple[str, str, str, int]],
    where: str,
    genres: dict[str, str] | None = None,
) -> Chunk:
    """Join ratings (user, movie, rating) with users (gender, occupation, zip, age) and,
    when given, each movie's genres."""
    schema = _movielens_schema("", "", genres is not None)
    columns: dict[str, list] = {c.name: [] for c in schema.columns}
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
        if genres is not None:
            columns[GENRES].append(genres.get(movie, ""))
    return from_columns(schema, columns)


class ArchiveFiles:
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


def _movielens_table(
    kind: str, location: Path, chunks, names: tuple[str, ...], genres: bool
) -> Table:
    if location.is_file():  # a zip archive
        nbytes = location.stat().st_size
    else:
        nbytes = sum((location / n).stat().st_size for n in names if (location / n).exists())
    schema = _movielens_schema(kind, str(location), genres)
    return Table(schema, str(location), [chunks], nbytes)


def _genres_100k(files: ArchiveFiles) -> dict[str, str] | None:
    """Each movie's genres from u.item's flags, or None without u.item."""
    if not files.has("u.item"):
        return None
    text, where = files.read("u.item", "latin-1")
    genres = {}
    for i, fields in enumerate(_rows(text, "|", 5 + len(ML100K_GENRES), where), start=1):
        flags = fields[5:]
        if any(flag not in ("0", "1") for flag in flags):
            raise DcnError(f"{where}:{i}: genre flags must be 0 or 1")
        genres[fields[0]] = "|".join(
            g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1"
        )
    return genres


def _genres_1m(files: ArchiveFiles) -> dict[str, str] | None:
    """Each movie's genres from movies.dat (``Action|Comedy``), or None without it."""
    if not files.has("movies.dat"):
        return None
    text, where = files.read("movies.dat", "latin-1")
    return {movie: genres for movie, _title, genres in _rows(text, "::", 3, where)}


def movielens_100k_table(location: Path) -> Table:
    files = ArchiveFiles(location)

    def chunks() -> Iterator[Chunk]:
        text, where = files.read("u.user", "latin-1")
        users = {}
        for i, (uid, age, gender, occupation, zip_code) in enumerate(
            _rows(text, "|", 5, where), start=1
        ):
            users[uid] = (gender, occupation, zip_code, _int(age, f"{where}:{i}"))
        text, where = files.read("u.data", "latin-1")
        yield _movielens_chunk(_ratings(text, "\t", where), users, where, _genres_100k(files))

    names = ("u.data", "u.user", "u.item")
    return _movielens_table("movielens-100k", location, chunks, names, files.has("u.item"))


def _ratings(text: str, sep: str, where: str) -> list[tuple[str, str, float]]:
    """(user, movie, rating) of a MovieLens ratings file: user, movie, rating, timestamp."""
    ratings = []
    for i, (uid, movie, rating, _ts) in enumerate(_rows(text, sep, 4, where), start=1):
        ratings.append((uid, movie, float(_int(rating, f"{where}:{i}"))))
    return ratings


def movielens_1m_table(location: Path) -> Table:
    files = ArchiveFiles(location)

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
        yield _movielens_chunk(_ratings(text, "::", where), users, where, _genres_1m(files))

    names = ("ratings.dat", "users.dat", "movies.dat")
    return _movielens_table("movielens-1m", location, chunks, names, files.has("movies.dat"))


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
                f"tfds:{name}: tensorflow-datasets does not know it ({first_line(err)})"
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
                f"({first_line(err)}); "
                "offline, pass the ml-100k directory or zip instead"
            ) from None
        wanted = [c.name for c in MOVIELENS_COLUMNS]  # other fields vary in length
        ds = ds.map(lambda row: {name: row[name] for name in wanted})
        for batch in tfds.as_numpy(ds.batch(CHUNK_ROWS)):
            yield from_columns(
                schema,
                {
                    "movie_id": _decode(batch["movie_id"]),
                    "user_id": _decode(batch["user_id"]),
                    "user_zip_code": _decode(batch["user_zip_code"]),
                    "user_occupation_text": _decode(batch["user_occupation_text"]),
                    "user_gender": batch["user_gender"].astype(np.int64),
                    "bucketized_user_age": batch["bucketized_user_age"].astype(np.int64),
                    "user_rating": batch["user_rating"].astype(np.float32),
                },
            )

    schema = _movielens_schema("tfds", f"tfds:{name}")
    return Table(schema, f"tfds:{name}", [chunks], 0)


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


def _decode(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode("utf-8") for v in values], dtype=object)
