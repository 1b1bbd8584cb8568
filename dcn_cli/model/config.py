"""The model config: every setting that decides a model's architecture.

A :class:`ModelConfig` is plain data (no TensorFlow import), saved as JSON in a
checkpoint and rebuilt into the same Keras model by
:func:`dcn_cli.model.factory.build_model`. It also knows where each feature sits in
the concatenated cross input (:meth:`ModelConfig.feature_map`), which
``explain`` needs to draw per-feature blocks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcn_cli import settings
from dcn_cli.data.features import FeatureSpec
from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json, write_json

CONFIG_FORMAT = 1
# The settings of ModelConfig that the settings table checks (all but the features).
CHECKED = (
    "task",
    "arch",
    "cross_type",
    "precision",
    "cross_layers",
    "projection_dim",
    "num_experts",
    "embedding_dim",
    "diag_scale",
    "embedding_l2",
    "dropout",
    "deep_layers",
)


@dataclass
class ModelConfig:
    """Everything that decides the architecture of a model ``dcn`` trains.

    ``arch``: ``cross`` (cross network only), ``deep`` (MLP only), ``stacked``
    (cross network, then MLP) or ``parallel`` (both side by side, concatenated).
    ``task``: ``regression`` (linear output) or ``binary`` (a logit, then a
    sigmoid: the model outputs a probability).
    """

    features: list[FeatureSpec]
    task: str = "regression"
    arch: str = "stacked"
    cross_type: str = "matrix"
    cross_layers: int = 1
    projection_dim: int | None = None
    num_experts: int = 4
    diag_scale: float = 0.0
    # The defaults are dcn train's (dcn_cli/settings.py), so that the Python API and
    # the command line build the same model.
    deep_layers: list[int] = field(
        default_factory=lambda: [int(n) for n in settings.DEEP_LAYERS.split(",")]
    )
    dropout: float = settings.DROPOUT
    embedding_dim: int = settings.EMBEDDING_DIM
    embedding_l2: float = settings.EMBEDDING_L2  # L2 penalty on every embedding table
    # mixed_bfloat16: embeddings, cross and deep layers compute in bfloat16 (weights
    # stay float32); the output layer computes in float32 either way.
    precision: str = "float32"

    def __post_init__(self) -> None:
        if not isinstance(self.features, list):
            raise DcnError(f"features must be a list, got {self.features!r}")
        for feature in self.features:
            if not isinstance(feature, (FeatureSpec, dict)):
                raise DcnError(f"each feature must be an object, got {feature!r}")
        self.features = [
            f if isinstance(f, FeatureSpec) else FeatureSpec(**f) for f in self.features
        ]
        if not isinstance(self.deep_layers, (list, tuple)):
            raise DcnError(f"deep_layers must be a list of sizes, got {self.deep_layers!r}")
        self.deep_layers = list(self.deep_layers)
        self.validate()

    @property
    def uses_cross(self) -> bool:
        return self.arch != "deep"

    @property
    def uses_deep(self) -> bool:
        return self.arch != "cross"

    def validate(self) -> None:
        if not self.features:
            raise DcnError("a model needs at least one feature")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DcnError(f"duplicate feature names: {', '.join(duplicates)}")
        for feature in self.features:
            feature.validate()
        for name in CHECKED:
            if name != "projection_dim" or self.projection_dim is not None:
                settings.check(name, getattr(self, name))
        settings.check_architecture(self.arch, self.deep_layers)

    def feature_map(self) -> list[dict[str, Any]]:
        """Where each feature sits in the concatenated cross input, in order."""
        entries, offset = [], 0
        for feature in self.features:
            width = feature.width(self.embedding_dim)
            entries.append({"name": feature.name, "offset": offset, "width": width})
            offset += width
        return entries

    @property
    def input_dim(self) -> int:
        """Width of the concatenated feature vector ``x0``."""
        return sum(f.width(self.embedding_dim) for f in self.features)

    def warnings(self) -> list[str]:
        """Settings that are allowed but probably not what the user meant."""
        notes = []
        if (
            self.uses_cross
            and self.cross_type == "matrix"
            and self.projection_dim is not None
            and 2 * self.projection_dim >= self.input_dim
        ):
            notes.append(
                f"projection_dim {self.projection_dim} is at least half the input width "
                f"{self.input_dim}: the low-rank layer has no fewer weights than a full one"
            )
        return notes

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        if not isinstance(data, dict):
            raise DcnError(f"{source}: expected a JSON object")
        data = dict(data)
        version = data.pop("format", CONFIG_FORMAT)
        if version != CONFIG_FORMAT:
            raise DcnError(f"{source}: config format {version} is not supported")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DcnError(f"{source}: unknown model setting(s): {', '.join(unknown)}")
        feature_keys = {f.name for f in dataclasses.fields(FeatureSpec)}
        for feature in data.get("features", []):
            extra = sorted(set(feature) - feature_keys) if isinstance(feature, dict) else []
            if extra:
                raise DcnError(f"{source}: unknown feature setting(s): {', '.join(extra)}")
        try:
            return cls(**data)
        except (TypeError, DcnError) as err:
            raise DcnError(f"{source}: {err}") from None

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        return cls.from_dict(read_json(path), source=str(path))
