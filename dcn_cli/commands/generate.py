"""``dcn generate``: write a synthetic dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.commands.options import choices


@user_errors
def generate(
    kind: Annotated[str, typer.Argument(help="Dataset kind.", **choices("kind"))],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory to write (replaced if it holds a dataset)."),
    ],
    rows: Annotated[int | None, typer.Option(help="Number of rows. Default 100000.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed. Default 42 for mixer (the tutorial's), else 0.")
    ] = None,
    function: Annotated[
        str,
        typer.Option(
            help="poly: f1, f2 (DCN-V2 paper, Table 1), f3 (third order) or random.",
            **choices("function"),
        ),
    ] = "f1",
    features: Annotated[
        int, typer.Option(help="poly: number of inputs x1..xN (at least what the function uses).")
    ] = 4,
    order: Annotated[int, typer.Option(help="poly random: highest degree of a term.")] = 2,
    terms: Annotated[int, typer.Option(help="poly random: number of terms.")] = 4,
    noise: Annotated[
        float, typer.Option(help="poly: standard deviation of Gaussian label noise.")
    ] = 0.0,
    vocab_size: Annotated[
        int, typer.Option(help="ctr: vocabulary size of the largest column (C26).")
    ] = 1_000_000,
    with_tags: Annotated[
        bool,
        typer.Option(
            "--with-tags",
            help="ctr: add 'tags', a list of 0-4 tags per row, crossed with I2 (instead of I3).",
        ),
    ] = False,
) -> None:
    """Write a synthetic dataset (mixer, poly, ctr) as CSV plus schema.json.

    ctr also writes each row's true click probability (truth-NNNNN.csv).
    """
    from dcn_cli.commands import render
    from dcn_cli.data.generate import generate as run

    schema = run(
        kind,
        out,
        progress=render.Ticker("wrote"),
        rows=rows,
        seed=seed,
        function=function,
        features=features,
        order=order,
        terms=terms,
        noise=noise,
        vocab_size=vocab_size,
        with_tags=with_tags,
    )
    rows_written = schema.source["rows"]
    typer.echo(f"wrote {rows_written:,} {kind} rows to {out} ({len(schema.files)} file(s))")
