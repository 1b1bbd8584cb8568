"""``dcn describe``: each column of a dataset, the role dcn gives it, and why.

For a CSV or Parquet file the roles are inferred from its first rows
(:mod:`dcn_cli.data.infer`), exactly as ``dcn train`` would with the same
options; other sources (a ``schema.json`` directory, MovieLens, Criteo) have
their roles already, and their first rows are profiled. The result can be
written as a ``schema.json`` to edit and train from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcn_cli.data import delimited
from dcn_cli.data.delimited import infer_csv
from dcn_cli.data.infer import Profile, list_role, notes, profile_of
from dcn_cli.data.parquet import infer_parquet
from dcn_cli.data.schema import Schema
from dcn_cli.data.sources import PARQUET, DataSpec, given_roles, looks_like_criteo
from dcn_cli.data.table import head, to_numpy
from dcn_cli.errors import DcnError
from dcn_cli.fileio import write_json


def _own_file(spec: DataSpec) -> Path | None:
    """The CSV or Parquet file ``--data`` names, whose roles dcn infers; else None."""
    if spec.data is None or ":" in spec.data.split("/")[0]:
        return None  # the built-in mixer, tfds:, criteo:
    path = Path(spec.data)
    if not path.is_file() or path.suffix == ".zip" or path.stat().st_size == 0:
        return None
    if path.suffix not in PARQUET and looks_like_criteo(path) and not spec.label:
        return None
    return path


def describe(spec: DataSpec) -> Description:
    """Each column's role, type, distinct values, share missing, commonest values and
    warning, from the first rows (:data:`dcn_cli.data.delimited.SAMPLE_ROWS`)."""
    path = _own_file(spec)
    if path is not None:
        infer = infer_parquet if path.suffix in PARQUET else infer_csv
        given = given_roles(
            spec.categorical, spec.numerical, spec.ignore, spec.weight, spec.lists, spec.pooling
        )
        columns, profiles, task = infer(path, spec.label, given, spec.task)
        schema = Schema(columns=columns, task=task or "regression", files=[str(path)])
        if path.suffix in PARQUET:
            schema.source = {"kind": "parquet", "path": str(path)}
        source = str(path)
    else:
        table = spec.open()
        schema, source = table.schema, table.name
        rows = head(table.chunks(), delimited.SAMPLE_ROWS, schema)
        profiles = [
            profile_of(c.name, _text(rows[c.name]), _role(c), c.dtype) for c in schema.columns
        ]
        task = schema.task
    label = spec.label if path is not None else schema.label
    return Description(source, label, task, profiles, schema)


@dataclass
class Description:
    """What ``dcn describe`` found: the columns' profiles and the schema they make."""

    source: str
    label: str | None
    task: str | None
    profiles: list[Profile]
    schema: Schema

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "label": self.label,
            "task": self.task,
            "rows_sampled": self.profiles[0].rows if self.profiles else 0,
            "columns": [p.to_dict() for p in self.profiles],
            "warnings": notes(self.profiles),
        }


def _role(column) -> str:
    return list_role(column.separator) if column.separator else column.role


def _text(column) -> list[str]:
    return ["" if v is None else str(v) for v in to_numpy(column).tolist()]


def write_schema(described: Description, out: Path, force: bool = False) -> Path:
    """``schema.json`` in directory ``out`` for what :func:`describe` found: a dataset
    directory to edit and train from (``dcn train --data OUT``)."""
    schema = described.schema
    if described.label is None or not schema.files:
        raise DcnError("--schema-out writes a CSV or Parquet file's schema; give --label too")
    target = out / "schema.json"
    if target.exists() and not force:
        raise DcnError(f"{target}: exists; give --force to replace it")
    out.mkdir(parents=True, exist_ok=True)
    data = Path(schema.files[0]).resolve()
    schema.files = [os.path.relpath(data, out.resolve())]
    schema.validate(str(target))
    write_json(target, schema.to_dict())
    return target
