"""Column roles inferred from a file's first rows, and each column's profile.

A CSV file says nothing about what its columns mean, so dcn looks at its
first :data:`~dcn_cli.data.delimited.SAMPLE_ROWS` rows:

- numbers with a fractional part or an exponent: **numerical**;
- integers: **numerical** (counts, amounts), unless they look like category
  codes (see :func:`looks_like_codes`): then **categorical**, with a warning;
- anything else: **categorical** text.

Two kinds of column are never used silently (each gets one warning that
names it and the flag that changes what dcn did):

- a column whose every sampled value is distinct (a row id, a timestamp) is
  **ignored**: as a feature it can only be memorised, not learnt;
- a column of numbers with a few stray non-numbers (``N/A``, ``?``) is read
  as categorical text, and the warning names the first stray value's line.

An empty cell in a numerical column reads as 0, as Criteo's files are read.
``dcn describe`` prints what was inferred; ``--categorical``,
``--numerical`` and ``--ignore`` override it.
"""

from __future__ import annotations

import math
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dcn_cli.data.schema import IGNORE, WEIGHT, Column
from dcn_cli.errors import DcnError
from dcn_cli.settings import parse_lists

ID_MIN_ROWS = 100  # sampled rows below which no column is called an id
STRAY_SHARE = 0.05  # a numeric column may have at most this share of non-numbers as strays
# Integer columns with up to this many distinct values in the first rows, the commonest
# spread out, are category codes (measured on Criteo's and Avazu's first rows:
# docs/real-data.md).
CODES_MAX_DISTINCT = 1000
TOP_VALUES = 3


@dataclass
class Profile:
    """What the first rows of one column hold, and the role dcn gives it."""

    name: str
    role: str
    dtype: str
    kind: str  # "integer", "number", "text" or "empty": what its values look like
    rows: int  # values sampled
    distinct: int
    missing: float  # share of empty cells
    top: list[tuple[str, int]] = field(default_factory=list)  # commonest values
    warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "dtype": self.dtype,
            "kind": self.kind,
            "rows": self.rows,
            "distinct": self.distinct,
            "missing": self.missing,
            "top": [{"value": v, "count": n} for v, n in self.top],
            "warning": self.warning,
        }


_INTEGER = re.compile(r"[+-]?[0-9]+(\.0*)?")


def _integer(text: str) -> bool:
    """An integer as text: ``42``, ``-1``, an id beyond 64 bits, or ``42.0`` (a
    whole number, as pandas writes an integer column with gaps); not ``1e5``."""
    return _INTEGER.fullmatch(text) is not None


def _int64(text: str) -> bool:
    try:
        return -(2**63) <= int(text) < 2**63
    except ValueError:
        return False


def _number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _first_non_number(values: list[str]) -> int:
    """Where the first cell that is neither empty nor a number is."""
    return next(i for i, v in enumerate(values) if v != "" and not _number(v))


def list_role(separator: str) -> str:
    """How describe shows the role of a list column."""
    return f"list ({separator})"


def looks_like_codes(integers: list[int]) -> bool:
    """Whether a column of integers names categories rather than counts them.

    Counts and amounts start at 0 or 1 (or just below, as -1 for none) and
    pile up there: their three commonest values lie within 10 of the
    smallest (0, 1, 2). Codes start anywhere (1001, 1005, 1010) or spread
    their commonest values (-1, 100084, 100111; 18993, 20596, 15701). A
    small enumeration from 0 (a position 0-7) reads as numbers.
    """
    counts = Counter(integers)
    if not 2 <= len(counts) <= CODES_MAX_DISTINCT:
        return False
    low = min(counts)
    return low > 1 or any(value > low + 10 for value, _ in counts.most_common(3))


def infer(
    name: str,
    values: list[str],
    lines: list[int],
    where: str,
    forced: str | None = None,
) -> tuple[Column, Profile]:
    """The column and profile of one CSV column from its sampled ``values`` (text).

    ``lines`` are the values' line numbers, for the warning about a stray value;
    ``forced`` is the role the user gave (``--categorical``, ``--numerical``,
    ``--ignore``), which is taken as it is.
    """
    profile = profile_of(name, values)
    present = [v for v in values if v != ""]
    if forced == WEIGHT and profile.kind == "text":
        i = _first_non_number(values)
        raise DcnError(
            f"{where}:{lines[i]}: --weight {name!r} holds {values[i]!r}; weights are numbers"
        )
    integers = [int(v.split(".")[0]) for v in present if _integer(v)]
    exact = not profile.missing and all(map(_int64, present))  # codes that read as int64
    role, dtype = _role(profile, forced, integers, exact)
    if forced is None:
        profile.warning = _warning(profile, role, present, values, lines, where)
    profile.role, profile.dtype = role, dtype
    return Column(
        name, role, dtype, fill_empty=role == "numerical" and profile.missing > 0
    ), profile


def as_list(column: Column, profile: Profile, given: dict[str, str | None]) -> None:
    """Make ``column`` a list column if ``given`` (``--list``) names it."""
    lists = parse_lists(given.get(LIST))
    if column.name in lists:
        column.separator = lists[column.name]
        column.pooling = given.get("pooling") or "mean"
        profile.role = list_role(column.separator)


def notes(profiles: list[Profile]) -> list[str]:
    """The warnings to print for a table: one line per id or stray value, and one line
    naming every column read as category codes."""
    codes = [
        p.name for p in profiles if p.warning and p.role == "categorical" and p.kind == "integer"
    ]
    lines = [p.warning for p in profiles if p.warning and p.name not in codes]
    if codes:
        lines.append(
            f"integer column(s) {', '.join(codes)} look like category codes: read as "
            f"categorical; give --numerical {shlex.quote(','.join(codes))} (or some of them) "
            "to read them as numbers"
        )
    return lines


def profile_of(name: str, values: list[str], role: str = "", dtype: str = "") -> Profile:
    """What ``values`` (one column's first cells, as text) hold."""
    present = [v for v in values if v != ""]
    counts = Counter(values)
    if not present:
        kind = "empty"
    elif all(map(_integer, present)):
        kind = "integer"
    elif all(map(_number, present)):
        kind = "number"
    else:
        kind = "text"
    missing = (len(values) - len(present)) / len(values) if values else 0.0
    top = counts.most_common(TOP_VALUES)
    return Profile(name, role, dtype, kind, len(values), len(counts), missing, top)


def _role(profile: Profile, forced: str | None, integers: list[int], exact: bool):
    codes = "int64" if profile.kind == "integer" and exact else "string"
    if forced == "numerical":
        return "numerical", "float32"
    if forced == "categorical":
        return "categorical", codes
    if forced == WEIGHT:
        return WEIGHT, "float32"
    if forced == LIST:
        return "categorical", "string"
    if forced == IGNORE or profile.kind in ("integer", "text") and _is_id(profile):
        return IGNORE, "string"
    if profile.kind in ("text", "empty"):
        return "categorical", "string"
    if profile.kind == "integer" and looks_like_codes(integers):
        return "categorical", codes
    return "numerical", "float32"


def _is_id(profile: Profile) -> bool:
    """Distinct in every sampled row: a row id, a timestamp, a hash of the row."""
    return profile.rows >= ID_MIN_ROWS and profile.distinct == profile.rows and not profile.missing


def _warning(
    profile: Profile,
    role: str,
    present: list[str],
    values: list[str],
    lines: list[int],
    where: str,
) -> str | None:
    name = profile.name
    if role == IGNORE:
        return (
            f"column {name!r} looks like a row id ({profile.distinct} distinct values in "
            f"{profile.rows} rows): ignored; give --categorical {shlex.quote(name)} to use it"
        )
    if role == "categorical" and profile.kind == "integer":
        return (
            f"column {name!r} holds integers that look like category codes "
            f"({profile.distinct} distinct): read as categorical; give --numerical "
            f"{shlex.quote(name)} "
            "to read them as numbers"
        )
    strays = len(present) - sum(map(_number, present)) if profile.kind == "text" else 0
    if profile.kind == "text" and 0 < strays <= STRAY_SHARE * len(present):
        i = _first_non_number(values)
        return (
            f"column {name!r} holds numbers but {values[i]!r} at {where}:{lines[i]} "
            f"({strays} of {len(present)} values are not numbers): read as categorical "
            f"text; fix those values to use it as a number, or give --categorical "
            f"{shlex.quote(name)}"
        )
    return None


def parse_names(text: str | None) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()] if text else []


GIVEN = ("categorical", "numerical", IGNORE, WEIGHT)  # the roles options give columns
LIST = "list"  # --list NAME[=SEP]: a categorical column of lists


def check_roles(
    header: list[str], label: str | None, given: dict[str, str | None], where: Path
) -> dict[str, str]:
    """``--label`` and ``given`` (``--categorical``, ``--numerical``, ``--ignore``,
    ``--weight``: comma-separated names by role) name columns that exist, once each;
    the role each column is given, by name."""
    roles: dict[str, str] = {}
    if label is not None and label not in header:
        raise DcnError(f"{where}: no label column {label!r} (columns: {', '.join(header)})")
    if len(parse_names(given.get(WEIGHT))) > 1:
        raise DcnError(f"{where}: --weight names one column, got {given[WEIGHT]!r}")
    for role in (*GIVEN, LIST):
        names = given.get(role)
        if role == LIST:
            names = ",".join(parse_lists(names))
        flag = f"--{role}"
        for name in parse_names(names):
            if name not in header:
                raise DcnError(
                    f"{where}: {flag} names {name!r}, which is not a column "
                    f"(columns: {', '.join(header)})"
                )
            if name == label:
                raise DcnError(f"{where}: {name!r} is the label; {flag} cannot name it")
            if name in roles and roles[name] != role:
                raise DcnError(
                    f"{where}: column {name!r} is named by both --{roles[name]} and {flag}"
                )
            roles[name] = role
    unused = list(roles.values()).count(IGNORE) + list(roles.values()).count(WEIGHT)
    if label is not None and len(header) - unused < 2:
        raise DcnError(f"{where}: no feature columns besides the label {label!r}")
    return roles
