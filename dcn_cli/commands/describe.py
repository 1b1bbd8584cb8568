"""``dcn describe``: a dataset's columns, the role dcn gives each, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands import options as opt
from dcn_cli.commands.app import user_errors


@user_errors
def describe(
    data: Annotated[
        str,
        typer.Argument(
            help="Dataset directory, CSV or Parquet file, MovieLens dir/zip, tfds:NAME or "
            "Criteo TSV."
        ),
    ],
    label: opt.Label = None,
    categorical: opt.Categorical = None,
    numerical: opt.Numerical = None,
    ignore: opt.Ignore = None,
    weight: opt.Weight = None,
    lists: opt.Lists = None,
    pooling: opt.Pooling = "mean",
    task: opt.Task = None,
    schema_out: Annotated[
        Path | None,
        typer.Option(
            "--schema-out",
            help="Write DIR/schema.json from what was found, to edit and train from "
            "(dcn train --data DIR).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the schema.json --schema-out holds.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the columns as JSON.")] = False,
) -> None:
    """Show each column: the role dcn infers, its type, distinct values, share missing,
    commonest values and any warning (from the first 10,000 rows)."""
    from dcn_cli.commands import render
    from dcn_cli.data.describe import describe as run
    from dcn_cli.data.describe import write_schema
    from dcn_cli.data.sources import DataSpec

    spec = DataSpec(data, label, categorical, numerical, task, ignore=ignore, weight=weight)
    spec.lists, spec.pooling = lists, pooling
    described = run(spec)
    written = write_schema(described, schema_out, force) if schema_out is not None else None
    render.description(described.to_dict(), json_out, written)
