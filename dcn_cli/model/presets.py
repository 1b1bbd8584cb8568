"""The models ``dcn compare`` knows by name, and the model files it reads.

A model is a preset's name or a JSON file of architecture settings (a
checkpoint's config.json works too). Both are checked here, against the
settings table, before any data is read.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from dcn_cli.data.features import FeatureSpec
from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json
from dcn_cli.model.config import ModelConfig
from dcn_cli.settings import check

PRESETS: dict[str, dict[str, Any]] = {
    "dcn": {"arch": "stacked", "cross_layers": 1, "deep_layers": [192, 192]},
    "dcn-lr": {
        "arch": "stacked",
        "cross_layers": 1,
        "projection_dim": 20,
        "deep_layers": [192, 192],
    },
    "dnn": {"arch": "deep", "deep_layers": [192, 192, 192]},
    "cross": {"arch": "cross", "cross_layers": 1},
    "dcn-parallel": {"arch": "parallel", "cross_layers": 1, "deep_layers": [192, 192]},
    "dcn-v1": {
        "arch": "stacked",
        "cross_type": "vector",
        "cross_layers": 1,
        "deep_layers": [192, 192],
    },
    "dcn-mix": {
        "arch": "stacked",
        "cross_type": "mix",
        "cross_layers": 1,
        "num_experts": 4,
        "projection_dim": 20,
        "deep_layers": [192, 192],
    },
}
# The architecture settings a model file may hold: every ModelConfig field but what
# the data decides.
MODEL_KEYS = {f.name for f in dataclasses.fields(ModelConfig)} - {"features", "task"}
# The training settings a model file may set for its own runs (``dcn tune`` writes them).
TRAINING_KEYS = ("lr", "batch_size", "optimizer", "weight_decay")


def resolve_model(spec: str) -> tuple[str, dict[str, Any]]:
    """A preset name, or a JSON file of model settings (a checkpoint's config.json works)."""
    if spec in PRESETS:
        return spec, dict(PRESETS[spec])
    path = Path(spec)
    if not path.suffix == ".json" and not path.exists():
        raise DcnError(
            f"unknown model {spec!r}: expected a preset ({', '.join(PRESETS)}) "
            "or the path of a JSON config"
        )
    data = read_json(path)
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]  # a checkpoint's config.json
    if not isinstance(data, dict):
        raise DcnError(f"{path}: expected a JSON object of model settings")
    unknown = sorted(set(data) - MODEL_KEYS - set(TRAINING_KEYS) - {"features", "task", "format"})
    if unknown:
        raise DcnError(f"{path}: unknown model setting(s): {', '.join(unknown)}")
    settings = {k: v for k, v in data.items() if k in MODEL_KEYS}
    try:  # check the settings now, before any data is read
        ModelConfig(features=[FeatureSpec("x", "numerical")], **settings)
        for key in TRAINING_KEYS:
            if key in data:
                check(key, data[key], key)
    except DcnError as err:
        raise DcnError(f"{path}: {err}") from None
    return path.stem, settings | {k: data[k] for k in TRAINING_KEYS if k in data}
