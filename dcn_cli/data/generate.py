"""``dcn generate``: write a synthetic dataset directory (CSV shards + schema.json).

The directory is built under a temporary name beside ``out`` and renamed into
place when complete, so an interrupted run never leaves a half-written
dataset where a finished one is expected.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dcn_cli.data import synthetic
from dcn_cli.data.cache import DIR as CACHE_DIR
from dcn_cli.data.schema import Column, Schema, Split
from dcn_cli.errors import DcnError
from dcn_cli.fileio import normal_mode, remove_leftovers, staging_dir
from dcn_cli.settings import DATASET_KINDS, check_given

SHARD_ROWS = 1_000_000
MAX_IN_MEMORY_ROWS = 20_000_000  # mixer and poly: their float64 columns, about 1 GB


def _format(values: np.ndarray) -> list[str]:
    if values.dtype.kind == "f":
        return [repr(v) for v in values.tolist()]  # shortest text that reads back exactly
    return [str(v) for v in values.tolist()]


def _write_shards(
    directory: Path,
    families: dict[str, list[str]],
    chunks: Iterator[dict[str, np.ndarray]],
    shard_rows: int,
    progress=None,
) -> dict[str, list[str]]:
    """CSV shards of ``shard_rows`` rows; each family (file prefix -> its columns) row-aligned.

    ``{"data": [...columns], "truth": ["probability"]}`` writes ``data-00000.csv``
    and ``truth-00000.csv`` side by side, holding the same rows.
    """
    files: dict[str, list[str]] = {prefix: [] for prefix in families}
    handles: dict = {}
    in_shard = written = 0
    try:
        for chunk in chunks:
            columns = {p: [_format(chunk[name]) for name in names] for p, names in families.items()}
            n, i = len(next(iter(chunk.values()))), 0
            while i < n:
                if not handles or in_shard >= shard_rows:
                    for handle in handles.values():
                        handle.close()
                    for prefix, names in families.items():
                        files[prefix].append(f"{prefix}-{len(files[prefix]):05d}.csv")
                        path = directory / files[prefix][-1]
                        handles[prefix] = open(path, "w", encoding="utf-8", newline="")
                        handles[prefix].write(",".join(names) + "\n")
                    in_shard = 0
                take = min(n - i, shard_rows - in_shard)
                for prefix, cols in columns.items():
                    rows = zip(*(col[i : i + take] for col in cols), strict=True)
                    handles[prefix].write("".join(",".join(row) + "\n" for row in rows))
                i += take
                in_shard += take
            written += n
            if progress is not None:
                progress(written)
    finally:
        for handle in handles.values():
            handle.close()
    return files


def _slices(columns: dict[str, np.ndarray], rows: int = 100_000) -> Iterator[dict[str, np.ndarray]]:
    """Columns made in memory, as chunks of ``rows`` rows: text is formatted a chunk at a time."""
    total = len(next(iter(columns.values())))
    for start in range(0, total, rows):
        yield {name: values[start : start + rows] for name, values in columns.items()}


def _only_a_dataset(directory: Path) -> bool:
    """Whether ``directory`` holds nothing but a dataset dcn generate wrote: its
    schema.json (which names the kind it made), the files it lists, a cache. A user's
    own dataset directory (hand-made, or from dcn describe --schema-out) is not one."""
    try:
        schema = Schema.load(directory / "schema.json")
    except DcnError:
        return False
    if schema.source.get("kind") not in DATASET_KINDS:
        return False
    ours = {"schema.json", CACHE_DIR, *schema.files, *schema.truth}
    return all(p.name in ours for p in directory.iterdir())


def _check_out(out: Path) -> None:
    """``out`` may be written: absent, empty, or a dataset dcn generate wrote."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _only_a_dataset(out))):
        raise DcnError(
            f"{out}: exists and holds more than a dataset dcn generate wrote; choose another --out"
        )


def _place(tmp: Path, out: Path) -> None:
    """Move the finished directory ``tmp`` to ``out``, replacing an older dataset there."""
    if out.exists():
        _check_out(out)  # again: it may have changed while the rows were written
        old = staging_dir(out)
        os.replace(out, old / "data")
        os.replace(tmp, out)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out)


def build(
    kind: str,
    rows: int | None = None,
    seed: int | None = None,
    function: str = "f1",
    features: int = 4,
    order: int = 2,
    terms: int = 4,
    noise: float = 0.0,
    vocab_size: int = 1_000_000,
    with_tags: bool = False,
) -> tuple[Schema, Iterator[dict[str, np.ndarray]]]:
    """Dataset ``kind``'s schema (no files yet) and its rows, chunk by chunk."""
    check_given(locals())  # every argument, against the settings table
    rows = rows or 100_000
    if kind != "ctr" and rows > MAX_IN_MEMORY_ROWS:
        raise DcnError(
            f"--rows {rows:,} is too many for {kind}, which is made in memory: "
            f"at most {MAX_IN_MEMORY_ROWS:,} (ctr is written in chunks, at any size)"
        )
    made = {"kind": kind, "rows": rows}

    if kind == "mixer":
        seed = 42 if seed is None else seed
        made.update(
            seed=seed,
            formula="y = 0.1 country + 0.4 bananas + 0.7 cookbooks + "
            "0.1 country*bananas + 3.1 bananas*cookbooks + 0.1 cookbooks^2",
        )
        x, y = synthetic.mixer(rows, seed)
        # Standardised by the model (the tutorial feeds them raw): on [0, 1) country
        # and country^2 are nearly collinear, and raw, Adagrad needs about twice the
        # tutorial's 100 epochs to reach RMSE 1e-3 from some starting weights.
        columns = [Column(n, "numerical") for n in x] + [Column("y", "label")]
        chunks = _slices({**x, "y": y})
        split = Split(kind="ordered", test=0.1)
        crosses = [
            {"features": ["country", "bananas"], "coefficient": 0.1},
            {"features": ["bananas", "cookbooks"], "coefficient": 3.1},
            {"features": ["cookbooks", "cookbooks"], "coefficient": 0.1},
        ]
        task = "regression"
    elif kind == "poly":
        seed = 0 if seed is None else seed
        if function in synthetic.POLY_FUNCTIONS:
            poly_terms = synthetic.POLY_FUNCTIONS[function]
            features = max(features, 1 + max(i for _, mono in poly_terms for i in mono))
        else:
            poly_terms = synthetic.random_polynomial(features, order, terms, seed)
        made.update(seed=seed, function=function, features=features, noise=noise)
        x, y = synthetic.poly(poly_terms, features, rows, seed, noise)
        with np.errstate(over="ignore"):
            in_range = np.isfinite(y.astype(np.float32)).all()
        if not in_range:
            raise DcnError(f"--noise {noise:g} puts labels beyond float32's range")
        columns = [Column(n, "numerical", normalize=False) for n in x] + [Column("y", "label")]
        chunks = _slices({**x, "y": y})
        split = Split(kind="random", test=0.2, seed=seed)
        crosses = synthetic.describe_terms(poly_terms)
        task = "regression"
    else:
        return _ctr(made, rows, 0 if seed is None else seed, vocab_size, with_tags)

    schema = Schema(columns=columns, task=task, split=split, source=made, crosses=crosses)
    return schema, chunks


def _ctr(
    made: dict, rows: int, seed: int, vocab_size: int, with_tags: bool
) -> tuple[Schema, Iterator[dict[str, np.ndarray]]]:
    """``ctr``'s schema and rows: Criteo-shaped clicks with planted crosses."""
    made.update(
        seed=seed,
        vocab_size=vocab_size,
        vocab_sizes=dict(
            zip(synthetic.CTR_CATEGORICAL, synthetic.ctr_vocab_sizes(vocab_size), strict=True)
        ),
    )
    columns = [Column("label", "label")]  # label first, as in Criteo's files
    columns += [Column(n, "numerical") for n in synthetic.CTR_NUMERICAL]
    columns += [Column(n, "categorical", "string") for n in synthetic.CTR_CATEGORICAL]
    if with_tags:
        columns.append(Column(synthetic.TAGS, "categorical", "string", separator="|"))
        made.update(tags=synthetic.TAG_VOCABULARY)
    planted = synthetic.TAG_CROSSES if with_tags else synthetic.CTR_CROSSES
    schema = Schema(
        columns=columns,
        task="binary",
        split=Split(kind="random", test=0.2, seed=seed),
        source=made,
        crosses=[{"features": [a, b], "weight": w} for a, b, w in planted],
    )
    return schema, synthetic.ctr_chunks(rows, seed, vocab_size, tags=with_tags)


def generate(
    kind: str, out: str | Path, shard_rows: int = SHARD_ROWS, progress=None, **options
) -> Schema:
    """Write dataset ``kind`` to directory ``out`` and return its schema.

    ``options`` are those of :func:`build` (rows, seed, function, ...);
    ``progress``, when given, is called with the rows written so far.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DcnError(f"{out}: exists and is not a directory")
    _check_out(out)  # before any row is made
    schema, chunks = build(kind, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(out)  # what a killed generate left
    tmp = staging_dir(out)
    try:
        families = {"data": [c.name for c in schema.columns]}
        if kind == "ctr":
            families["truth"] = [synthetic.TRUTH_COLUMN]
        files = _write_shards(tmp, families, chunks, shard_rows, progress)
        schema.files, schema.truth = files["data"], files.get("truth", [])
        schema.save(tmp / "schema.json")
        os.chmod(tmp, normal_mode(tmp))  # mkdtemp's 0700 would hide the data from others
        _place(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return schema
