"""The preparation cache: what a pass learnt, kept as JSON beside the data.

Keyed by the files' paths, sizes and modification times and by every option
that changes what the pass learns, so a second run on the same data reads the
cache instead of the rows. It lives in ``.dcn-cache/`` beside the data files,
or in the user's cache directory (``DCN_CACHE_DIR``) when the data's directory
is read-only; without either there is no cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcn_cli import environment
from dcn_cli.data.features import FeatureSpec
from dcn_cli.data.splits import SPLITS
from dcn_cli.data.table import Table
from dcn_cli.errors import DcnError
from dcn_cli.fileio import read_json, write_json

FORMAT = 1
DIR = ".dcn-cache"  # beside the data files


@dataclass
class Learnt:
    """What a preparation pass learns and the cache keeps."""

    features: list[FeatureSpec]
    rows: dict[str, int]  # per split
    shard_rows: list[list[int]]  # per shard: its train, validation and test rows


def key(table: Table, options: dict[str, Any]) -> str:
    """A digest of the files (paths, sizes, modification times) and the options that matter."""
    files = []
    for path in table.files:
        stat = path.stat()
        files.append([str(path.resolve()), stat.st_size, stat.st_mtime_ns])
    settings = {
        "format": FORMAT,
        "files": files,
        "schema": {**table.schema.to_dict(), "files": None, "source": None},
        **options,
    }
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def path_for(table: Table, options: dict[str, Any]) -> Path | None:
    """The cache file for ``table`` and ``options``: beside the data, else the user's cache."""
    if not table.files:
        return None  # made in memory, or read through a library: nothing to key on
    name = f"prepared-{key(table, options)}.json"
    beside = table.files[0].parent / DIR
    if (beside / name).is_file() or os.access(table.files[0].parent, os.W_OK):
        return beside / name
    elsewhere = environment.cache_dir()
    return elsewhere / name if elsewhere is not None else None


def load(path: Path, table: Table) -> Learnt | None:
    """What the cache at ``path`` holds for ``table``; None when it is missing, damaged
    or made for other files."""
    if not path.is_file():
        return None
    try:
        record = read_json(path)
        features = [FeatureSpec(**f) for f in record["features"]]
        for feature in features:
            feature.validate()
        rows = {split: int(record["rows"][split]) for split in SPLITS}
        shard_rows = [[int(n) for n in r] for r in record["shard_rows"]]
    except (DcnError, KeyError, TypeError, ValueError):
        return None  # damaged: learn again, and write it anew
    if len(shard_rows) != len(table.shards) or [f.name for f in features] != [
        c.name for c in table.schema.features
    ]:
        return None
    return Learnt(features, rows, shard_rows)


def save(path: Path, table: Table, learnt: Learnt) -> None:
    """Write what the pass learnt; a cache that cannot be written is no error."""
    record = {
        "format": FORMAT,
        "data": table.name,
        "rows": learnt.rows,
        "shard_rows": learnt.shard_rows,
        "features": [dataclasses.asdict(f) for f in learnt.features],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, record)
    except (OSError, DcnError):
        pass  # a cache that cannot be written costs the next run a pass, nothing more
