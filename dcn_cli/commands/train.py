"""``dcn train``: train a model and write a checkpoint."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from dcn_cli import settings
from dcn_cli.commands import options as opt
from dcn_cli.commands.app import user_errors
from dcn_cli.errors import DcnError

# The options that go into the model config, as they are (deep_layers is parsed).
MODEL = (
    "arch",
    "cross_type",
    "cross_layers",
    "projection_dim",
    "num_experts",
    "diag_scale",
    "dropout",
    "embedding_dim",
    "embedding_l2",
    "precision",
)


@user_errors
def train(
    ctx: typer.Context,
    data: opt.Data = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint directory.")] = Path("ckpt"),
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
    arch: opt.Arch = "stacked",
    cross_type: opt.CrossType = "matrix",
    cross_layers: opt.CrossLayers = 1,
    projection_dim: opt.ProjectionDim = None,
    num_experts: opt.NumExperts = 4,
    diag_scale: opt.DiagScale = 0.0,
    deep_layers: opt.DeepLayers = settings.DEEP_LAYERS,
    dropout: opt.Dropout = settings.DROPOUT,
    embedding_l2: opt.EmbeddingL2 = settings.EMBEDDING_L2,
    embedding_dim: opt.EmbeddingDim = settings.EMBEDDING_DIM,
    precision: opt.Precision = "float32",
    epochs: opt.Epochs = settings.EPOCHS,
    batch_size: opt.Batch = settings.BATCH_SIZE,
    lr: opt.Lr = settings.LR,
    optimizer: opt.Optimizer = settings.OPTIMIZER,
    weight_decay: opt.WeightDecay = settings.WEIGHT_DECAY,
    seed: opt.Seed = 0,
    patience: opt.Patience = settings.PATIENCE,
    validation: opt.Validation = 0.0,
    resume: opt.Resume = False,
    force: opt.ForceRun = False,
    distribute: opt.Distribute = "auto",
    workers: opt.Workers = 1,
    config: opt.Config = None,
    json_out: opt.Json = False,
) -> None:
    """Train a model and write a checkpoint directory."""
    params = opt.with_config(ctx, config, resume)
    layers = settings.parse_sizes(params["deep_layers"], "--deep-layers")
    if resume and force:
        raise DcnError("--resume continues a run and --force replaces it; choose one")
    if workers != 1 and distribute not in ("auto", "multi-worker"):
        raise DcnError(f"--workers {workers} runs a cluster; --distribute {distribute} cannot")
    if not resume:
        settings.check_architecture(params["arch"], layers)
        opt.check_columns(params)
    from dcn_cli.commands import render

    if workers != 1:
        raise typer.Exit(_launch(workers))
    progress = None if json_out else render.TrainProgress()
    if resume:
        from dcn_cli.train.run import resume as resume_run

        given = {
            name: layers if name == "deep_layers" else value
            for name, value in ctx.params.items()
            if name not in ("out", "resume", "force", "json_out", "distribute", "workers", "config")
            and opt.from_command_line(ctx, name)
        }
        result = resume_run(out, given, progress=progress, warn=render.warn, distribute=distribute)
    else:
        from dcn_cli.train.run import train as run

        model = {name: params[name] for name in MODEL} | {"deep_layers": layers}
        spec = opt.data_spec(params)
        training = opt.train_settings(params)
        result = run(
            model, spec, training, out, force, progress, warn=render.warn, distribute=distribute
        )
    if result.metrics:  # a cluster's other workers print nothing
        render.stopped_early(result.history, result.metrics.get("epochs_run"), epochs)
        render.metrics(f"test metrics ({out})", result.metrics, json_out)


def _launch(workers: int) -> int:
    """``dcn train --workers N``: this same command line, as N local workers of one cluster."""
    from dcn_cli.train.launcher import launch, without_workers_option

    if "TF_CONFIG" in os.environ:
        typer.echo("Warning: --workers gives its workers their own TF_CONFIG", err=True)
    argv = sys.argv[1:]
    if "--workers" not in " ".join(argv).replace("=", " ").split():
        raise DcnError("--workers starts processes from the dcn command line only")
    return launch(workers, without_workers_option(argv))
