"""``dcn explain``: the crosses a checkpoint learnt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli.commands.app import user_errors
from dcn_cli.errors import DcnError

Ckpts = Annotated[
    list[Path],
    typer.Argument(
        metavar="CKPT...",
        help="Checkpoint directory written by dcn train; several (runs of one model, "
        "e.g. seeds) to see how far they agree.",
    ),
]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="PNG to write. Default: CKPT/explain.png "
        "(CKPT/explain-block-norm.png with --block-norm); explain-runs.png here for "
        "several checkpoints.",
    ),
]
Ablate = Annotated[
    int | None,
    typer.Option(
        metavar="K",
        help="Also zero each of the K strongest crosses (and the 3 weakest, as a control) "
        "in every cross layer and measure the loss lost on held-out rows.",
    ),
]
Rows = Annotated[
    str | None,
    typer.Option(
        "--data",
        metavar="ROWS",
        help="Rows to explain one at a time (a CSV or Parquet file, as predict reads): "
        "each feature's and each pair's part of --row's score.",
    ),
]
RankBy = Annotated[
    str | None,
    typer.Option(
        "--rank-by",
        metavar="effect|flow|strength",
        autocompletion=lambda: ["effect", "flow", "strength"],
        help="Rank the crosses by effect, how far each moves the logit on held-out rows of "
        "the checkpoint's data (to first order, without it); by flow, what each adds to "
        "the cross layer's output there; or by strength, the weights alone. Default: "
        "effect, or strength where the data is gone or a layer is DCN-Mix.",
    ),
]
JsonOut = Annotated[
    bool,
    typer.Option(
        "--json",
        help='Print {"layer", "features", "matrix", "ranked_by", "top", ...} as JSON (a '
        "list of them when several layers are shown; effect and flow matrices where "
        "measured).",
    ),
]


@user_errors
def explain(
    ckpts: Ckpts,
    block_norm: Annotated[
        bool,
        typer.Option("--block-norm", help="Root mean square of each feature-by-feature block."),
    ] = False,
    layer: Annotated[
        int | None, typer.Option(help="Cross layer to show, from 0. Default: all.")
    ] = None,
    top: Annotated[int, typer.Option(help="How many of the strongest crosses to list.")] = 10,
    out: Out = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it exists (CKPT's own is redrawn).")
    ] = False,
    ablate: Ablate = None,
    data: Rows = None,
    row: Annotated[int, typer.Option(help="Which row of --data, from 1.")] = 1,
    rank_by: RankBy = None,
    json_out: JsonOut = False,
) -> None:
    """Draw the learned cross matrices and list the strongest feature crosses; of several
    runs, how far they agree."""
    from dcn_cli.commands import render_explain
    from dcn_cli.inspect.explain import explain as run
    from dcn_cli.inspect.runs import explain_runs
    from dcn_cli.inspect.use import check_ranking

    if top <= 0:
        raise DcnError(f"--top must be positive, got {top}")
    check_ranking(rank_by)
    if data is not None:
        if len(ckpts) > 1 or ablate is not None or block_norm or out or rank_by:
            raise DcnError("--data explains one row of one checkpoint; give it alone")
        from dcn_cli.inspect.row import explain_row

        render_explain.row_parts(explain_row(ckpts[0], data, row), top, json_out)
        return
    if len(ckpts) == 1:
        ablation = None
        if ablate is not None:  # first: its mistakes before any figure is drawn
            from dcn_cli.inspect.ablation import ablate as measure

            ablation = measure(ckpts[0], ablate)
        result = run(ckpts[0], block_norm, layer, top, out, force, rank_by)
        if ablation is not None:
            result["ablation"] = ablation
        render_explain.crosses(result, json_out)
        return
    if ablate is not None:
        raise DcnError("--ablate measures one checkpoint; give one")
    if block_norm:
        raise DcnError(
            "--block-norm draws one checkpoint's matrices; give one checkpoint (several "
            "are compared by their ranking of the crosses)"
        )
    render_explain.run_crosses(explain_runs(ckpts, layer, top, out, force, rank_by), json_out)
