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

import dataclasses
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcn_cli.data.delimited import (
    check_header,
    criteo_table,
    csv_table,
    delimited_table,
    looks_like_criteo,
    read_head,
)
from dcn_cli.data.infer import LIST, parse_names
from dcn_cli.data.movielens import (
    ArchiveFiles,
    movielens_1m_table,
    movielens_100k_table,
    tfds_table,
)
from dcn_cli.data.parquet import parquet_columns, parquet_files_table, parquet_table
from dcn_cli.data.schema import IGNORE, WEIGHT, Column, Schema
from dcn_cli.data.table import Table, from_columns
from dcn_cli.errors import DcnError
from dcn_cli.settings import MIN_COUNT, from_json, parse_lists, parse_pairs

if TYPE_CHECKING:
    from dcn_cli.data.features import FeatureSpec
    from dcn_cli.data.prepare import Prepared

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
    ignore: str | None = None  # columns that are never features
    weight: str | None = None  # the column of row weights
    lists: str | None = None  # list-valued columns: NAME[=SEP],...
    pooling: str = "mean"  # how a list's element embeddings are pooled
    min_count: int = MIN_COUNT  # training rows a category needs for its own embedding row

    def to_record(self, checkpoint: Path) -> dict[str, Any]:
        """These settings for config.json, the data's path made to travel.

        ``data`` is saved as an absolute path, so that the checkpoint finds it
        from any working directory, and ``data_from_checkpoint`` as the same
        path relative to the checkpoint directory, so that a checkpoint copied
        together with its data (a project directory, another machine) finds it too.
        """
        record = dataclasses.asdict(self)
        prefix, path = split_source(self.data)
        if path is not None:
            absolute = Path(os.path.abspath(path))
            record["data"] = prefix + str(absolute)
            record["data_from_checkpoint"] = prefix + os.path.relpath(
                absolute, os.path.abspath(checkpoint)
            )
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any], checkpoint: str | Path | None = None) -> DataSpec:
        """The data a checkpoint was trained on, from its config.json record.

        With ``checkpoint`` (the directory the record came from) the data's path
        is located: as saved, else relative to the checkpoint; when neither
        exists, an error says what is missing.
        """
        saved = record["data"]
        spec = from_json(cls, saved, "config.json: data")
        if "min_count" not in saved:
            spec.min_count = 1  # before dcn 0.4 every value had its own row
        if isinstance(saved.get("schema"), dict) and spec.label:
            _pin_roles(spec, saved["schema"])
        if checkpoint is not None:
            spec.data = locate(saved, Path(checkpoint))
        return spec

    def open(self) -> Table:
        if self.data is None:
            return builtin_mixer_table()
        return open_table(
            self.data,
            self.label,
            self.categorical,
            self.numerical,
            self.task,
            self.ignore,
            self.weight,
            self.lists,
            self.pooling,
        )

    def prepare(self, table: Table | None = None, validation_optional: bool = False) -> Prepared:
        """The rows' splits and encodings (``table``: these rows, opened already).
        With ``validation_optional`` an empty validation split is no error."""
        from dcn_cli.data.prepare import DataOptions, prepare

        options = DataOptions(
            validation=self.validation,
            hash_buckets=parse_pairs(self.hash_buckets or ""),
            min_count=self.min_count,
            validation_optional=validation_optional,
        )
        return prepare(table or self.open(), options)


def _pin_roles(spec: DataSpec, schema: dict[str, Any]) -> None:
    """Read a CSV or Parquet file with the roles it was trained with, whatever dcn would
    infer today: each column's role, as saved, becomes an option."""
    roles: dict[str, list[str]] = {"categorical": [], "numerical": [], IGNORE: [], WEIGHT: []}
    for column in schema.get("columns", []):
        if isinstance(column, dict) and column.get("role") in roles and not column.get("separator"):
            roles[column["role"]].append(str(column.get("name")))
    spec.categorical = ",".join(roles["categorical"]) or None
    spec.numerical = ",".join(roles["numerical"]) or None
    spec.ignore = ",".join(roles[IGNORE]) or None
    spec.weight = ",".join(roles[WEIGHT]) or None
    lists = [c for c in schema.get("columns", []) if isinstance(c, dict) and c.get("separator")]
    spec.lists = ",".join(f"{c['name']}={c['separator']}" for c in lists) or None
    spec.pooling = next((str(c.get("pooling", "mean")) for c in lists), "mean")


def split_source(data: str | None) -> tuple[str, Path | None]:
    """``(prefix, path)`` of what ``--data`` names: ``criteo:`` keeps its prefix; the
    built-in mixer and ``tfds:`` name no path."""
    if data is None or data.startswith("tfds:"):
        return "", None
    if data.startswith("criteo:"):
        return "criteo:", Path(data[len("criteo:") :])
    return "", Path(data)


def locate(saved: dict[str, Any], checkpoint: Path) -> str | None:
    """The saved data source, found from here: as saved (absolute since dcn 0.3; older
    checkpoints saved it as typed), else relative to the checkpoint directory."""
    data = saved.get("data")
    prefix, path = split_source(data)
    if path is None or path.exists():
        return data
    looked = [str(path)]
    relative = saved.get("data_from_checkpoint")
    if isinstance(relative, str):
        _, moved = split_source(relative)
        if moved is not None:
            found = Path(os.path.normpath(checkpoint / moved))
            if found.exists():
                return prefix + str(found)
            looked.append(str(found))
    raise DcnError(
        f"{checkpoint}: the data it was trained on is missing (looked for "
        f"{' and '.join(looked)}); predict, export, explain and evaluate --data work without it"
    )


def builtin_mixer_table() -> Table:
    """The tutorial's toy, made in memory: what every command uses without --data."""
    from dcn_cli.data.generate import build

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
    ignore: str | None = None,
    weight: str | None = None,
    lists: str | None = None,
    pooling: str | None = None,
) -> Table:
    """Resolve what ``--data`` names into a :class:`Table`; ``ignore`` names columns
    that are never features, ``weight`` the column of row weights, ``lists`` the
    list-valued ones (``NAME[=SEP],...``), pooled by ``pooling``."""
    given = given_roles(categorical, numerical, ignore, weight, lists, pooling)
    if task is not None and task not in ("regression", "binary"):
        raise DcnError(f"unknown task {task!r}; expected regression or binary")
    if data.startswith("tfds:"):
        return _given(tfds_table(data[len("tfds:") :]), given)
    if data.startswith("criteo:"):
        path = Path(data[len("criteo:") :])
        if not path.is_file():
            raise DcnError(f"{path}: no such file")
        return _given(criteo_table(path), given)
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
        return parquet_table(path, label, given, task)
    elif looks_like_criteo(path) and not label:
        table = criteo_table(path)
    else:
        return csv_table(path, label, given, task)
    if task is not None and task != table.schema.task:
        table.schema.task = task
    return _given(table, given)


def given_roles(
    categorical: str | None = None,
    numerical: str | None = None,
    ignore: str | None = None,
    weight: str | None = None,
    lists: str | None = None,
    pooling: str | None = None,
) -> dict[str, str | None]:
    """The roles options give columns, keyed as :func:`~dcn_cli.data.infer.check_roles`
    and the readers take them."""
    return {
        "categorical": categorical,
        "numerical": numerical,
        IGNORE: ignore,
        WEIGHT: weight,
        LIST: lists,
        "pooling": pooling,
    }


def _given(table: Table, given: dict[str, str | None]) -> Table:
    """``table`` (a source whose roles are set already) with the columns ``--ignore``
    names never used (read as text), the one ``--weight`` names as the rows' weights,
    and those ``--list`` names as lists."""
    columns = {c.name: c for c in table.schema.columns}
    lists = parse_lists(given.get(LIST))
    for role, names in ((IGNORE, given.get(IGNORE)), (WEIGHT, given.get(WEIGHT)), (LIST, lists)):
        for name in parse_names(",".join(names) if isinstance(names, dict) else names):
            if name not in columns:
                raise DcnError(
                    f"{table.name}: --{role} names {name!r}, which is not a column "
                    f"(columns: {', '.join(columns)})"
                )
            if columns[name].role == "label":
                raise DcnError(f"{table.name}: {name!r} is the label; --{role} cannot name it")
            if role == LIST:
                columns[name].role, columns[name].dtype = "categorical", "string"
                columns[name].separator = lists[name]
                columns[name].pooling = given.get("pooling") or "mean"
                continue
            columns[name].role = role
            columns[name].dtype = "string" if role == IGNORE else "float32"
    table.schema.validate(table.name)
    if not table.schema.features:
        raise DcnError(f"{table.name}: --ignore leaves no feature columns")
    return table


def scoring_table(
    data: str,
    features: list[FeatureSpec],
    task: str,
    label: str,
    keep: list[str] | None = None,
    with_label: bool = False,
    weight: str | None = None,
    filled: set[str] | None = None,
) -> Table:
    """The rows of ``data`` for a model of ``features``: what ``predict`` and ``evaluate
    --data`` read.

    Each feature column is read as the model takes it, whatever its values
    look like, and other columns are ignored. A single CSV, Parquet or Criteo
    file may lack the label unless ``with_label`` (then it is read and checked
    as a label); otherwise the label and the ``keep`` columns (ids) are handed
    on untouched. Other sources (a dataset directory, MovieLens) are opened as
    ``--data`` opens them, label included. With ``with_label``, ``weight`` (the
    checkpoint's column of row weights) is read as weights too, and must be there.
    ``filled`` names the numerical columns whose empty cells read as 0, as they
    did in training; list features are read as lists.
    """
    keep = keep or []
    prefix, path = split_source(data)
    table = None
    if path is not None and path.is_file():
        if prefix == "criteo:" or looks_like_criteo(path):
            table = criteo_table(path)
        elif looks_like_criteo(path, labelled=False):
            if with_label:
                raise DcnError(f"{path}: Criteo rows without their label; evaluate needs labels")
            table = criteo_table(path, labelled=False)
        elif path.suffix != ".zip":
            return _scoring_file(
                path, features, task, label, keep, with_label, weight, filled or set()
            )
    if table is None:
        table = open_table(
            data,
            label,
            ",".join(f.name for f in features if f.kind == "categorical"),
            ",".join(f.name for f in features if f.kind == "numerical"),
            weight=weight if with_label else None,
        )
    check_features(table.schema.columns, features, data)
    _check_kept(table.schema.columns, keep, data)
    return table


def _scoring_file(
    path: Path,
    features: list[FeatureSpec],
    task: str,
    label: str,
    keep: list[str],
    with_label: bool,
    weight: str | None,
    filled: set[str],
) -> Table:
    """One CSV or Parquet file, its columns matched by name to the model's features."""
    parquet = path.suffix in PARQUET
    if parquet:
        header = parquet_columns(path)
        check_header(header, path)
    else:
        header = read_head(path, rows=0)[0]
    kinds = {f.name: f for f in features}
    columns = []
    for name in header:
        if name in kinds:
            feature = kinds[name]
            columns.append(
                Column(
                    name,
                    feature.kind,
                    feature.dtype,
                    fill_empty=name in filled,
                    separator=feature.separator,
                    pooling=feature.pooling,
                )
            )
        elif name == label and with_label:
            columns.append(Column(name, "label", "float32"))
        elif name == weight and with_label:
            columns.append(Column(name, WEIGHT, "float32"))
        elif name == label or name in keep or not parquet:  # a CSV's reader reads every column
            columns.append(Column(name, IGNORE, "string"))
    check_features(columns, features, path)  # each one found takes the feature's type
    _check_kept(columns, keep, path)
    if with_label and label not in header:
        raise DcnError(f"{path}: no label column {label!r}, which evaluate needs")
    if with_label and weight is not None and weight not in header:
        raise DcnError(
            f"{path}: no weight column {weight!r}; the checkpoint was trained with weights, "
            "and evaluate weights its metrics the same way"
        )
    schema = Schema(columns=columns, task=task, source={"kind": "scoring"})
    if parquet:
        return parquet_files_table(schema, [path], str(path))
    return delimited_table(schema, [path], str(path))


def check_features(
    columns: list[Column], features: list[FeatureSpec], where: str | Path, extra: str = ""
) -> None:
    """Every feature of a checkpoint has its column, of its type; ``extra`` (names of
    columns the checkpoint does not know, when they are an error) joins the message."""
    names = {c.name: c.dtype for c in columns}
    missing = [f.name for f in features if f.name not in names]
    if missing or extra:
        parts = [f"missing column(s) {', '.join(missing)}"] if missing else []
        parts += [f"extra column(s) {extra}"] if extra else []
        raise DcnError(f"{where}: does not match the checkpoint's features: {'; '.join(parts)}")
    for feature in features:
        if names[feature.name] != feature.dtype:
            raise DcnError(
                f"{where}: column {feature.name!r} holds {names[feature.name]} values; "
                f"the checkpoint's feature takes {feature.dtype}"
            )


def _check_kept(columns: list[Column], keep: list[str], where: str | Path) -> None:
    names = {c.name for c in columns}
    absent = [name for name in keep if name not in names]
    if absent:
        raise DcnError(f"{where}: no column(s) {', '.join(absent)} to copy (--id)")
