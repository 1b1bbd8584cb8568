"""The environment variables dcn reads, each checked like an option.

- ``DCN_MEMORY_BUDGET_MB``: MiB of source data held in memory (default 512);
  bigger sources stream from disk.
- ``DCN_CACHE_DIR``: where preparation caches go when the data's own directory
  is read-only (default ``$XDG_CACHE_HOME/dcn``, else ``~/.cache/dcn``).
- ``KERAS_BACKEND``: dcn's models run on TensorFlow; another backend is refused.
- ``TF_CONFIG``: the cluster of a multi-worker run (:mod:`dcn_cli.train.distribute`).

:func:`check` runs before any command does its work, so a bad value is one
``Error:`` line naming the variable, not a traceback halfway through a run.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from dcn_cli.errors import DcnError

MEMORY_BUDGET_MB = 512
BUDGET = "DCN_MEMORY_BUDGET_MB"
CACHE = "DCN_CACHE_DIR"
BACKEND = "KERAS_BACKEND"


def check() -> None:
    """Every variable dcn reads (``TF_CONFIG`` aside: training checks it), or a DcnError."""
    memory_budget()
    _cache_dir_set()
    backend = os.environ.get(BACKEND) or "tensorflow"  # dcn_cli sets it when unset or empty
    if backend != "tensorflow":
        raise DcnError(
            f"{BACKEND}={backend!r}: dcn runs on TensorFlow; unset it or set it to tensorflow"
        )


def memory_budget() -> int:
    """Bytes of source data held in memory: 512 MiB, or what ``DCN_MEMORY_BUDGET_MB`` says."""
    text = os.environ.get(BUDGET, "").strip()
    if not text:
        return MEMORY_BUDGET_MB * 2**20
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1
    if not (math.isfinite(megabytes) and megabytes >= 0):
        raise DcnError(f"{BUDGET}={text!r}: expected a finite number of MiB, such as 2048")
    return int(megabytes * 2**20)


def _cache_dir_set() -> Path | None:
    """``DCN_CACHE_DIR``, checked, when it is set."""
    text = os.environ.get(CACHE, "")
    if not text:
        return None
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise DcnError(f"{CACHE}={text}: exists and is not a directory")
    return path


def cache_dir() -> Path | None:
    """Where caches go when the data's own directory is read-only; None when there is no
    such place (no home directory, as for a user without a passwd entry)."""
    chosen = _cache_dir_set()
    if chosen is not None:
        return chosen
    base = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(base):  # the XDG spec: a relative path is to be ignored
        return Path(base) / "dcn"
    try:
        return Path.home() / ".cache" / "dcn"
    except RuntimeError:
        return None
