"""A feature: one input column and how the model encodes it.

The preparation pass (:mod:`dcn_cli.data.prepare`) learns one
:class:`FeatureSpec` per feature column from the training rows; the model
factory builds an input, a lookup and an embedding from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dcn_cli.errors import DcnError
from dcn_cli.settings import FLOAT32_MAX, POOLINGS, Setting, check_finite, check_value

FEATURE_KINDS = ("categorical", "numerical")
DTYPES = ("string", "int64", "float32")


KIND = Setting("choice", FEATURE_KINDS)
DTYPE = Setting("choice", DTYPES)
POSITIVE = Setting("int", minimum=1)
COUNT = Setting("int", minimum=0)
POOLING = Setting("choice", POOLINGS)


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
    # A list-valued feature: each cell's elements, split at ``separator``, are looked up
    # (or hashed) one by one; the first ``max_length`` are embedded and pooled.
    separator: str | None = None
    max_length: int | None = None
    pooling: str = "mean"

    def validate(self) -> None:
        where = f"feature {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise DcnError(f"feature names must be non-empty strings, got {self.name!r}")
        check_value(KIND, self.kind, f"kind of {where}")
        check_value(DTYPE, self.dtype, f"dtype of {where}")
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
        for name in ("hash_buckets", "embedding_dim"):
            if getattr(self, name) is not None:
                check_value(POSITIVE, getattr(self, name), f"{name} of {where}")
        check_value(COUNT, self.num_oov, f"num_oov of {where}")
        if self.separator is not None:
            if self.dtype != "string" or not isinstance(self.separator, str) or not self.separator:
                raise DcnError(f"{where}: a list feature takes text and a non-empty separator")
            check_value(POSITIVE, self.max_length, f"max_length of {where}")
            check_value(POOLING, self.pooling, f"pooling of {where}")
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

    @property
    def is_list(self) -> bool:
        return self.separator is not None

    def ids(self) -> int:
        """How many ids the feature's core input holds per row: 1, or a list's length."""
        return (self.max_length or 1) if self.is_list else 1

    def width(self, default_embedding_dim: int) -> int:
        """How many columns this feature takes in the cross input."""
        if self.kind == "numerical":
            return 1
        return self.embedding_dim or default_embedding_dim
