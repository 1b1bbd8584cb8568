"""The checkpoint directory: the one place that knows its layout.

    CKPT/model.keras    the trained model; loads with keras.models.load_model
    CKPT/config.json    model config, training settings, data source, versions
    CKPT/metrics.json   test-split metrics, params, train_seconds
    CKPT/history.csv    one row per epoch
    CKPT/logs/          TensorBoard logs

Every file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import csv
import io
import platform
from pathlib import Path
from typing import Any

from dcn_cli import __version__
from dcn_cli.config import ModelConfig
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path, read_json, write_json, write_text

MODEL = "model.keras"
CONFIG = "config.json"
METRICS = "metrics.json"
HISTORY = "history.csv"
LOGS = "logs"


def versions() -> dict[str, str]:
    import keras
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
    writer = csv.DictWriter(out, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(directory / HISTORY, out.getvalue())


def read_history(directory: Path) -> list[dict[str, float]]:
    path = directory / HISTORY
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            {k: int(v) if k == "epoch" else float(v) for k, v in row.items()}
            for row in csv.DictReader(handle)
        ]


def load_record(directory: str | Path) -> dict[str, Any]:
    """The checkpoint's config.json, checked to be a dcn checkpoint."""
    directory = Path(directory)
    if not directory.exists():
        raise DcnError(f"{directory}: no such checkpoint directory")
    if not directory.is_dir():
        raise DcnError(f"{directory}: a checkpoint is a directory (the --out of dcn train)")
    path = directory / CONFIG
    if not path.exists():
        raise DcnError(f"{directory}: not a dcn checkpoint (no {CONFIG})")
    record = read_json(path)
    if not isinstance(record, dict) or "model" not in record or "training" not in record:
        raise DcnError(f"{path}: not a dcn checkpoint config (no model/training sections)")
    ModelConfig.from_dict(record["model"], source=str(path))  # validates
    return record


def load_model(directory: str | Path):
    """The trained Keras model of a checkpoint (safe mode on)."""
    from dcn_cli import backend

    keras = backend.load()
    import dcn_cli.layers  # noqa: F401  registers the custom layers
    import dcn_cli.optimizers  # noqa: F401  and the optimizers in the compiled model

    path = Path(directory) / MODEL
    if not path.exists():
        raise DcnError(f"{directory}: checkpoint has no {MODEL} (was training interrupted?)")
    try:
        return keras.models.load_model(path, safe_mode=True)
    except Exception as err:  # a truncated or foreign file: Keras raises many kinds
        raise DcnError(f"{path}: cannot load the model ({type(err).__name__})") from None
