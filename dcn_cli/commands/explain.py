"""``dcn explain``: the crosses a checkpoint learnt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.commands.options import Ckpt


@user_errors
def explain(
    ckpt: Ckpt,
    block_norm: Annotated[
        bool,
        typer.Option("--block-norm", help="Root mean square of each feature-by-feature block."),
    ] = False,
    layer: Annotated[
        int | None, typer.Option(help="Cross layer to show, from 0. Default: all.")
    ] = None,
    top: Annotated[int, typer.Option(help="How many of the strongest crosses to list.")] = 10,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="PNG to write. Default: CKPT/explain.png "
            "(CKPT/explain-block-norm.png with --block-norm).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it exists (CKPT's own is redrawn).")
    ] = False,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"features", "matrix", "layer"} as JSON '
            "(a list of them when several layers are shown).",
        ),
    ] = False,
) -> None:
    """Draw the learned cross matrices and list the strongest feature crosses."""
    from dcn_cli.commands import render
    from dcn_cli.inspect.explain import explain as run

    result = run(ckpt, block_norm=block_norm, layer=layer, top=top, out=out, force=force)
    render.crosses(result, json_out)
