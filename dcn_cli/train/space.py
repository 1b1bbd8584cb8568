"""What ``dcn tune`` searches: the default space, a user's space file, and the pins.

A space maps a setting to its range: ``{"low": A, "high": B}`` (``"log": true`` to
draw on a log scale; integers for an integer setting), ``{"choices": [...]}``, or a
single value, which pins the setting. Every bound and choice is checked against
the settings table (:data:`dcn_cli.settings.SETTINGS`) when the file is read,
before any data is: a bad space fails in a second, not after an hour of trials.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json
from dcn_cli.model.presets import TRAINING_KEYS
from dcn_cli.settings import SETTINGS, check

# The settings a trial may vary: the model's architecture and how it trains.
MODEL_PARAMS = (
    "arch",
    "cross_type",
    "cross_layers",
    "projection_dim",
    "num_experts",
    "diag_scale",
    "deep_layers",
    "dropout",
    "embedding_dim",
    "embedding_l2",
)
TRAINING_PARAMS = TRAINING_KEYS  # what a model file may set of its training, too
PARAMS = MODEL_PARAMS + TRAINING_PARAMS

DEFAULT_SPACE: dict[str, Any] = {
    "lr": {"low": 1e-4, "high": 1e-2, "log": True},
    "batch_size": {"choices": [256, 512, 1024, 2048, 4096]},
    "optimizer": {"choices": ["adam", "adamw", "adagrad"]},
    "embedding_dim": {"choices": [4, 8, 16, 32, 64]},
    "cross_layers": {"low": 1, "high": 4},
    "projection_dim": {"choices": [None, 8, 16, 32, 64]},
    "deep_layers": {"choices": ["64,64", "192,192", "256,128", "512,256", "192,192,192"]},
    "dropout": {"low": 0.0, "high": 0.5},
    "embedding_l2": {"low": 1e-7, "high": 1e-2, "log": True},
}


@dataclasses.dataclass(frozen=True)
class Param:
    """One setting's range: ``choices``, or ``low``..``high`` (``log`` scale)."""

    name: str
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False

    @property
    def is_int(self) -> bool:
        return SETTINGS[self.name].kind == "int"

    def suggest(self, trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        low, high = float(self.low or 0), float(self.high or 0)
        if self.is_int:
            return trial.suggest_int(self.name, int(low), int(high), log=self.log)
        return trial.suggest_float(self.name, low, high, log=self.log)

    def holds(self, value: Any) -> bool:
        """Whether ``value`` is one this range can draw."""
        if self.choices is not None:
            return value in self.choices
        low, high = float(self.low or 0), float(self.high or 0)
        return isinstance(value, (int, float)) and low <= value <= high

    def to_json(self) -> dict[str, Any]:
        if self.choices is not None:
            return {"choices": list(self.choices)}
        return {"low": self.low, "high": self.high, **({"log": True} if self.log else {})}


def read_space(path: str | Path) -> dict[str, Any]:
    """A space file: JSON, or TOML (``.toml``)."""
    path = Path(path)
    if path.suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib

        try:
            with open(path, "rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise DcnError(f"{path}: not valid TOML: {err}") from None
    data = read_json(path)
    if not isinstance(data, dict):
        raise DcnError(f"{path}: expected a JSON object of settings and their ranges")
    return data


def parse_space(
    raw: dict[str, Any], pinned: dict[str, Any], where: str = "the space"
) -> tuple[list[Param], dict[str, Any]]:
    """The ranges to search and the settings pinned (a single value in the space, or a
    flag given on the command line, which wins over the space)."""
    unknown = sorted(set(raw) - set(PARAMS))
    if unknown:
        raise DcnError(
            f"{where}: unknown parameter(s) {', '.join(unknown)}; a space may vary "
            f"{', '.join(PARAMS)}"
        )
    params: list[Param] = []
    fixed = {name: _value(name, v, "--" + name.replace("_", "-")) for name, v in pinned.items()}
    for name, spec in raw.items():
        if name in pinned:
            continue
        if isinstance(spec, dict):
            params.append(_param(name, spec, f"{where}: {name}"))
        else:
            fixed[name] = _value(name, spec, f"{where}: {name}")
    if not raw:
        raise DcnError(f"{where}: is empty; name at least one setting to search")
    if not params:
        raise DcnError(f"{where}: nothing left to search (every setting is pinned)")
    return params, fixed


def _param(name: str, spec: dict[str, Any], where: str) -> Param:
    extra = sorted(set(spec) - {"low", "high", "log", "choices"})
    if extra:
        raise DcnError(f"{where}: unknown key(s) {', '.join(extra)} (low, high, log, choices)")
    if "choices" in spec:
        if {"low", "high", "log"} & set(spec):
            raise DcnError(f"{where}: give choices, or low and high, not both")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise DcnError(f"{where}: choices must be a non-empty list")
        return Param(name, choices=tuple(_value(name, c, where) for c in choices))
    if "low" not in spec or "high" not in spec:
        raise DcnError(f"{where}: give low and high, or choices")
    kind = SETTINGS[name].kind
    if kind not in ("int", "number"):
        raise DcnError(f"{where}: {name} takes choices, not a range")
    low, high, log = spec["low"], spec["high"], spec.get("log", False)
    for bound in (low, high):
        if kind == "int" and not (isinstance(bound, int) and not isinstance(bound, bool)):
            raise DcnError(f"{where}: {name} is a whole number; got {bound!r}")
        check(name, bound, where)
    if low > high:
        raise DcnError(f"{where}: empty range, low {low} is above high {high}")
    if not isinstance(log, bool) or (log and low <= 0):
        raise DcnError(f"{where}: log must be true or false, and a log range must start above 0")
    return Param(name, low=low, high=high, log=log)


def _value(name: str, value: Any, where: str) -> Any:
    """One value of setting ``name``, checked; deep layers as text (``"192,192"``, or
    ``""`` for none), as the search stores them; a full-rank ``projection_dim`` as None."""
    if name == "projection_dim" and value in (None, "full"):
        return None  # full rank ("full" where the file is TOML, which has no null)
    if name == "deep_layers":
        sizes = check(name, value, where)
        return ",".join(str(s) for s in sizes)
    check(name, value, where)
    return value


def split_settings(values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trial's settings as model settings and training settings (deep layers as sizes)."""
    model = {k: v for k, v in values.items() if k in MODEL_PARAMS}
    if "deep_layers" in model:
        model["deep_layers"] = check("deep_layers", model["deep_layers"])
    training = {k: v for k, v in values.items() if k in TRAINING_PARAMS}
    return model, training


def describe(params: list[Param], fixed: dict[str, Any]) -> str:
    """The space as one canonical JSON text (a study remembers what it searched)."""
    return json.dumps(
        {"search": {p.name: p.to_json() for p in params}, "pinned": fixed}, sort_keys=True
    )
