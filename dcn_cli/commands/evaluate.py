"""``dcn evaluate``: a checkpoint's metrics."""

from __future__ import annotations

from pathlib import Path
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
    group: Annotated[
        str | None,
        typer.Option(
            help="A column that groups the rows (a user id): adds gauc, the AUC within each "
            "group holding both labels, averaged weighted by rows."
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Draw a binary model's reliability diagram (predicted against observed rate "
            "in 10 bins of equal rows) to this PNG file."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --plot if it exists.")] = False,
    json_out: Json = False,
) -> None:
    """Report a checkpoint's metrics on its test split or on other data.

    Binary models report AUC, log loss, normalized entropy (log loss over the
    entropy of the base rate; 1 = predicting the base rate), calibration (mean
    prediction over mean label; 1 = calibrated) and accuracy.
    """
    from dcn_cli.commands import render
    from dcn_cli.inspect.evaluate import evaluate as run

    metrics = run(ckpt, data, group, plot, force)
    render.metrics(f"metrics ({ckpt})", metrics, json_out)
    if plot is not None and not json_out:
        print(f"wrote {plot}")
