"""The ``dcn`` command line: a Typer app of thin commands.

Each command parses its options and calls a plain function elsewhere in the
package. Nothing here imports TensorFlow at module level, so ``dcn --help``
answers at once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated

import typer

from dcn_cli import __version__
from dcn_cli.errors import DcnError

app = typer.Typer(
    name="dcn",
    help="Train and inspect Deep & Cross Network (DCN, DCN-V2) models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _user_errors(command):
    """Turn a :class:`DcnError` into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DcnError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dcn {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Train and inspect Deep & Cross Network (DCN, DCN-V2) models."""


def _not_yet(command: str, issue: int) -> None:
    raise DcnError(f"`dcn {command}` is not implemented yet (tracked in issue {issue})")


@app.command()
@_user_errors
def generate(
    kind: Annotated[str, typer.Argument(help="Dataset kind: mixer, poly or ctr.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory to write (replaced if it holds a dataset)."),
    ],
    rows: Annotated[int | None, typer.Option(help="Number of rows. Default 100000.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed. Default 42 for mixer (the tutorial's), else 0.")
    ] = None,
    function: Annotated[
        str, typer.Option(help="poly: f1, f2, f3 (DCN-V2 paper, Table 1) or random.")
    ] = "f1",
    features: Annotated[
        int, typer.Option(help="poly: number of inputs x1..xN (at least what the function uses).")
    ] = 4,
    order: Annotated[int, typer.Option(help="poly random: highest degree of a term.")] = 2,
    terms: Annotated[int, typer.Option(help="poly random: number of terms.")] = 4,
    noise: Annotated[
        float, typer.Option(help="poly: standard deviation of Gaussian label noise.")
    ] = 0.0,
    max_vocab: Annotated[
        int, typer.Option(help="ctr: vocabulary size of the largest column (C26).")
    ] = 1_000_000,
) -> None:
    """Write a synthetic dataset (mixer, poly, ctr) as CSV plus schema.json."""
    from dcn_cli.generate import generate as run

    schema = run(
        kind,
        out,
        rows=rows,
        seed=seed,
        function=function,
        features=features,
        order=order,
        terms=terms,
        noise=noise,
        max_vocab=max_vocab,
    )
    rows_written = schema.source["rows"]
    typer.echo(f"wrote {rows_written:,} {kind} rows to {out} ({len(schema.files)} file(s))")


@app.command()
@_user_errors
def train() -> None:
    """Train a model and write a checkpoint directory. Not yet."""
    _not_yet("train", 4)


@app.command()
@_user_errors
def evaluate() -> None:
    """Report a checkpoint's metrics on its test split or other data. Not yet."""
    _not_yet("evaluate", 4)


@app.command()
@_user_errors
def compare() -> None:
    """Train several models over several seeds and compare them. Not yet."""
    _not_yet("compare", 4)


@app.command()
@_user_errors
def explain() -> None:
    """Draw the learned cross matrices and list the strongest crosses. Not yet."""
    _not_yet("explain", 4)
