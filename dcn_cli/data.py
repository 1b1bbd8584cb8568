"""What ``--data`` names, opened: the one place that picks a reader for a user's data.

Accepted sources:

- a directory with ``schema.json`` (what ``dcn generate`` writes), its files
  CSV/TSV (plain or gzip) or Parquet;
- a CSV file with ``--label COL`` (roles inferred, overridable), or a Parquet
  file with ``--label COL`` (roles from the column types);
- MovieLens 100K (directory or ``ml-100k.zip``), MovieLens 1M (directory or
  zip), or ``tfds:movielens/100k-ratings`` through tensorflow-datasets;
- Criteo TSV (label, I1-I13, C1-C26; plain or gzip), detected by its 40
  tab-separated fields or forced with ``criteo:PATH``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcn_cli.config import from_json
from dcn_cli.delimited import criteo_table, csv_table, delimited_table, looks_like_criteo
from dcn_cli.errors import DcnError
from dcn_cli.movielens import ArchiveFiles, movielens_1m_table, movielens_100k_table, tfds_table
from dcn_cli.parquet import parquet_files_table, parquet_table
from dcn_cli.schema import Schema
from dcn_cli.table import Table, from_columns

if TYPE_CHECKING:
    from dcn_cli.prepare import Prepared

PARQUET = (".parquet", ".pq")


@dataclass
class DataSpec:
    """Where the rows come from, as the user named them; saved to reopen them later."""

    data: str | None = None  # None: the built-in mixer toy
    label: str | None = None
    categorical: str | None = None
    numerical: str | None = None
    task: str | None = None
    hash_buckets: str | None = None
    validation: float = 0.0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DataSpec:
        """The data a checkpoint was trained on, from its config.json record."""
        return from_json(cls, record["data"], "config.json: data")

    def open(self) -> Table:
        if self.data is None:
            return builtin_mixer_table()
        return open_table(self.data, self.label, self.categorical, self.numerical, self.task)

    def prepare(self) -> Prepared:
        from dcn_cli.prepare import DataOptions, parse_hash_buckets, prepare

        options = DataOptions(
            validation=self.validation, hash_buckets=parse_hash_buckets(self.hash_buckets)
        )
        return prepare(self.open(), options)


def builtin_mixer_table() -> Table:
    """The tutorial's toy, made in memory: what every command uses without --data."""
    from dcn_cli.generate import build

    schema, _ = build("mixer")

    def chunks():
        for columns in build("mixer")[1]:
            yield from_columns(schema, columns)

    return Table(schema, "built-in mixer", [chunks], 0)


def schema_dir_table(directory: Path) -> Table:
    schema = Schema.load(directory / "schema.json")
    if not schema.files:
        raise DcnError(f"{directory / 'schema.json'}: lists no data files")
    paths = [directory / f for f in schema.files]
    parquet = [p.suffix in PARQUET for p in paths]
    if any(parquet) and not all(parquet):
        raise DcnError(f"{directory / 'schema.json'}: mixes Parquet and text files")
    if all(parquet):
        return parquet_files_table(schema, paths, str(directory))
    return delimited_table(schema, paths, str(directory))


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
            files = ArchiveFiles(path)
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
    elif path.suffix in PARQUET:
        return parquet_table(path, label, categorical, numerical, task)
    elif looks_like_criteo(path) and not label:
        table = criteo_table(path)
    else:
        return csv_table(path, label, categorical, numerical, task)
    if task is not None and task != table.schema.task:
        table.schema.task = task
    return table
