"""The ``dcn`` command line: a Typer app of thin commands.

Each command parses its options and calls a plain function elsewhere in the
package. Nothing here imports TensorFlow at module level, so ``dcn --help``
answers at once.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from dcn_cli import __version__, defaults, environment
from dcn_cli.errors import DcnError, from_pipeline

app = typer.Typer(
    name="dcn",
    help="Train and inspect Deep & Cross Network (DCN, DCN-V2) models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


OUT_OF_MEMORY = "out of memory; try less data, a smaller model or a smaller --batch-size"


def _user_errors(command):
    """Turn a :class:`DcnError` into one line on stderr and exit code 1.

    The environment variables dcn reads are checked first, as options are. A
    DcnError raised inside ``tf.data`` (a data file changed mid-run) comes out
    as itself, wherever in the run it happens. So do the errors of the machine
    rather than of dcn: a failed read or write (disk full, permission denied)
    and running out of memory.

    Ctrl-C ends with one line and exit code 130, not a traceback, and SIGTERM
    (what a scheduler or ``kill`` sends) the same way with 143; either way the
    command's own clean-up runs, files being written are left whole and a
    checkpoint keeps its last saved state.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        from_pipeline()  # nothing from an earlier command run in this process
        try:
            environment.check()
            return command(*args, **kwargs)
        except DcnError as err:
            typer.echo(f"Error: {err}", err=True)
            raise typer.Exit(1) from None
        except BrokenPipeError:  # the reader of our output left (``dcn predict ... | head``)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except OSError as err:  # disk full, permission denied, a path under a plain file
            where = f"{err.filename}: " if err.filename else ""
            typer.echo(f"Error: {where}{err.strerror or err}", err=True)
            raise typer.Exit(1) from None
        except MemoryError:
            typer.echo(f"Error: {OUT_OF_MEMORY}", err=True)
            raise typer.Exit(1) from None
        except Exception as err:
            inside = from_pipeline()  # what a reader raised inside tf.data, carried out by TF
            if inside is not None:
                typer.echo(f"Error: {inside}", err=True)
                raise typer.Exit(1) from None
            interrupt = _interrupt_inside(err)
            if interrupt is not None:  # Keras re-raised a Ctrl-C as its own error
                typer.echo("Interrupted.", err=True)
                raise typer.Exit(143 if isinstance(interrupt, _Terminated) else 130) from None
            if type(err).__name__ != "ResourceExhaustedError":  # TensorFlow's out of memory
                raise
            typer.echo(f"Error: {OUT_OF_MEMORY}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as err:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(143 if isinstance(err, _Terminated) else 130) from None

    return wrapper


def _interrupt_inside(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C (or SIGTERM) an exception was raised while handling, if any."""
    seen: set[int] = set()
    cause: BaseException | None = err
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that clean-up runs as for Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated()


def _choices(*values: str) -> dict:
    """An option's allowed values, shown in --help and offered by shell completion."""
    return {"metavar": "|".join(values), "autocompletion": lambda: list(values)}


def _from_command_line(ctx: typer.Context, name: str) -> bool:
    """Whether the user typed option ``name`` (rather than leaving its default)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name == "COMMANDLINE"


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


@app.command()
@_user_errors
def generate(
    kind: Annotated[str, typer.Argument(help="Dataset kind.", **_choices("mixer", "poly", "ctr"))],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Directory to write (replaced if it holds a dataset)."),
    ],
    rows: Annotated[int | None, typer.Option(help="Number of rows. Default 100000.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Random seed. Default 42 for mixer (the tutorial's), else 0.")
    ] = None,
    function: Annotated[
        str, typer.Option(help="poly: f1, f2 (DCN-V2 paper, Table 1), f3 (third order) or random.")
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
) -> None:
    """Write a synthetic dataset (mixer, poly, ctr) as CSV plus schema.json.

    ctr also writes each row's true click probability (truth-NNNNN.csv).
    """
    from dcn_cli import render
    from dcn_cli.generate import generate as run

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
    )
    rows_written = schema.source["rows"]
    typer.echo(f"wrote {rows_written:,} {kind} rows to {out} ({len(schema.files)} file(s))")


# Options shared by train and compare.
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset directory, CSV or Parquet file (with --label), MovieLens dir/zip, "
        "tfds:movielens/100k-ratings or Criteo TSV. Default: the built-in mixer toy.",
    ),
]
LabelOpt = Annotated[str | None, typer.Option(help="CSV, Parquet: name of the label column.")]
CategoricalOpt = Annotated[
    str | None,
    typer.Option(help="CSV, Parquet: comma-separated columns to treat as categorical."),
]
NumericalOpt = Annotated[
    str | None,
    typer.Option(help="CSV, Parquet: comma-separated columns to treat as numerical."),
]
TaskOpt = Annotated[
    str | None,
    typer.Option(
        help="regression or binary. Default: inferred from the label.",
        **_choices("regression", "binary"),
    ),
]
EpochsOpt = Annotated[int, typer.Option(help="Training epochs.")]
BatchOpt = Annotated[int, typer.Option(help="Rows per training step.")]
LrOpt = Annotated[float, typer.Option(help="Learning rate.")]
OptimizerOpt = Annotated[
    str, typer.Option(help="The optimizer.", **_choices("adam", "adamw", "adagrad", "sgd"))
]
WeightDecayOpt = Annotated[
    float, typer.Option(help="Decoupled weight decay (every optimizer). 0 turns it off.")
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        help="float32, or mixed_bfloat16: embeddings, cross and deep layers compute in "
        "bfloat16 (weights stay float32); faster on CPUs with bfloat16 units, less exact.",
        **_choices("float32", "mixed_bfloat16"),
    ),
]
HashOpt = Annotated[
    str | None,
    typer.Option("--hash-buckets", help="Hash these features, e.g. zip=1000,C1=50000."),
]


@app.command()
@_user_errors
def train(
    ctx: typer.Context,
    data: DataOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint directory.")] = Path("ckpt"),
    label: LabelOpt = None,
    categorical: CategoricalOpt = None,
    numerical: NumericalOpt = None,
    task: TaskOpt = None,
    hash_buckets: HashOpt = None,
    arch: Annotated[
        str,
        typer.Option(
            help="Deep layers on top of the cross network (stacked), beside it (parallel), "
            "or either alone.",
            **_choices("stacked", "parallel", "cross", "deep"),
        ),
    ] = "stacked",
    cross_type: Annotated[
        str,
        typer.Option(
            help="matrix (DCN-V2), vector (DCN-V1) or mix (DCN-Mix).",
            **_choices("matrix", "vector", "mix"),
        ),
    ] = "matrix",
    cross_layers: Annotated[int, typer.Option(help="Number of cross layers.")] = 1,
    projection_dim: Annotated[
        int | None, typer.Option(help="Rank of each cross matrix. Default: full rank.")
    ] = None,
    num_experts: Annotated[int, typer.Option(help="mix: number of low-rank experts.")] = 4,
    diag_scale: Annotated[float, typer.Option(help="matrix: add s*x_l inside the product.")] = 0.0,
    deep_layers: Annotated[
        str, typer.Option(help="Deep network sizes, e.g. 192,192.")
    ] = defaults.DEEP_LAYERS,
    dropout: Annotated[
        float, typer.Option(help="Dropout after each deep layer.")
    ] = defaults.DROPOUT,
    embedding_l2: Annotated[
        float, typer.Option(help="L2 penalty on the embedding tables, added to the loss.")
    ] = defaults.EMBEDDING_L2,
    embedding_dim: Annotated[
        int, typer.Option(help="Embedding width of categorical features.")
    ] = defaults.EMBEDDING_DIM,
    precision: PrecisionOpt = "float32",
    epochs: EpochsOpt = defaults.EPOCHS,
    batch_size: BatchOpt = defaults.BATCH_SIZE,
    lr: LrOpt = defaults.LR,
    optimizer: OptimizerOpt = defaults.OPTIMIZER,
    weight_decay: WeightDecayOpt = defaults.WEIGHT_DECAY,
    seed: Annotated[int, typer.Option(help="Seed for weights and shuffling.")] = 0,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many epochs without validation improvement; "
            "keeps the best weights. Holds out 10% of train unless --validation."
        ),
    ] = None,
    validation: Annotated[float, typer.Option(help="Fraction of train held out.")] = 0.0,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out with its saved settings (--epochs N to train longer).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace the run --out holds (its files are deleted)."),
    ] = False,
    distribute: Annotated[
        str,
        typer.Option(
            help="auto: the cluster TF_CONFIG names, else every local GPU, else one device; "
            "off: one device; mirrored: every local GPU (or CPU device); multi-worker: "
            "the TF_CONFIG cluster.",
            **_choices("auto", "off", "mirrored", "multi-worker"),
        ),
    ] = "auto",
    workers: Annotated[
        int,
        typer.Option(
            help="Start N worker processes on this machine as one cluster (--batch-size stays "
            "the global batch); worker 0 writes --out."
        ),
    ] = 1,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Train a model and write a checkpoint directory."""
    from dcn_cli import render
    from dcn_cli.config import parse_int_list
    from dcn_cli.data import DataSpec
    from dcn_cli.training import TrainSettings
    from dcn_cli.training import resume as resume_run
    from dcn_cli.training import train as run

    if workers != 1:
        raise typer.Exit(_launch(workers, distribute))
    progress = None if json_out else render.TrainProgress()
    if resume:
        if force:
            raise DcnError("--resume continues a run and --force replaces it; choose one")
        given = {
            name: parse_int_list(value, "--deep-layers") if name == "deep_layers" else value
            for name, value in ctx.params.items()
            if name not in ("out", "resume", "force", "json_out", "distribute", "workers")
            and _from_command_line(ctx, name)
        }
        result = resume_run(out, given, progress=progress, warn=render.warn, distribute=distribute)
        if result.metrics:  # a cluster's other workers print nothing
            render.metrics(f"test metrics ({out})", result.metrics, json_out)
        return
    model = dict(
        arch=arch,
        cross_type=cross_type,
        cross_layers=cross_layers,
        projection_dim=projection_dim,
        num_experts=num_experts,
        diag_scale=diag_scale,
        deep_layers=parse_int_list(deep_layers, "--deep-layers"),
        dropout=dropout,
        embedding_dim=embedding_dim,
        embedding_l2=embedding_l2,
        precision=precision,
    )
    spec = DataSpec(data, label, categorical, numerical, task, hash_buckets, validation)
    settings = TrainSettings(epochs, batch_size, lr, optimizer, seed, patience, weight_decay)
    result = run(
        model,
        spec,
        settings,
        out=out,
        force=force,
        progress=progress,
        warn=render.warn,
        distribute=distribute,
    )
    if result.metrics:  # a cluster's other workers print nothing
        render.metrics(f"test metrics ({out})", result.metrics, json_out)


def _launch(workers: int, distribute: str) -> int:
    """``dcn train --workers N``: this same command line, as N local workers of one cluster."""
    from dcn_cli.distribute import launch, without_workers_option

    if distribute not in ("auto", "multi-worker"):
        raise DcnError(f"--workers {workers} runs a cluster; --distribute {distribute} cannot")
    if "TF_CONFIG" in os.environ:
        typer.echo("Warning: --workers gives its workers their own TF_CONFIG", err=True)
    argv = sys.argv[1:]
    if "--workers" not in " ".join(argv).replace("=", " ").split():
        raise DcnError("--workers starts processes from the dcn command line only")
    return launch(workers, without_workers_option(argv))


@app.command()
@_user_errors
def evaluate(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint directory written by dcn train.")],
    data: Annotated[
        str | None,
        typer.Option(
            help="Other data with the same features. Default: the checkpoint's own test split."
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print metrics as JSON.")] = False,
) -> None:
    """Report a checkpoint's metrics on its test split or on other data."""
    from dcn_cli import render
    from dcn_cli.training import evaluate as run

    render.metrics(f"metrics ({ckpt})", run(ckpt, data), json_out)


@app.command()
@_user_errors
def compare(
    models: Annotated[
        list[str],
        typer.Argument(
            help="Presets (dcn, dcn-lr, dnn, cross, dcn-parallel, dcn-v1, dcn-mix) or JSON "
            "config paths. The first is the baseline of the p-values."
        ),
    ],
    runs: Annotated[int, typer.Option(help="Runs per model, with seeds 0..N-1.")] = 5,
    data: DataOpt = None,
    label: LabelOpt = None,
    categorical: CategoricalOpt = None,
    numerical: NumericalOpt = None,
    task: TaskOpt = None,
    hash_buckets: HashOpt = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for comparison.json/.csv/.png.")
    ] = Path("comparison"),
    epochs: EpochsOpt = defaults.EPOCHS,
    batch_size: BatchOpt = defaults.BATCH_SIZE,
    lr: LrOpt = defaults.LR,
    optimizer: OptimizerOpt = defaults.OPTIMIZER,
    weight_decay: WeightDecayOpt = defaults.WEIGHT_DECAY,
    embedding_dim: Annotated[
        int | None, typer.Option(help="Embedding width for every model. Default: 32.")
    ] = None,
    embedding_l2: Annotated[
        float, typer.Option(help="L2 penalty on the embedding tables, for every model.")
    ] = defaults.EMBEDDING_L2,
    dropout: Annotated[
        float, typer.Option(help="Dropout after each deep layer, for every model.")
    ] = defaults.DROPOUT,
    precision: PrecisionOpt = "float32",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Write into --out even if it holds files (a comparison's are replaced)."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Train several models over several seeds and compare them."""
    from dcn_cli import render
    from dcn_cli.compare import claim_output, write_outputs
    from dcn_cli.compare import compare as run
    from dcn_cli.data import DataSpec
    from dcn_cli.training import TrainSettings

    if runs <= 0:
        raise DcnError(f"--runs must be at least 1, got {runs}")
    claim_output(out, force)
    spec = DataSpec(data, label, categorical, numerical, task, hash_buckets)
    settings = TrainSettings(
        epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay
    )
    progress = None if json_out else render.CompareProgress(runs * len(models))
    try:
        result = run(
            models,
            runs,
            spec,
            settings,
            embedding_dim=embedding_dim,
            embedding_l2=embedding_l2,
            dropout=dropout,
            precision=precision,
            progress=progress,
        )
    finally:
        if progress is not None:
            progress.stop()
    files = write_outputs(result, out)
    render.comparison(result, json_out, files)


@app.command()
@_user_errors
def explain(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint directory written by dcn train.")],
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
    from dcn_cli import render
    from dcn_cli.explain import explain as run

    result = run(ckpt, block_norm=block_norm, layer=layer, top=top, out=out, force=force)
    render.crosses(result, json_out)


@app.command()
@_user_errors
def predict(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint directory written by dcn train.")],
    data: Annotated[
        str,
        typer.Option(
            help="Rows to score, in any form --data of train takes; a CSV, Parquet or Criteo "
            "file may lack the label."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write: .parquet (or .pq) for Parquet, .gz for gzip CSV, else CSV. "
            "Default: CSV on standard output.",
        ),
    ] = None,
    ids: Annotated[
        str | None, typer.Option("--id", help="Comma-separated columns to copy to each output row.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace --out if it exists.")] = False,
) -> None:
    """Score rows with a checkpoint: one prediction per input row, in input order."""
    from dcn_cli import render
    from dcn_cli.delimited import parse_names
    from dcn_cli.predict import predict as run

    result = run(ckpt, data, out, parse_names(ids), progress=render.Ticker("scored"), force=force)
    if result.out is not None:
        typer.echo(f"wrote {result.rows:,} predictions to {result.out}", err=True)


@app.command()
@_user_errors
def export(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint directory written by dcn train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="SavedModel directory to write.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace --out if it holds files.")
    ] = False,
) -> None:
    """Write a TensorFlow SavedModel that serves raw feature values (TF Serving)."""
    from dcn_cli.export import export as run

    result = run(ckpt, out, force=force)
    typer.echo(f"wrote {result.out}; its serving_default signature takes, per row:")
    for feature, name in result.inputs.items():
        renamed = f"  (column {feature!r})" if name != feature else ""
        typer.echo(f"  {name}: {result.dtypes[feature]}{renamed}")
    typer.echo("and returns prediction, of shape (rows, 1)")
