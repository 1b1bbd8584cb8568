"""The options the commands share, each with its help text, default and choices.

Choices come from :data:`dcn_cli.settings.SETTINGS`, the one table that also
checks every value (:func:`dcn_cli.commands.app.user_errors` runs it before a
command does any work), so ``--help``, shell completion and the checks agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from dcn_cli import settings
from dcn_cli.errors import DcnError


def choices(name: str) -> dict:
    """Setting ``name``'s allowed values, shown in --help and offered by shell completion."""
    values = settings.SETTINGS[name].choices
    return {"metavar": "|".join(values), "autocompletion": lambda: list(values)}


COLUMN_OPTIONS = ("label", "categorical", "numerical", "ignore", "weight", "lists")


def check_columns(params: dict[str, Any]) -> None:
    """--label, --categorical, --numerical and --ignore name columns of the file --data
    names; the built-in mixer, used without --data, has columns of its own."""
    data = params.get("data")
    given = [name for name in COLUMN_OPTIONS if params.get(name) is not None]
    if data is None and given:
        raise DcnError(
            f"--{given[0]} names a column of --data, and no --data is given "
            "(without it dcn trains on its built-in mixer)"
        )


def _from_params(cls, params: dict[str, Any]):
    """A settings dataclass from a command's options: those named like its fields."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{name: value for name, value in params.items() if name in names})


def data_spec(params: dict[str, Any]):
    """The DataSpec of a command's options."""
    from dcn_cli.data.sources import DataSpec

    return _from_params(DataSpec, params)


def train_settings(params: dict[str, Any]):
    """The TrainSettings of a command's options."""
    from dcn_cli.train.run import TrainSettings

    return _from_params(TrainSettings, params)


def with_config(ctx: typer.Context, config: str | None, resume: bool = False) -> dict[str, Any]:
    """The command's options, with those the user did not type taken from ``config`` (a
    model file or preset, checked as ``dcn compare`` checks it)."""
    params = dict(ctx.params)
    if config is None:
        return params
    if resume:
        raise DcnError("--resume takes every setting from the saved run; drop --config")
    from dcn_cli.model.presets import resolve_model

    for name, value in resolve_model(config)[1].items():
        if not from_command_line(ctx, name):
            params[name] = value
    return params


def from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (rather than leaving its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


Ckpt = Annotated[Path, typer.Argument(help="Checkpoint directory written by dcn train.")]
Json = Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")]

# The data: train, compare.
Data = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset directory, CSV or Parquet file (with --label), MovieLens dir/zip, "
        "tfds:movielens/100k-ratings or Criteo TSV. Default: the built-in mixer toy.",
    ),
]
Label = Annotated[str | None, typer.Option(help="CSV, Parquet: name of the label column.")]
Categorical = Annotated[
    str | None,
    typer.Option(help="CSV, Parquet: comma-separated columns to treat as categorical."),
]
Numerical = Annotated[
    str | None,
    typer.Option(help="CSV, Parquet: comma-separated columns to treat as numerical."),
]
Task = Annotated[
    str | None,
    typer.Option(help="regression or binary. Default: inferred from the label.", **choices("task")),
]
HashBuckets = Annotated[
    str | None,
    typer.Option("--hash-buckets", help="Hash these features, e.g. zip=1000,C1=50000."),
]

# The model: train (compare takes a few, for every model).
Arch = Annotated[
    str,
    typer.Option(
        help="Deep layers on top of the cross network (stacked), beside it (parallel), "
        "or either alone.",
        **choices("arch"),
    ),
]
CrossType = Annotated[
    str,
    typer.Option(
        help="matrix (DCN-V2), vector (DCN-V1) or mix (DCN-Mix).", **choices("cross_type")
    ),
]
CrossLayers = Annotated[int, typer.Option(help="Number of cross layers.")]
ProjectionDim = Annotated[
    int | None, typer.Option(help="Rank of each cross matrix. Default: full rank.")
]
NumExperts = Annotated[int, typer.Option(help="mix: number of low-rank experts.")]
DiagScale = Annotated[float, typer.Option(help="matrix: add s*x_l inside the product.")]
DeepLayers = Annotated[str, typer.Option(help="Deep network sizes, e.g. 192,192.")]
Dropout = Annotated[float, typer.Option(help="Dropout after each deep layer.")]
EmbeddingL2 = Annotated[
    float, typer.Option(help="L2 penalty on the embedding tables, added to the loss.")
]
EmbeddingDim = Annotated[int, typer.Option(help="Embedding width of categorical features.")]
Precision = Annotated[
    str,
    typer.Option(
        help="float32, or mixed_bfloat16: embeddings, cross and deep layers compute in "
        "bfloat16 (weights stay float32); faster on CPUs with bfloat16 units, less exact.",
        **choices("precision"),
    ),
]

# Training: train, compare.
Epochs = Annotated[int, typer.Option(help="Training epochs.")]
Batch = Annotated[int, typer.Option(help="Rows per training step.")]
Lr = Annotated[float, typer.Option(help="Learning rate.")]
Optimizer = Annotated[str, typer.Option(help="The optimizer.", **choices("optimizer"))]
WeightDecay = Annotated[
    float, typer.Option(help="Decoupled weight decay (every optimizer). 0 turns it off.")
]
Seed = Annotated[int, typer.Option(help="Seed for weights and shuffling.")]
Patience = Annotated[
    int,
    typer.Option(
        help="Stop after this many epochs without validation improvement and keep the best "
        "weights; 0 trains every epoch. Holds out 10% of train unless --validation."
    ),
]
Ignore = Annotated[
    str | None,
    typer.Option(help="Comma-separated columns that are never features (ids, leaks)."),
]
Weight = Annotated[
    str | None,
    typer.Option(help="Column of row weights (>= 0) for the loss and every metric; not a feature."),
]
Lists = Annotated[
    str | None,
    typer.Option(
        "--list",
        help="List-valued columns, each cell's elements joined by SEP: NAME[=SEP],... "
        "(default SEP |), e.g. genres or tags=;. Parquet list columns need no flag.",
    ),
]
Pooling = Annotated[
    str, typer.Option(help="How a list's element embeddings pool.", **choices("pooling"))
]
MinCount = Annotated[
    int,
    typer.Option(
        help="Categories seen in fewer training rows share one out-of-vocabulary embedding."
    ),
]
Validation = Annotated[
    float,
    typer.Option(
        help="Fraction of train held out for validation. 0: 10% while --patience is on, else none."
    ),
]
Distribute = Annotated[
    str,
    typer.Option(
        help="auto: the cluster TF_CONFIG names, else every local GPU, else one device; "
        "off: one device; mirrored: every local GPU (or CPU device); multi-worker: "
        "the TF_CONFIG cluster.",
        **choices("distribute"),
    ),
]
Workers = Annotated[
    int,
    typer.Option(
        help="Start N worker processes on this machine as one cluster (--batch-size stays "
        "the global batch); worker 0 writes --out."
    ),
]

# train only
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue the run in --out with its saved settings (--epochs N to train longer).",
    ),
]
ForceRun = Annotated[
    bool, typer.Option("--force", help="Replace the run --out holds (its files are deleted).")
]

# compare only: settings shared by every model compared
EveryEmbeddingDim = Annotated[
    int | None, typer.Option(help="Embedding width for every model. Default: 32.")
]
EveryEmbeddingL2 = Annotated[
    float, typer.Option(help="L2 penalty on the embedding tables, for every model.")
]
EveryDropout = Annotated[
    float, typer.Option(help="Dropout after each deep layer, for every model.")
]

# compare and tune: what models are ranked by
Metric = Annotated[
    str | None,
    typer.Option(
        help="The test metric to compare (tune: the validation metric to optimise). Default: "
        "auc (binary), rmse (regression). ne: log loss over the base rate's entropy; "
        "calibration: mean prediction over mean label; gauc: needs --group.",
        **choices("metric"),
    ),
]
Group = Annotated[
    str | None,
    typer.Option(help="A column that groups rows (a user id), for --metric gauc."),
]
Config = Annotated[
    str | None,
    typer.Option(
        help="A model file (dcn tune's best.json, a JSON of settings) or a preset name: "
        "its settings, where no flag gives them."
    ),
]

# tune only
Trials = Annotated[
    int, typer.Option(help="Trials to finish (complete or pruned), this run and before.")
]
Timeout = Annotated[
    float | None, typer.Option(help="Stop starting trials after this many seconds.")
]
Space = Annotated[
    Path | None,
    typer.Option(
        help="JSON or TOML file: each setting's range ({low, high[, log]}), choices "
        "({choices: [...]}) or one value. Default: lr, batch size, optimizer, embedding "
        "width, cross layers, rank, deep layers, dropout, embedding L2."
    ),
]
TuneOut = Annotated[
    Path,
    typer.Option("--out", "-o", help="Directory of the study (study.db), trials and best model."),
]
Storage = Annotated[
    str | None,
    typer.Option(
        help="A shared study database (postgresql://..., mysql://...) instead of "
        "OUT/study.db: several machines then work on one study."
    ),
]
Jobs = Annotated[
    int,
    typer.Option(
        help="Trials run at once on this machine, a process each. The default, 1, is "
        "reproducible trial by trial; more finish more trials per hour (docs/tuning.md)."
    ),
]
TuneValidation = Annotated[
    float,
    typer.Option(
        help="Share of train held out to score trials; 0 (the default) holds out 0.1.",
        show_default=False,
    ),
]

# tune: a model or training flag, unset unless given; given, it pins the setting
PinArch = Annotated[str | None, typer.Option(help="Pin the architecture.", **choices("arch"))]
PinCrossType = Annotated[
    str | None, typer.Option(help="Pin the cross type.", **choices("cross_type"))
]
PinInt = Annotated[int | None, typer.Option(help="Pin this setting.")]
PinNumber = Annotated[float | None, typer.Option(help="Pin this setting.")]
PinSizes = Annotated[str | None, typer.Option(help="Pin the deep layers, e.g. 192,192.")]
PinOptimizer = Annotated[
    str | None, typer.Option(help="Pin the optimizer.", **choices("optimizer"))
]
