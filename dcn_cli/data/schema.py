"""A dataset's schema: each column's role, the label, the task and the split.

``schema.json`` sits beside the rows of every dataset directory that ``dcn
generate`` writes, and a hand-made directory can carry one too. Readers of
other formats (CSV with ``--label``, MovieLens, Criteo) build the same object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json, write_json
from dcn_cli.settings import POOLINGS

# ``ignore``: read as text and handed on, never a feature (a row id, a column left
# out with --ignore, the ids ``dcn predict`` copies to its output).
IGNORE = "ignore"
# ``weight``: each row's weight in the loss and the metrics (>= 0), never a feature.
WEIGHT = "weight"
ROLES = ("categorical", "numerical", "label", IGNORE, WEIGHT)
SCHEMA_FORMAT = 1


def _expect(value: Any, kind: type | tuple[type, ...], what: str, where: str) -> None:
    """A JSON value of the wrong type is an error naming the setting (``true`` is no number)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        names = " or ".join(
            {
                str: "a string",
                bool: "true or false",
                int: "an integer",
                float: "a number",
                list: "a list",
                dict: "an object",
                type(None): "null",
            }[k]
            for k in kinds
        )
        raise DcnError(f"{where}: {what} must be {names}, got {value!r}")


JsonKind = type | tuple[type, ...]
_COLUMN_KEYS: dict[str, JsonKind] = {
    "name": str,
    "role": str,
    "dtype": str,
    "normalize": bool,
    "fill_empty": bool,
    "separator": (str, type(None)),
    "pooling": str,
}
_SCHEMA_KEYS: dict[str, JsonKind] = {
    "task": str,
    "files": list,
    "delimiter": str,
    "header": bool,
    "split": dict,
    "source": dict,
    "crosses": list,
    "truth": list,
}
_SPLIT_KEYS: dict[str, JsonKind] = {"kind": str, "test": (int, float), "seed": int}


def _check_types(data: dict[str, Any], where: str) -> None:
    """The JSON types of a schema.json, checked before anything is built from them."""
    _expect(data.get("columns"), list, "columns", where)
    for i, column in enumerate(data["columns"]):
        _expect(column, dict, f"columns[{i}]", where)
        _check_keys(column, _COLUMN_KEYS, f"columns[{i}].", where, required=("name", "role"))
    _check_keys(data, _SCHEMA_KEYS, "", where)
    for key in ("files", "truth"):
        for i, name in enumerate(data.get(key, [])):
            _expect(name, str, f"{key}[{i}]", where)
    if len(data.get("delimiter", ",")) != 1:
        raise DcnError(f"{where}: delimiter must be one character, got {data['delimiter']!r}")
    _check_keys(data.get("split", {}), _SPLIT_KEYS, "split.", where)


def _check_keys(
    values: dict[str, Any], kinds: dict[str, JsonKind], prefix: str, where: str, required=()
) -> None:
    for key, kind in kinds.items():
        if key in values or key in required:
            _expect(values.get(key), kind, prefix + key, where)


@dataclass
class Column:
    """One column of the rows. ``dtype`` is ``string``, ``int64`` or ``float32``."""

    name: str
    role: str
    dtype: str = "float32"
    normalize: bool = True  # numerical columns: scale with training-split statistics
    fill_empty: bool = False  # numerical columns: an empty cell reads as 0 (else an error)
    # List-valued categorical columns: the separator between a cell's elements (a Parquet
    # list column is read as its elements joined by it), and how their embeddings pool.
    separator: str | None = None
    pooling: str = "mean"

    def __post_init__(self) -> None:
        if self.role == IGNORE:
            self.dtype = "string"  # never a feature: any text will do
        elif self.role == WEIGHT:
            self.dtype = "float32"


@dataclass
class Split:
    """How rows are assigned to train / validation / test.

    ``random``: each row independently, by a seeded hash of its row number.
    ``ordered``: the first rows train, the last ``test`` fraction tests (the
    tutorial's mixer split); validation, when asked, is the end of train.
    """

    kind: str = "random"
    test: float = 0.2
    seed: int = 42


@dataclass
class Schema:
    columns: list[Column]
    task: str = "regression"
    files: list[str] = field(default_factory=list)
    delimiter: str = ","
    header: bool = True
    split: Split = field(default_factory=Split)
    source: dict[str, Any] = field(default_factory=dict)  # how the data was made or found
    crosses: list[dict[str, Any]] = field(default_factory=list)  # known true crosses
    # Side files, one per data file and row for row, holding each row's true
    # probability (a column named "probability"); kept out of the features.
    truth: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.columns = [c if isinstance(c, Column) else Column(**c) for c in self.columns]
        if isinstance(self.split, dict):
            self.split = Split(**self.split)

    @property
    def label(self) -> str:
        return next(c.name for c in self.columns if c.role == "label")

    @property
    def weight(self) -> str | None:
        """The column of row weights, if the rows have one."""
        return next((c.name for c in self.columns if c.role == WEIGHT), None)

    @property
    def features(self) -> list[Column]:
        return [c for c in self.columns if c.role not in ("label", IGNORE, WEIGHT)]

    def validate(self, where: str = "schema") -> None:
        for column in self.columns:
            if column.role not in ROLES:
                raise DcnError(
                    f"{where}: column {column.name!r} has unknown role {column.role!r}; "
                    f"expected one of: {', '.join(ROLES)}"
                )
            if column.dtype not in ("string", "int64", "float32"):
                raise DcnError(
                    f"{where}: column {column.name!r} has unknown dtype {column.dtype!r}"
                )
            if column.role == "numerical" and column.dtype == "string":
                raise DcnError(f"{where}: numerical column {column.name!r} has dtype 'string'")
            if column.separator is not None and (
                column.role != "categorical" or column.dtype != "string" or not column.separator
            ):
                raise DcnError(
                    f"{where}: column {column.name!r} has a separator; only a categorical "
                    "column of dtype string holds lists, and its separator is not empty"
                )
            if column.pooling not in POOLINGS:
                raise DcnError(
                    f"{where}: column {column.name!r}: pooling must be one of "
                    f"{', '.join(POOLINGS)}, got {column.pooling!r}"
                )
        labels = [c.name for c in self.columns if c.role == "label"]
        if len(labels) != 1:
            raise DcnError(f"{where}: needs exactly one label column, found {len(labels)}")
        if len([c for c in self.columns if c.role == WEIGHT]) > 1:
            raise DcnError(f"{where}: at most one weight column")
        if not self.features:
            raise DcnError(f"{where}: needs at least one feature column")
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise DcnError(f"{where}: duplicate column names")
        if self.task not in ("regression", "binary"):
            raise DcnError(f"{where}: unknown task {self.task!r}; expected regression or binary")
        if self.split.kind not in ("random", "ordered"):
            raise DcnError(f"{where}: unknown split kind {self.split.kind!r}")
        if self.truth and len(self.truth) != len(self.files):
            raise DcnError(
                f"{where}: truth lists {len(self.truth)} files for {len(self.files)} data files"
            )
        if not 0.0 < self.split.test < 1.0:
            raise DcnError(f"{where}: split test fraction must be in (0, 1), got {self.split.test}")

    def to_dict(self) -> dict[str, Any]:
        return {"format": SCHEMA_FORMAT, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Schema:
        if not isinstance(data, dict):
            raise DcnError(f"{where}: expected a JSON object")
        data = dict(data)
        if data.pop("format", SCHEMA_FORMAT) != SCHEMA_FORMAT:
            raise DcnError(f"{where}: unsupported schema format")
        _check_types(data, where)
        try:
            schema = cls(**data)
        except TypeError as err:
            raise DcnError(f"{where}: {err}") from None
        schema.validate(where)
        return schema

    @classmethod
    def load(cls, path: str | Path) -> Schema:
        return cls.from_dict(read_json(path), str(path))
