"""The model config: every setting that decides a model's architecture.

A :class:`ModelConfig` is plain data (no TensorFlow import), saved as JSON in a
checkpoint and rebuilt into the same Keras model by
:func:`dcn_cli.model.build_model`. It also knows where each feature sits in
the concatenated cross input (:meth:`ModelConfig.feature_map`), which
``explain`` needs to draw per-feature blocks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcn_cli import defaults
from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json, write_json

ARCHS = ("stacked", "parallel", "cross", "deep")
CROSS_TYPES = ("matrix", "vector", "mix")
TASKS = ("regression", "binary")
FEATURE_KINDS = ("categorical", "numerical")
DTYPES = ("string", "int64", "float32")
PRECISIONS = ("float32", "mixed_bfloat16")
CONFIG_FORMAT = 1


def _choice(what: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise DcnError(f"unknown {what} {value!r}; expected one of: {', '.join(allowed)}")


def _positive_int(what: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise DcnError(f"{what} must be a positive integer, got {value!r}")


FLOAT32_MAX = 3.4028234663852886e38


def check_finite(what: str, value: Any, minimum: float | None = None) -> None:
    """A real, finite number (not a bool), at least ``minimum`` when given."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise DcnError(f"{what} must be a finite number{bound}, got {value!r}")


def check_seed(seed: int) -> None:
    """Seeds go to NumPy and TensorFlow, which take 0 .. 2**32 - 1."""
    if not 0 <= seed < 2**32:
        raise DcnError(f"--seed must be between 0 and {2**32 - 1}, got {seed}")


_JSON_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,)}


def from_json(cls, values: Any, where: str):
    """A settings dataclass from a JSON object, each field's type checked; others ignored."""
    if not isinstance(values, dict):
        raise DcnError(f"{where}: expected a JSON object, got {values!r}")
    kept = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        value, kinds = values[f.name], [k.strip() for k in str(f.type).split("|")]
        ok = (value is None and "None" in kinds) or (
            not isinstance(value, bool)
            and any(isinstance(value, _JSON_TYPES[k]) for k in kinds if k != "None")
        )
        if not ok:
            raise DcnError(f"{where}: {f.name} must be {' or '.join(kinds)}, got {value!r}")
        kept[f.name] = value
    return cls(**kept)


def parse_int_list(text: str, what: str = "layer sizes") -> list[int]:
    """``"192,192"`` -> ``[192, 192]``; an empty string gives ``[]``."""
    text = text.strip()
    if not text:
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        message = f"{what} must be comma-separated integers like 192,192, got {text!r}"
        raise DcnError(message) from None
    for value in values:
        _positive_int(what, value)
    return values


@dataclass
class FeatureSpec:
    """One input column and how the model encodes it.

    A categorical feature is looked up in ``vocabulary`` (unseen values go to
    ``num_oov`` out-of-vocabulary buckets) or hashed into ``hash_buckets``
    buckets, then embedded with ``embedding_dim`` (or the model's global
    one). A numerical feature is fed raw, or normalised with the training
    split's ``mean`` and ``variance`` when they are set.
    """

    name: str
    kind: str
    dtype: str = "float32"
    vocabulary: list[Any] | None = None
    hash_buckets: int | None = None
    num_oov: int = 1
    embedding_dim: int | None = None
    mean: float | None = None
    variance: float | None = None

    def validate(self) -> None:
        where = f"feature {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DcnError(f"feature names must be non-empty strings, got {self.name!r}")
        _choice(f"kind for {where}", self.kind, FEATURE_KINDS)
        _choice(f"dtype for {where}", self.dtype, DTYPES)
        if self.kind == "numerical":
            if self.dtype == "string":
                raise DcnError(f"{where} is numerical but has dtype 'string'")
            if (self.mean is None) != (self.variance is None):
                raise DcnError(f"{where}: set both mean and variance, or neither")
            if self.mean is not None and self.variance is not None:
                check_finite(f"mean of {where}", self.mean)
                check_finite(f"variance of {where}", self.variance, minimum=0)
                if max(abs(self.mean), self.variance) > FLOAT32_MAX:  # the model's float32
                    raise DcnError(f"{where}: mean and variance must be within float32's range")
            return
        if self.dtype == "float32":
            raise DcnError(f"{where} is categorical; its dtype must be 'string' or 'int64'")
        if (self.vocabulary is None) == (self.hash_buckets is None):
            raise DcnError(f"{where} needs exactly one of a vocabulary or hash_buckets")
        _positive_int(f"hash_buckets of {where}", self.hash_buckets, allow_none=True)
        _positive_int(f"embedding_dim of {where}", self.embedding_dim, allow_none=True)
        if isinstance(self.num_oov, bool) or not isinstance(self.num_oov, int) or self.num_oov < 0:
            raise DcnError(f"num_oov of {where} must be >= 0, got {self.num_oov!r}")
        if self.vocabulary is not None:
            if not isinstance(self.vocabulary, list):
                raise DcnError(f"vocabulary of {where} must be a list, got {self.vocabulary!r}")
            if not self.vocabulary:
                raise DcnError(f"{where} has an empty vocabulary")
            if len(set(self.vocabulary)) != len(self.vocabulary):
                raise DcnError(f"{where} has duplicate values in its vocabulary")

    def input_size(self) -> int:
        """Rows of the embedding table: vocabulary plus OOV buckets, or hash buckets."""
        if self.hash_buckets is not None:
            return self.hash_buckets
        return len(self.vocabulary or []) + self.num_oov

    def width(self, default_embedding_dim: int) -> int:
        """How many columns this feature takes in the cross input."""
        if self.kind == "numerical":
            return 1
        return self.embedding_dim or default_embedding_dim


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
    # The defaults are dcn train's (dcn_cli/defaults.py), so that the Python API and
    # the command line build the same model.
    deep_layers: list[int] = field(
        default_factory=lambda: [int(n) for n in defaults.DEEP_LAYERS.split(",")]
    )
    dropout: float = defaults.DROPOUT
    embedding_dim: int = defaults.EMBEDDING_DIM
    embedding_l2: float = defaults.EMBEDDING_L2  # L2 penalty on every embedding table
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
        _choice("task", self.task, TASKS)
        _choice("arch", self.arch, ARCHS)
        _choice("cross type", self.cross_type, CROSS_TYPES)
        _choice("precision", self.precision, PRECISIONS)
        _positive_int("cross_layers", self.cross_layers)
        _positive_int("projection_dim", self.projection_dim, allow_none=True)
        _positive_int("num_experts", self.num_experts)
        _positive_int("embedding_dim", self.embedding_dim)
        check_finite("diag_scale", self.diag_scale, minimum=0)
        check_finite("embedding_l2", self.embedding_l2, minimum=0)
        check_finite("dropout", self.dropout, minimum=0)
        if not self.dropout < 1.0:
            raise DcnError(f"dropout must be in [0, 1), got {self.dropout}")
        for size in self.deep_layers:
            _positive_int("deep layer size", size)
        if self.uses_deep and not self.deep_layers:
            raise DcnError(f"arch {self.arch!r} needs at least one deep layer")

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
