"""``dcn compare``: train several models over several seeds on one data split.

Each model trains ``runs`` times with seeds ``0..runs-1`` on the same prepared
data (the split and vocabularies are made once). The result holds, per model,
the test metric of every run, its mean and standard deviation, the trainable
parameter count, the seconds per run and Welch's t-test p-value against the
first model listed.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli import backend
from dcn_cli.data.sources import DataSpec
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path, write_json, write_text
from dcn_cli.model.config import ModelConfig
from dcn_cli.model.presets import MODEL_KEYS, TRAINING_KEYS, resolve_model
from dcn_cli.settings import check
from dcn_cli.train.metrics import check_metric
from dcn_cli.train.run import TrainSettings, make_optimizer, prepare_to_train

STEPS_PER_CALL = 200  # at least this many steps per call of the step function


def welch_p_value(a: list[float], b: list[float]) -> float | None:
    """Two-sided p-value of Welch's t-test; ``None`` when it is undefined."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    if va + vb == 0:
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    t = (np.mean(a) - np.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    import tensorflow as tf

    # P(|T| > |t|) for Student's t with df degrees: I_{df/(df+t^2)}(df/2, 1/2).
    x = df / (df + t * t)
    return float(
        tf.math.betainc(
            tf.constant(df / 2, tf.float64),
            tf.constant(0.5, tf.float64),
            tf.constant(x, tf.float64),
        )
    )


def compare(
    models: list[str],
    runs: int,
    data: DataSpec,
    settings: TrainSettings,
    embedding_dim: int | None = None,
    embedding_l2: float | None = None,
    dropout: float | None = None,
    precision: str | None = None,
    progress=None,
    warn=None,
    metric: str | None = None,
    group: str | None = None,
    after_run=None,
) -> dict[str, Any]:
    """Train every model ``runs`` times; return the comparison as a JSON-able dict.

    ``progress`` (the CLI's is :class:`dcn_cli.commands.render.CompareProgress`) is an
    engine hook that also hears ``starting(name, seed)`` before each run and
    ``run_done(name, seed, metric, value, seconds)`` after it. ``warn`` takes the
    warnings about the data's columns (a callable of one string). ``metric``
    (default AUC, or RMSE for regression) is any of
    :data:`dcn_cli.train.metrics.CHOICES`; ``gauc`` groups the rows by the column ``group``.
    ``after_run(name, seed, model, config, prepared)``, if given, sees each trained run
    (``dcn compare --explain`` reads its crosses).
    A model file may set its own training settings (``lr``, ``batch_size``, ...: a
    ``dcn tune`` result does), which then replace the shared ones for that model.
    """
    check("runs", runs, "--runs")
    if not models:
        raise DcnError("name at least one model to compare")
    settings.validate()
    resolved = [resolve_model(spec) for spec in models]
    _, prepared, settings = prepare_to_train(data, data.open(), settings, warn)
    metric = metric or ("auc" if prepared.task == "binary" else "rmse")
    check_metric(metric, prepared.task, group)
    backend.load()
    from dcn_cli.model.factory import count_trainable_params

    results: list[dict[str, Any]] = []
    for name, own in resolved:
        # Shared settings apply to every model, unless its own JSON config sets them.
        shared = dict(embedding_dim=embedding_dim, embedding_l2=embedding_l2, precision=precision)
        shared["dropout"] = dropout if own.get("arch") != "cross" else None
        own = {k: v for k, v in shared.items() if v is not None} | own
        own_training = {k: own.pop(k) for k in TRAINING_KEYS if k in own}
        config = ModelConfig(features=prepared.features, task=prepared.task, **own)
        trained = dataclasses.replace(settings, **own_training)
        model, scores, seconds = _runs(
            name, config, prepared, trained, runs, (metric, group), (progress, after_run)
        )
        results.append(
            {
                "name": name,
                "config": {k: v for k, v in config.to_dict().items() if k in MODEL_KEYS},
                **({"training": own_training} if own_training else {}),
                "mean": float(np.mean(scores)),
                "std": float(np.std(scores)),
                "runs": scores,
                "params": count_trainable_params(model),
                "seconds_per_run": float(np.mean(seconds)),
            }
        )
    first = results[0]["runs"]
    for result in results:
        result["p_value"] = None if result is results[0] else welch_p_value(first, result["runs"])
    return {
        "metric": metric,
        **({"group": group} if group else {}),
        "data": prepared.table.name,
        "rows": prepared.rows,
        "training": _shared_training(settings, runs, precision),
        "models": results,
    }


def _shared_training(settings: TrainSettings, runs: int, precision: str | None) -> dict:
    """The training settings every run shares, as comparison.json records them."""
    return {
        "weight_decay": settings.weight_decay,
        "epochs": settings.epochs,
        "batch_size": settings.batch_size,
        "lr": settings.lr,
        "optimizer": settings.optimizer,
        "patience": settings.patience or 0,
        "runs": runs,
        "precision": precision or "float32",
    }


def _runs(
    name: str,
    config: ModelConfig,
    prepared,
    settings: TrainSettings,
    runs: int,
    measured: tuple[str, str | None],
    hooks: tuple,
):
    """Train one model with seeds 0..runs-1: the model, each run's test metric and seconds."""
    keras = backend.load()
    from dcn_cli.model.factory import build_model
    from dcn_cli.train.engine import Engine, compile_model
    from dcn_cli.train.hooks import EarlyStopping

    progress, after_run = hooks
    scores, seconds = [], []
    keras.utils.set_random_seed(0)
    model = build_model(config)
    optimizer = make_optimizer(settings)
    compile_model(model, config.task, optimizer)
    engine = Engine(model, config, prepared, settings.batch_size)
    initial_optimizer = [v.numpy() for v in optimizer.variables]
    for seed in range(runs):
        if seed:
            # Reuse the first run's engine, whose training step is already traced:
            # take this seed's initial weights and a new optimizer state. The run
            # is the same as with a freshly built model, minus seconds of tracing.
            keras.utils.set_random_seed(seed)
            fresh = build_model(config)
            for target, source in zip(model.variables, fresh.variables, strict=True):
                target.assign(source)
            for variable, value in zip(optimizer.variables, initial_optimizer, strict=True):
                variable.assign(value)
        if progress is not None:
            progress.starting(name, seed)
        start = time.perf_counter()
        try:
            stopping = [EarlyStopping(settings.patience)] if settings.patience else []
            engine.fit(
                settings.epochs,
                seed,
                hooks=stopping + ([progress] if progress is not None else []),
                validate=bool(settings.patience),
                calls_per_epoch=_calls_per_epoch(engine.steps_per_epoch()),
            )
        except DcnError as err:
            raise DcnError(f"{name} seed {seed}: {err}") from None
        seconds.append(time.perf_counter() - start)
        metric, group = measured
        results = engine.measure("test", group) if group else engine.evaluate("test")
        if metric not in results:
            raise DcnError(
                f"{name} seed {seed}: the test split holds one label only, so {metric} is undefined"
            )
        value = results[metric]
        if not math.isfinite(value):
            raise DcnError(
                f"{name} seed {seed}: training diverged (test {metric} is {value}); "
                "try a lower --lr"
            )
        scores.append(float(value))
        if after_run is not None:
            after_run(name, seed, model, config, prepared)
        if progress is not None:
            progress.run_done(name, seed, metric, float(value), seconds[-1])
    return model, scores, seconds


def _calls_per_epoch(steps: int) -> int:
    """Calls of the traced step function per epoch: one for short epochs (each call
    costs time), more for long ones, so that progress can be shown inside them."""
    return max(1, min(20, steps // STEPS_PER_CALL))


OUTPUTS = ("comparison.json", "comparison.csv", "comparison.png")


def claim_output(out: str | Path, force: bool) -> None:
    """Check, before any training, that the comparison may be written to ``out``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DcnError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise DcnError(
            f"{out}: is not empty; replace its comparison with --force, or choose another --out"
        )


def write_outputs(result: dict[str, Any], out: str | Path) -> list[Path]:
    """comparison.json, comparison.csv and comparison.png in ``out``, each written whole."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DcnError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    explained = result.get("explain", [])
    figures = explain_figures([entry["model"] for entry in explained])
    for entry, figure in zip(explained, figures, strict=True):
        entry["figure"] = str(out / figure)
    for old in out.glob("explain-*.png"):  # an earlier comparison's
        if old.name not in figures:
            old.unlink()
    write_json(out / "comparison.json", result)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    metric = result["metric"]
    writer.writerow(
        ["model", f"{metric}_mean", f"{metric}_std", "params", "seconds_per_run", "p_value", "runs"]
    )
    for m in result["models"]:
        writer.writerow(
            [
                m["name"],
                m["mean"],
                m["std"],
                m["params"],
                m["seconds_per_run"],
                "" if m["p_value"] is None else m["p_value"],
                " ".join(f"{v:.6f}" for v in m["runs"]),
            ]
        )
    write_text(out / "comparison.csv", text.getvalue())
    from dcn_cli.plots import bar_chart, run_crosses

    with atomic_path(out / "comparison.png") as tmp:
        bar_chart(result, tmp)
    files = [out / name for name in OUTPUTS]
    for entry, figure in zip(explained, figures, strict=True):
        with atomic_path(out / figure) as tmp:
            run_crosses(entry["layers"], tmp)
        files.append(out / figure)
    return files


def explain_figures(names: list[str]) -> list[str]:
    """``explain-NAME.png`` for each model (a preset, or a config file's stem), numbered
    by its place among the compared models where two would share a name."""
    stems = [re.sub(r"[^\w.-]+", "-", Path(n).stem if n.endswith(".json") else n) for n in names]
    return [
        f"explain-{stem}.png" if stems.count(stem) == 1 else f"explain-{stem}-{i + 1}.png"
        for i, stem in enumerate(stems)
    ]
