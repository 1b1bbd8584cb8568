"""The checkpoint directory: the one place that knows its layout.

    CKPT/model.keras    the trained model; loads with keras.models.load_model
    CKPT/config.json    model config, training settings, data source, versions
    CKPT/metrics.json   test-split metrics, params, train_seconds
    CKPT/history.csv    one row per epoch
    CKPT/logs/          TensorBoard logs

Every file is written under a temporary name and renamed into place, and
config.json and model.keras always describe the same model: config.json is
written once, when a run starts, into a directory that holds no other run's
model (``--force`` deletes the old model first), and never rewritten with
other model settings; ``--resume`` takes every setting from it. Loading checks
that model.keras has the layers and weight shapes config.json describes.
"""

from __future__ import annotations

import csv
import io
import platform
import shutil
import warnings
from pathlib import Path
from typing import Any

from dcn_cli import __version__
from dcn_cli.data.schema import Schema
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path, read_json, remove_leftovers, write_json, write_text
from dcn_cli.model.config import ModelConfig

MODEL = "model.keras"
CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
LOGS = "logs"
FIGURES = ("explain.png", "explain-block-norm.png")  # what dcn explain draws by default


def versions() -> dict[str, str]:
    from dcn_cli import backend

    keras = backend.load()  # quietly: TensorFlow logs several lines when it loads
    import numpy
    import tensorflow

    return {
        "dcn": __version__,
        "python": platform.python_version(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


def save_model(model, directory: Path) -> None:
    with atomic_path(directory / MODEL) as tmp:
        model.save(tmp)


def save_config(directory: Path, record: dict[str, Any]) -> None:
    write_json(directory / CONFIG, record)


def save_metrics(directory: Path, metrics: dict[str, Any]) -> None:
    write_json(directory / METRICS, metrics)


def save_history(directory: Path, history: list[dict[str, float]]) -> None:
    if not history:
        return
    out = io.StringIO()
    # The newest row's columns: a run resumed from an older dcn may log fewer of them.
    writer = csv.DictWriter(
        out, fieldnames=list(history[-1]), lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(history)
    write_text(directory / HISTORY, out.getvalue())


def read_history(directory: Path) -> list[dict[str, float]]:
    """history.csv's rows; a damaged file is an error naming the line.

    The two are saved together, so a model without its history is damaged: how
    many epochs it has trained is unknown.
    """
    path = directory / HISTORY
    if not path.exists():
        if (directory / MODEL).exists():
            raise DcnError(
                f"{path}: missing, so the run's epochs are unknown; train afresh with --force"
            )
        return []
    rows: list[dict[str, float]] = []
    damaged = "damaged history; train afresh with --force"
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        try:
            for row in reader:
                try:
                    parsed = {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
                except (TypeError, ValueError):
                    parsed = {}
                if parsed.get("epoch") != len(rows) + 1:
                    raise DcnError(
                        f"{path}:{reader.line_num}: {damaged} (expected epoch {len(rows) + 1})"
                    )
                rows.append(parsed)
        except csv.Error as err:
            raise DcnError(f"{path}:{reader.line_num}: {damaged} ({err})") from None
    if not rows and (directory / MODEL).exists():
        raise DcnError(f"{path}: {damaged} (no epochs, beside a saved model)")
    return rows


# ---------------------------------------------------------------- a run's files

RUN_FILES = (MODEL, CONFIG, METRICS, HISTORY)


def holds_run(directory: Path) -> bool:
    return any((directory / name).exists() for name in RUN_FILES)


def remove_temporary(directory: Path) -> None:
    """Delete what an interrupted save left: the temporary files of :func:`atomic_path`."""
    if not directory.is_dir():
        return
    for name in (*RUN_FILES, *FIGURES):
        remove_leftovers(directory / name)


def clear_run(directory: Path, logs_before: set[str] | None = None) -> None:
    """Remove a run's files: the model first, so no moment pairs a new config.json with
    the old model. Files dcn did not write are left alone: with ``logs_before``
    (what logs/ held before this run, from :func:`entries`) only newer ones go."""
    remove_temporary(directory)
    for name in RUN_FILES + FIGURES:
        (directory / name).unlink(missing_ok=True)
    logs = directory / LOGS
    if logs_before is None:
        shutil.rmtree(logs, ignore_errors=True)
        return
    # Deepest first, so that a folder this run made is empty when its turn comes.
    for path in sorted(logs.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if str(path.relative_to(logs)) in logs_before:
            continue
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink()


def entries(directory: Path) -> set[str] | None:
    """Every path under ``directory``, relative to it; ``None`` when it does not exist."""
    if not directory.is_dir():
        return None
    return {str(p.relative_to(directory)) for p in directory.rglob("*")}


def claim(directory: Path, force: bool) -> None:
    """Check that a new run may be written to ``directory`` (before any work is done)."""
    if directory.exists() and not directory.is_dir():
        raise DcnError(f"{directory}: exists and is not a directory")
    if holds_run(directory) and not force:
        raise DcnError(
            f"{directory}: holds a training run already; continue it with --resume, "
            "replace it with --force, or choose another --out"
        )


# ---------------------------------------------------------------- reading back


def load_record(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's config.json, checked to be a whole dcn checkpoint record."""
    directory = Path(directory)
    if not directory.exists():
        raise DcnError(f"{directory}: no such checkpoint directory")
    if not directory.is_dir():
        raise DcnError(f"{directory}: a checkpoint is a directory (the --out of dcn train)")
    path = directory / CONFIG
    if not path.exists():
        raise DcnError(f"{directory}: not a dcn checkpoint (no {CONFIG})")
    record = read_json(path)
    if not isinstance(record, dict):
        raise DcnError(f"{path}: not a dcn checkpoint config (expected a JSON object)")
    for section in ("model", "training", "data"):
        if not isinstance(record.get(section), dict):
            raise DcnError(f"{path}: not a dcn checkpoint config (no {section!r} section)")
    ModelConfig.from_dict(record["model"], source=str(path))  # validates
    Schema.from_dict(record["data"].get("schema"), f"{path}: data.schema")
    return record


def label(record: dict[str, Any], directory: str | Path) -> str:
    """The name of the label column the checkpoint was trained on."""
    return Schema.from_dict(record["data"]["schema"], f"{directory}: data.schema").label


def filled(record: dict[str, Any], directory: str | Path) -> set[str]:
    """The numerical columns whose empty cells read as 0 when the checkpoint trained."""
    schema = Schema.from_dict(record["data"]["schema"], f"{directory}: data.schema")
    return {c.name for c in schema.columns if c.fill_empty}


def weight(record: dict[str, Any], directory: str | Path) -> str | None:
    """The column of row weights the checkpoint was trained with, if any."""
    return Schema.from_dict(record["data"]["schema"], f"{directory}: data.schema").weight


def model_config(record: dict[str, Any], directory: str | Path) -> ModelConfig:
    return ModelConfig.from_dict(record["model"], source=str(Path(directory) / CONFIG))


def load_model(directory: str | Path, config: ModelConfig | None = None):
    """The trained Keras model of a checkpoint (safe mode on), checked against its config.

    ``config`` is the checkpoint's own, read from config.json when not given.
    """
    from dcn_cli import backend

    keras = backend.load()
    import dcn_cli.model.layers  # noqa: F401  registers the custom layers
    import dcn_cli.model.lists  # noqa: F401  and those of list features
    import dcn_cli.model.optimizers  # noqa: F401  and the optimizers in the compiled model
    from dcn_cli.model.factory import build_model

    if config is None:
        config = model_config(load_record(directory), directory)
    path = Path(directory) / MODEL
    if not path.exists():
        raise DcnError(f"{directory}: checkpoint has no {MODEL} (was training interrupted?)")
    try:
        with warnings.catch_warnings():
            # An input renamed by model.input_name(); Keras maps inputs by feature name.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            model = keras.models.load_model(path, safe_mode=True)
    except Exception as err:  # a truncated or foreign file: Keras raises many kinds
        raise DcnError(f"{path}: cannot load the model ({type(err).__name__})") from None
    if _layout(model) != _layout(build_model(config)):
        raise DcnError(
            f"{path}: is not the model {CONFIG} describes (its inputs, layers or weight "
            "shapes differ); was it copied from another checkpoint, or written by an "
            "older dcn?"
        )
    return model


def _layout(model) -> list[tuple[str, ...]]:
    """What must agree between a model and its config: every input's name and type,
    every weight's path and shape."""
    inputs = sorted(("input", t.name, str(t.dtype)) for t in model.inputs)
    return inputs + [("weight", w.path, str(tuple(w.shape))) for w in model.weights]
