"""Every setting a user can give dcn: its default, its choices or bounds, its check.

One table (:data:`SETTINGS`) serves the command line (choices shown in
``--help`` and offered by shell completion), the checks the commands run
before any work, the model config (:class:`~dcn_cli.model.config.ModelConfig`)
and compare's model files, so that a value is judged the same way wherever it
comes from. Plain data and plain checks: nothing here imports TensorFlow or
reads a row, so a bad value fails as fast as ``dcn --help`` runs.

The training defaults were chosen on MovieLens 100K, on a validation split
carved out of train (10% of the training rows, seeds 0 and 1), never on the
test split: batch 1024 at Adam 1e-3 for 20 epochs, with an L2 penalty of 3e-3
on the embedding tables and dropout 0.3 after each deep layer. Mean validation
RMSE of the stacked DCN went from 0.9458 under the tutorial's protocol (Adam
0.01, batch 8192, 8 epochs, no penalty) to 0.9250
(``benchmarks/tune_defaults.py``); the README gives the test-split figures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dcn_cli.errors import DcnError

EPOCHS = 20
BATCH_SIZE = 1024
LR = 0.001
OPTIMIZER = "adam"
WEIGHT_DECAY = 0.0
EMBEDDING_DIM = 32
EMBEDDING_L2 = 0.003
DROPOUT = 0.3
DEEP_LAYERS = "192,192"
LIST_SEPARATOR = "|"  # between the elements of a list-valued cell, unless --list says
LIST_LENGTH = 64  # elements of a list kept per row; the rest are dropped
POOLINGS = ("mean", "sum")
MIN_COUNT = 2  # training rows a category needs for its own embedding row
PATIENCE = 5  # epochs without a better validation loss before training stops; 0: never
AUTO_VALIDATION = 0.1  # share of train held out for early stopping when none is asked

ARCHS = ("stacked", "parallel", "cross", "deep")
CROSS_TYPES = ("matrix", "vector", "mix")
TASKS = ("regression", "binary")
PRECISIONS = ("float32", "mixed_bfloat16")
OPTIMIZERS = ("adam", "adamw", "adagrad", "sgd")
STRATEGIES = ("auto", "off", "mirrored", "multi-worker")
DATASET_KINDS = ("mixer", "poly", "ctr")
POLYNOMIALS = ("f1", "f2", "f3", "random")
FLOAT32_MAX = 3.4028234663852886e38
# What compare and tune may rank models by (metrics.py says which suit which task).
METRICS = ("auc", "logloss", "ne", "calibration", "accuracy", "gauc", "rmse", "mae")
HIGHER_IS_BETTER = ("auc", "accuracy", "gauc")  # calibration: nearest 1; the rest: lower
SEED_LIMIT = 2**32  # NumPy and TensorFlow take seeds 0 .. 2**32 - 1


@dataclass(frozen=True)
class Setting:
    """What one setting may hold.

    ``kind`` is ``choice`` (one of ``choices``), ``int``, ``number`` (a finite
    float), ``sizes`` (comma-separated positive integers, or a list of them) or
    ``pairs`` (``NAME=N,...`` with positive N, or a dict) or ``lists``
    (``NAME[=SEP],...``). Numbers must be at
    least ``minimum``, and below ``below`` when it is set; ``positive`` excludes
    zero for a number.
    """

    kind: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    below: float | None = None
    positive: bool = False
    what: str = ""  # how a message names it on the command line, when not --name


SETTINGS: dict[str, Setting] = {
    # the model
    "arch": Setting("choice", ARCHS),
    "cross_type": Setting("choice", CROSS_TYPES),
    "task": Setting("choice", TASKS),
    "precision": Setting("choice", PRECISIONS),
    "cross_layers": Setting("int", minimum=1),
    "projection_dim": Setting("int", minimum=1),
    "num_experts": Setting("int", minimum=1),
    "diag_scale": Setting("number", minimum=0),
    "deep_layers": Setting("sizes"),
    "dropout": Setting("number", minimum=0, below=1),
    "embedding_dim": Setting("int", minimum=1),
    "embedding_l2": Setting("number", minimum=0),
    # training
    "epochs": Setting("int", minimum=1),
    "batch_size": Setting("int", minimum=1),
    "lr": Setting("number", positive=True),
    "optimizer": Setting("choice", OPTIMIZERS),
    "weight_decay": Setting("number", minimum=0),
    "seed": Setting("int", minimum=0, below=SEED_LIMIT),
    "patience": Setting("int", minimum=0),
    "validation": Setting("number", minimum=0, below=1),
    "distribute": Setting("choice", STRATEGIES),
    "workers": Setting("int", minimum=1),
    "runs": Setting("int", minimum=1),
    "metric": Setting("choice", METRICS),
    # tune
    "trials": Setting("int", minimum=1),
    "timeout": Setting("number", positive=True),
    "jobs": Setting("int", minimum=1),
    # data
    "hash_buckets": Setting("pairs"),
    "min_count": Setting("int", minimum=1),
    "lists": Setting("lists", what="--list"),
    "pooling": Setting("choice", POOLINGS),
    # explain
    "layer": Setting("int", minimum=0),
    "top": Setting("int", minimum=1),
    # generate
    "kind": Setting("choice", DATASET_KINDS, what="the dataset kind"),
    "rows": Setting("int", minimum=1),
    "function": Setting("choice", POLYNOMIALS),
    "features": Setting("int", minimum=1),
    "order": Setting("int", minimum=2),
    "terms": Setting("int", minimum=1),
    "noise": Setting("number", minimum=0),
    "vocab_size": Setting("int", minimum=4),
}


def flag(name: str) -> str:
    """How the command line names setting ``name``: ``--cross-layers``."""
    return (
        SETTINGS[name].what
        if name in SETTINGS and SETTINGS[name].what
        else ("--" + name.replace("_", "-"))
    )


def check(name: str, value: Any, what: str | None = None) -> Any:
    """``value`` checked against setting ``name``'s bounds; ``sizes`` and ``pairs``
    come back parsed. ``what`` names it in a message (default: the setting's name)."""
    return check_value(SETTINGS[name], value, what or name)


def check_value(setting: Setting, value: Any, what: str) -> Any:
    """``value`` checked against ``setting`` (one not in the table: a feature's own)."""
    if setting.kind == "choice":
        if value not in setting.choices:
            raise DcnError(f"{what} must be one of {', '.join(setting.choices)}; got {value!r}")
        return value
    if setting.kind == "sizes":
        return parse_sizes(value, what)
    if setting.kind == "pairs":
        return parse_pairs(value, what)
    if setting.kind == "lists":
        return parse_lists(value, what)
    if setting.kind == "int":
        _check_int(what, value, setting)
    else:
        _check_number(what, value, setting)
    return value


def _check_int(what: str, value: Any, setting: Setting) -> None:
    low, below = setting.minimum or 0, setting.below  # every int setting counts from 0 up
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (below is None or value < below)
    if ok:
        return
    if below is not None:
        raise DcnError(f"{what} must be between {low:g} and {int(below) - 1}, got {value!r}")
    if low == 1:
        raise DcnError(f"{what} must be a positive integer, got {value!r}")
    raise DcnError(f"{what} must be an integer >= {low:g}, got {value!r}")


def _check_number(what: str, value: Any, setting: Setting) -> None:
    low, below = setting.minimum, setting.below
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (low is None or value >= low) and (below is None or value < below)
    ok = ok and not (setting.positive and value <= 0)
    if ok and abs(value) > FLOAT32_MAX:  # the model computes in float32
        raise DcnError(f"{what} must be within float32's range (3.4e+38), got {value!r}")
    if ok:
        return
    if setting.positive:
        raise DcnError(f"{what} must be a finite positive number, got {value!r}")
    if below is not None:
        raise DcnError(f"{what} must be a finite number in [{low:g}, {below:g}), got {value!r}")
    check_finite(what, value, minimum=low)


def check_given(values: Mapping[str, Any], what=flag) -> None:
    """Check every known setting in ``values`` (a command's options) that is not None."""
    for name, value in values.items():
        if name in SETTINGS and value is not None:
            check(name, value, what(name))


def check_architecture(arch: str, deep_layers: list[int], where: str = "") -> None:
    """An architecture with a deep network needs at least one deep layer."""
    if arch != "cross" and not deep_layers:
        raise DcnError(f"{where}arch {arch!r} needs at least one deep layer")


def check_finite(what: str, value: Any, minimum: float | None = None) -> None:
    """A real, finite number (not a bool), at least ``minimum`` when given."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise DcnError(f"{what} must be a finite number{bound}, got {value!r}")


def parse_sizes(value: Any, what: str = "layer sizes") -> list[int]:
    """``"192,192"`` (or ``[192, 192]``) -> ``[192, 192]``; an empty string gives ``[]``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = [int(part) for part in text.split(",")] if text else []
        except ValueError:
            message = f"{what} must be comma-separated integers like 192,192, got {text!r}"
            raise DcnError(message) from None
    if not isinstance(value, (list, tuple)):
        raise DcnError(f"{what} must be a list of sizes, got {value!r}")
    for size in value:
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
            raise DcnError(f"{what} must be positive integers, got {size!r}")
    return list(value)


def parse_pairs(value: Any, what: str = "--hash-buckets") -> dict[str, int]:
    """``"zip=1000,C1=50000"`` (or a dict) -> ``{"zip": 1000, "C1": 50000}``, each N positive."""
    if isinstance(value, str):
        pairs: dict[str, Any] = {}
        for part in value.split(","):
            if not part.strip():
                continue
            name, _, number = part.partition("=")
            try:
                pairs[name.strip()] = int(number)
            except ValueError:
                raise DcnError(f"{what} expects NAME=N pairs like zip=1000, got {part!r}") from None
        value = pairs
    if not isinstance(value, dict):
        raise DcnError(f"{what} must be NAME=N pairs, got {value!r}")
    for name, number in value.items():
        if not name:
            raise DcnError(f"{what}: a pair has no name in {value!r}")
        if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
            raise DcnError(f"{what} for {name!r} must be a positive integer, got {number!r}")
    return dict(value)


def parse_lists(value: Any, what: str = "--list") -> dict[str, str]:
    """``"genres,tags=;"`` -> ``{"genres": "|", "tags": ";"}``: list-valued columns and
    the separator of each cell's elements (default :data:`LIST_SEPARATOR`)."""
    lists: dict[str, str] = {}
    for part in str(value or "").split(","):
        if not part.strip():
            continue
        name, equals, separator = part.partition("=")
        if not name.strip():
            raise DcnError(f"{what}: {part!r} names no column")
        if equals and not separator:
            raise DcnError(f"{what}: the separator of {name.strip()!r} is empty")
        lists[name.strip()] = separator or LIST_SEPARATOR
    return lists


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
