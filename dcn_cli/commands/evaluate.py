"""``dcn evaluate``: a checkpoint's metrics."""

from __future__ import annotations

from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.commands.options import Ckpt, Json


@user_errors
def evaluate(
    ckpt: Ckpt,
    data: Annotated[
        str | None,
        typer.Option(
            help="Other data with the same features. Default: the checkpoint's own test split."
        ),
    ] = None,
    json_out: Json = False,
) -> None:
    """Report a checkpoint's metrics on its test split or on other data."""
    from dcn_cli.commands import render
    from dcn_cli.inspect.evaluate import evaluate as run

    render.metrics(f"metrics ({ckpt})", run(ckpt, data), json_out)
