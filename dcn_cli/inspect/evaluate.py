"""``dcn evaluate``: a checkpoint's metrics on its own test split or on other data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dcn_cli import backend
from dcn_cli.data.sources import DataSpec, check_features, scoring_table
from dcn_cli.data.splits import split_by_file
from dcn_cli.data.table import Table
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path
from dcn_cli.model import checkpoint
from dcn_cli.model.config import ModelConfig
from dcn_cli.train.metrics import check_metric, measure, reliability


def evaluate(
    ckpt: str | Path,
    data: str | None = None,
    group: str | None = None,
    plot: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Metrics of a checkpoint on its own test split, or on every row of other data.

    ``group`` names a column whose values group the rows (a user id): the
    group AUC (:mod:`dcn_cli.train.metrics`) comes with the other metrics.
    ``plot`` is a PNG file for a binary model's reliability diagram (an existing
    file is replaced only with ``force``).

    The rows are encoded with the checkpoint's own vocabularies and statistics:
    nothing is learnt from the data again, and they stream through in flat
    memory. When the data knows each row's true probability (``dcn generate
    ctr``), the test split's Bayes-optimal AUC and log loss come with the
    model's own.
    """
    record = checkpoint.load_record(ckpt)  # a wrong path fails before TensorFlow loads
    config = checkpoint.model_config(record, ckpt)
    if group is not None:
        check_metric("gauc", config.task, group, "--group")
    if plot is not None:
        if Path(plot).suffix.lower() != ".png":
            raise DcnError(f"{plot}: --plot draws a PNG; give it a name ending in .png")
        if config.task != "binary":
            raise DcnError(f"--plot draws a binary model's calibration; {ckpt} is {config.task}")
        if Path(plot).exists() and not force:
            raise DcnError(f"{plot}: exists; replace it with --force, or choose another --plot")
    backend.load()  # quietly, before anything imports TensorFlow

    from dcn_cli.model.factory import split_model
    from dcn_cli.train.engine import EVAL_BATCH, scorer
    from dcn_cli.train.metrics import summary
    from dcn_cli.train.pipeline import Encoder, by_file, scored

    label, weight = checkpoint.label(record, ckpt), checkpoint.weight(record, ckpt)
    saved = DataSpec.from_record(record, ckpt if data is None else None)
    model = checkpoint.load_model(ckpt, config)
    _, core = split_model(model, config)
    if data is None:
        table = saved.open()
        check_own_data(config, table, saved.data or "the built-in mixer")
        groups = split_by_file(table, "test", saved.validation)
    else:
        # The columns take the roles and types the checkpoint's features have.
        filled = checkpoint.filled(record, ckpt)
        keep = [group] if group is not None else None
        table = scoring_table(data, config.features, config.task, label, keep, True, weight, filled)
        groups = by_file(table)
    label = next((c.name for c in table.schema.columns if c.role == "label"), label)
    weight = table.schema.weight
    rows = scored(groups, Encoder(config.features), scorer(core), EVAL_BATCH)
    results, kept = measure(
        config.task, rows, label, weight, group, table.name, keep=plot is not None
    )
    if results["rows"] == 0:
        raise DcnError(f"{table.name}: no data rows")
    metrics = {**summary(results, config.task), "rows": results["rows"]}
    if data is None and table.schema.truth:
        from dcn_cli.data.truth import bayes_optimal

        metrics.update(bayes_optimal(table, saved.validation))
    if plot is not None:
        from dcn_cli.plots import reliability_diagram

        bins = reliability(kept["label"], kept["prediction"], kept["weight"])
        with atomic_path(Path(plot)) as tmp:
            reliability_diagram(bins, metrics, f"{ckpt} on {table.name}", tmp)
    return metrics


def check_own_data(config: ModelConfig, table: Table, where: str) -> None:
    """The checkpoint's own data still holds its features, and nothing more."""
    wanted = {f.name for f in config.features}
    extra = [c.name for c in table.schema.features if c.name not in wanted]
    check_features(table.schema.features, config.features, where, ", ".join(extra))
    if table.schema.task != config.task:
        raise DcnError(f"{where}: task is {table.schema.task}, the checkpoint's is {config.task}")
