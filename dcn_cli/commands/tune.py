"""``dcn tune``: search the settings that fit a dataset best."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dcn_cli import settings
from dcn_cli.commands import options as opt
from dcn_cli.commands.app import user_errors
from dcn_cli.errors import DcnError


@user_errors
def tune(
    ctx: typer.Context,
    data: opt.Data = None,
    trials: opt.Trials = 20,
    timeout: opt.Timeout = None,
    space: opt.Space = None,
    out: opt.TuneOut = Path("tune"),
    storage: opt.Storage = None,
    jobs: opt.Jobs = 1,
    metric: opt.Metric = None,
    group: opt.Group = None,
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
    validation: opt.TuneValidation = 0.0,
    arch: opt.PinArch = None,
    cross_type: opt.PinCrossType = None,
    cross_layers: opt.PinInt = None,
    projection_dim: opt.PinInt = None,
    num_experts: opt.PinInt = None,
    diag_scale: opt.PinNumber = None,
    deep_layers: opt.PinSizes = None,
    dropout: opt.PinNumber = None,
    embedding_dim: opt.PinInt = None,
    embedding_l2: opt.PinNumber = None,
    lr: opt.PinNumber = None,
    batch_size: opt.PinInt = None,
    optimizer: opt.PinOptimizer = None,
    weight_decay: opt.PinNumber = None,
    epochs: Annotated[int, typer.Option(help="Most epochs per trial.")] = settings.EPOCHS,
    patience: opt.Patience = settings.PATIENCE,
    seed: Annotated[int, typer.Option(help="Seed of the search and of every trial's model.")] = 0,
    json_out: opt.Json = False,
) -> None:
    """Search the settings that fit the data best (Optuna), then train the best model.

    A model or training flag (--arch, --lr, ...) pins that setting.

    Trials are scored on a validation split held out of train; the test split
    is used once, by the best settings' checkpoint OUT/best. Run the same
    command again to continue the study (after Ctrl-C, a kill or a crash).
    """
    search = _search(ctx, space)
    from dcn_cli.commands import render
    from dcn_cli.train.study import train_best, write_best, write_outputs
    from dcn_cli.train.tune import tune as run

    progress = None if json_out else render.TuneProgress(trials)
    try:
        study, search = run(
            search, on_trial=progress.trial_done if progress else None, warn=render.warn
        )
    finally:
        if progress is not None:
            progress.stop()
    files = write_outputs(search, study, search.metric)
    test = train_best(search, study, None if json_out else render.TrainProgress(), render.warn)
    files += write_best(search, study)  # after best/: a stop while training it keeps both old
    render.tuned(search, study, test, files, json_out)


def _search(ctx: typer.Context, space: Path | None):
    """The search the options ask for, its space read and checked before any data is."""
    from dcn_cli.train.metrics import check_group

    params = ctx.params
    check_group(params["metric"], params["group"])
    if params["group"] is not None and params["metric"] != "gauc":
        raise DcnError(
            f"--group {params['group']} is for --metric gauc; tune by it or leave it out"
        )
    if params["metric"] == "calibration":
        raise DcnError("--metric calibration has no better direction; tune by auc, ne or logloss")
    opt.check_columns(params)
    from dcn_cli.train.space import DEFAULT_SPACE, PARAMS, parse_space, read_space
    from dcn_cli.train.tune import Search

    raw = read_space(space) if space is not None else DEFAULT_SPACE
    pinned = {name: params[name] for name in PARAMS if params[name] is not None}
    searched, fixed = parse_space(raw, pinned, str(space or "the default space"))
    names = ("trials", "out", "storage", "metric", "group", "seed", "epochs", "patience")
    return Search(
        data=opt.data_spec(params),
        params=searched,
        fixed=fixed,
        timeout=params["timeout"],
        jobs=min(params["jobs"], params["trials"]),  # no more workers than trials
        **{name: params[name] for name in names},
    )
