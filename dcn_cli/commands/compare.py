"""``dcn compare``: several models over several seeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli import settings
from dcn_cli.commands import options as opt
from dcn_cli.commands.app import user_errors
from dcn_cli.errors import DcnError
from dcn_cli.model.presets import resolve_model

ExplainRuns = Annotated[
    bool,
    typer.Option(
        "--explain",
        help="Also say, for each model with a cross network, how far its runs agree on "
        "the crosses (as dcn explain of several checkpoints): tables, "
        'comparison.json\'s "explain" and explain-MODEL.png in --out.',
    ),
]


@user_errors
def compare(
    ctx: typer.Context,
    models: Annotated[
        list[str],
        typer.Argument(
            help="Presets (dcn, dcn-lr, dnn, cross, dcn-parallel, dcn-v1, dcn-mix) or JSON "
            "config paths. The first is the baseline of the p-values."
        ),
    ],
    runs: Annotated[int, typer.Option(help="Runs per model, with seeds 0..N-1.")] = 5,
    data: opt.Data = None,
    label: opt.Label = None,
    categorical: opt.Categorical = None,
    numerical: opt.Numerical = None,
    task: opt.Task = None,
    hash_buckets: opt.HashBuckets = None,
    ignore: opt.Ignore = None,
    weight: opt.Weight = None,
    lists: opt.Lists = None,
    pooling: opt.Pooling = "mean",
    min_count: opt.MinCount = settings.MIN_COUNT,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for comparison.json/.csv/.png.")
    ] = Path("comparison"),
    epochs: opt.Epochs = settings.EPOCHS,
    batch_size: opt.Batch = settings.BATCH_SIZE,
    lr: opt.Lr = settings.LR,
    optimizer: opt.Optimizer = settings.OPTIMIZER,
    weight_decay: opt.WeightDecay = settings.WEIGHT_DECAY,
    patience: opt.Patience = settings.PATIENCE,
    validation: opt.Validation = 0.0,
    embedding_dim: opt.EveryEmbeddingDim = None,
    embedding_l2: opt.EveryEmbeddingL2 = settings.EMBEDDING_L2,
    dropout: opt.EveryDropout = settings.DROPOUT,
    precision: opt.Precision = "float32",
    metric: opt.Metric = None,
    group: opt.Group = None,
    explain: ExplainRuns = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write into --out even if it holds files (a comparison's are replaced)."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Train several models over several seeds and compare them."""
    for model in models:  # presets and model files, checked before any work
        resolve_model(model)
    from dcn_cli.train.metrics import check_group

    check_group(metric, group)
    opt.check_columns(ctx.params)
    from dcn_cli.commands import render
    from dcn_cli.train.compare import claim_output, write_outputs
    from dcn_cli.train.compare import compare as run

    crosses = _crosses(runs) if explain else None
    claim_output(out, force)
    spec, training = opt.data_spec(ctx.params), opt.train_settings(ctx.params)
    progress = None if json_out else render.CompareProgress(runs * len(models))
    try:
        result = run(
            models, runs, spec, training, embedding_dim=embedding_dim,
            embedding_l2=embedding_l2, dropout=dropout, precision=precision,
            progress=progress, warn=render.warn, metric=metric, group=group, after_run=crosses,
        )  # fmt: skip
    finally:
        if progress is not None:
            progress.stop()
    if crosses is not None:
        result["explain"] = crosses.results()
        for note in crosses.notes:
            render.warn(note)
    render.comparison(result, json_out, write_outputs(result, out))
    if crosses is not None and not json_out:
        from dcn_cli.commands.render_explain import run_tables

        for entry in result["explain"]:
            run_tables(entry["layers"], entry["model"])


def _crosses(runs: int):
    """``--explain``'s hook: it reads each run's crosses as compare trains it."""
    from dcn_cli.inspect.runs import CompareCrosses

    if runs < 2:
        raise DcnError(f"--explain compares a model's runs; give --runs 2 or more, not {runs}")

    return CompareCrosses()
