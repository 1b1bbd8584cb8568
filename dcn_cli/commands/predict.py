"""``dcn predict``: score rows with a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.commands.options import Ckpt


@user_errors
def predict(
    ckpt: Ckpt,
    data: Annotated[
        str,
        typer.Option(
            help="Rows to score, in any form --data of train takes; a CSV, Parquet or Criteo "
            "file may lack the label."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write: .parquet (or .pq) for Parquet, .gz for gzip CSV, else CSV. "
            "Default: CSV on standard output.",
        ),
    ] = None,
    ids: Annotated[
        str | None, typer.Option("--id", help="Comma-separated columns to copy to each output row.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Score rows with a checkpoint: one prediction per input row, in input order."""
    from dcn_cli.commands import render
    from dcn_cli.data.infer import parse_names
    from dcn_cli.inspect.predict import predict as run

    result = run(ckpt, data, out, parse_names(ids), progress=render.Ticker("scored"), force=force)
    if result.out is not None:
        typer.echo(f"wrote {result.rows:,} predictions to {result.out}", err=True)
