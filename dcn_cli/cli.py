"""The ``dcn`` command line: a Typer app of thin commands.

Each command parses its options and calls a plain function elsewhere in the
package. Nothing here imports TensorFlow at module level, so ``dcn --help``
answers at once.
"""

from __future__ import annotations

import functools
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
def generate() -> None:
    """Write a synthetic dataset (mixer, poly, ctr) to a directory. Not yet."""
    _not_yet("generate", 3)


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
