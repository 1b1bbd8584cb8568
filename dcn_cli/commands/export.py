"""``dcn export``: a SavedModel for serving."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.commands.options import Ckpt


@user_errors
def export(
    ckpt: Ckpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="SavedModel directory to write.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it holds files.")
    ] = False,
) -> None:
    """Write a TensorFlow SavedModel that serves raw feature values (TF Serving)."""
    from dcn_cli.model.export import export as run

    result = run(ckpt, out, force=force)
    typer.echo(f"wrote {result.out}; its serving_default signature takes, per row:")
    for feature, name in result.inputs.items():
        renamed = f"  (column {feature!r})" if name != feature else ""
        typer.echo(f"  {name}: {result.dtypes[feature]}{renamed}")
    typer.echo("and returns prediction, of shape (rows, 1)")
