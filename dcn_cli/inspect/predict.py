"""``dcn predict``: score rows with a trained checkpoint, streamed, in input order.

The rows are read chunk by chunk, encoded with the checkpoint's own
vocabularies and statistics, scored by the model and written out before the
next chunk is read, so memory stays flat however many rows there are. Each
output row holds the input row's number (from 0, counting the data rows of
every file in order), the columns the user asked to copy (ids; a label
present in the input is copied too) and ``prediction``: the predicted value
for a regression model, the probability of label 1 for a binary one.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcn_cli import backend
from dcn_cli.data.sources import PARQUET, scoring_table
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path
from dcn_cli.model import checkpoint

ROW = "row"
PREDICTION = "prediction"


@dataclass
class PredictResult:
    rows: int
    out: Path | None  # None: written to standard output
    columns: list[str]


def predict(
    ckpt: str | Path,
    data: str,
    out: str | Path | None = None,
    ids: list[str] | None = None,
    stream=None,
    progress=None,
    force: bool = False,
) -> PredictResult:
    """Score every row of ``data`` with the checkpoint ``ckpt``.

    ``out`` ending in ``.parquet`` (or ``.pq``) writes Parquet, in ``.gz``
    gzip-compressed CSV, any other name CSV, and ``None`` CSV to ``stream``
    (standard output by default). The file lands whole, or not at all; an
    existing one is replaced only with ``force``. ``progress``, when given, is called with the
    number of rows scored so far after each chunk.
    """
    ids = list(ids or [])
    for name in ids:
        if name in (ROW, PREDICTION):
            raise DcnError(f"--id {name}: {name!r} is a column predict writes itself")
    if len(set(ids)) != len(ids):
        raise DcnError(f"--id names a column twice: {', '.join(ids)}")
    if out is not None and Path(out).is_dir():
        raise DcnError(f"{out}: is a directory; name the file to write, e.g. predictions.csv")
    if out is not None and Path(out).exists() and not force:
        raise DcnError(f"{out}: exists; replace it with --force, or choose another --out")
    record = checkpoint.load_record(ckpt)
    config = checkpoint.model_config(record, ckpt)
    label = checkpoint.label(record, ckpt)
    filled = checkpoint.filled(record, ckpt)
    table = scoring_table(data, config.features, config.task, label, ids, filled=filled)
    names = [c.name for c in table.schema.columns]
    # The label is copied when the input has it (unless its name is one predict writes).
    own = (ROW, PREDICTION, *ids)
    copied = ids + ([label] if label in names and label not in own else [])
    model = checkpoint.load_model(ckpt, config)
    batches = _scored(model, config, table, copied, progress)
    columns = [ROW, *copied, PREDICTION]
    if out is None:
        rows = _write_csv(batches, stream or sys.stdout.buffer)
        return PredictResult(rows, None, columns)
    out = Path(out)
    with atomic_path(out) as tmp:
        if out.suffix.lower() in PARQUET:
            rows = _write_parquet(batches, tmp)
        else:
            opener = gzip.open if out.suffix.lower() == ".gz" else open
            with opener(tmp, "wb") as handle:
                rows = _write_csv(batches, handle)
    return PredictResult(rows, out, columns)


def _scored(model, config, table, copied: list[str], progress=None) -> Iterator:
    """One Arrow table per gathered chunk: row number, copied columns, prediction."""
    backend.load()
    import pyarrow as pa

    from dcn_cli.model.factory import split_model
    from dcn_cli.train.engine import EVAL_BATCH, scorer
    from dcn_cli.train.pipeline import Encoder, by_file, scored

    _, core = split_model(model, config)
    encoder = Encoder(config.features)
    start = 0
    for rows, predictions in scored(by_file(table), encoder, scorer(core), EVAL_BATCH):
        yield pa.table(
            {
                ROW: pa.array(np.arange(start, start + rows.num_rows), pa.int64()),
                **{name: rows[name] for name in copied},
                PREDICTION: pa.array(predictions, pa.float32()),
            }
        )
        start += rows.num_rows
        if progress is not None:
            progress(start)
    if start == 0:
        raise DcnError(f"{table.name}: no data rows")


def _write_csv(batches, handle) -> int:
    """Plain CSV (quotes only where a value needs them); numbers in their shortest form."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\n")
    rows = 0
    try:
        for batch in batches:
            if not rows:
                writer.writerow(batch.column_names)
            writer.writerows(zip(*(_texts(column) for column in batch.columns), strict=True))
            rows += batch.num_rows
        text.flush()
    finally:
        text.detach()  # the caller owns the handle
    return rows


def _texts(column) -> list:
    """A column's values as CSV writes them: float32 in its shortest round-trip form."""
    import pyarrow as pa

    if pa.types.is_floating(column.type) and not column.null_count:
        return column.to_numpy().astype(str).tolist()
    return column.to_pylist()  # a missing value is an empty cell


def _write_parquet(batches, path: Path) -> int:
    import pyarrow.parquet as pq

    rows, writer = 0, None
    for batch in batches:
        if writer is None:
            writer = pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch)
        rows += batch.num_rows
    if writer is not None:
        writer.close()
    return rows
