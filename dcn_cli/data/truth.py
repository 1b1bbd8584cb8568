"""The ceiling on quality: Bayes-optimal figures from each row's true probability.

``dcn generate ctr`` writes, beside each data file, a side file with the
probability its hidden logistic model gave each row (``schema.truth``).
Predicting exactly that probability is the best any model can do, so its AUC
and log loss on the test split are the ceiling a trained model is measured
against.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from dcn_cli.data.splits import TEST, assign_splits
from dcn_cli.data.table import CHUNK_ROWS, Table
from dcn_cli.errors import DcnError, first_line

COLUMN = "probability"
BINS = 2**20  # probability bins of the streamed AUC: exact to about 1e-6


def _column(path: Path, name: str, delimiter: str = ",") -> Iterator[np.ndarray]:
    """One column of a CSV file (plain or gzip) or a Parquet file, a block at a time, as
    float64; only that column is parsed."""
    if path.suffix in (".parquet", ".pq"):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=CHUNK_ROWS, columns=[name]):
            yield batch.column(0).to_numpy(zero_copy_only=False).astype(np.float64)
        return
    convert = pa_csv.ConvertOptions(include_columns=[name], column_types={name: pa.float64()})
    parse = pa_csv.ParseOptions(delimiter=delimiter)
    with pa_csv.open_csv(path, parse_options=parse, convert_options=convert) as reader:
        for batch in reader:
            yield batch.column(0).to_numpy(zero_copy_only=False)


def _truth(path: Path) -> Iterator[np.ndarray]:
    """The true probabilities of one side file, checked, a block at a time."""
    if not path.is_file():
        raise DcnError(f"{path}: no such file (schema.json lists it under truth)")
    try:
        for values in _column(path, COLUMN):
            if not ((values >= 0) & (values <= 1)).all():
                raise DcnError(f"{path}: a {COLUMN!r} is not between 0 and 1")
            yield values
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as err:
        raise DcnError(
            f"{path}: not a truth file of {COLUMN!r} numbers ({first_line(err)})"
        ) from None


def _labels(table: Table, path: Path) -> Iterator[np.ndarray]:
    try:
        yield from _column(path, table.schema.label, table.schema.delimiter)
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as err:
        raise DcnError(f"{path}: cannot read its labels ({first_line(err)})") from None


def logloss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


class _Ceiling:
    """Running AUC and log loss of probabilities against labels, in fixed memory.

    The probabilities are counted in :data:`BINS` equal bins per class; pairs
    in one bin count as ties (half), so the AUC is exact to about 1 / BINS.
    """

    def __init__(self) -> None:
        self.positives = np.zeros(BINS, np.int64)
        self.negatives = np.zeros(BINS, np.int64)
        self.loss = 0.0

    def add(self, labels: np.ndarray, p: np.ndarray) -> None:
        if not len(p):
            return  # a block without test rows (an ordered split has many)
        bins = np.minimum((p * BINS).astype(np.int64), BINS - 1)
        clicked = labels == 1
        self.positives += np.bincount(bins[clicked], minlength=BINS)
        self.negatives += np.bincount(bins[~clicked], minlength=BINS)
        self.loss += logloss(labels, p) * len(p)

    def figures(self) -> dict[str, float]:
        n_pos, n_neg = int(self.positives.sum()), int(self.negatives.sum())
        below = np.cumsum(self.negatives) - self.negatives  # negatives in lower bins
        pairs = float(np.dot(self.positives, below) + 0.5 * np.dot(self.positives, self.negatives))
        return {
            "bayes_auc": pairs / (n_pos * n_neg) if n_pos and n_neg else float("nan"),
            "bayes_logloss": self.loss / max(n_pos + n_neg, 1),
        }


def bayes_optimal(table: Table, validation: float) -> dict[str, float]:
    """The test split's AUC and log loss of the true probabilities.

    The labels and the side files stream through a block at a time, in flat
    memory whatever the number of rows.
    """
    files = [Path(table.name, name) for name in table.schema.truth]
    total = 0
    if table.schema.split.kind == "ordered":  # placing the first row needs the count
        total = sum(len(values) for path in files for values in _truth(path))
    ceiling, start = _Ceiling(), 0
    for data, side in zip(table.files, files, strict=True):
        carry = np.empty(0)
        rows = _labels(table, data)
        for p in _truth(side):
            while len(carry) < len(p):
                more = next(rows, None)
                if more is None:
                    raise DcnError(f"{side}: holds more rows than {data}")
                carry = np.concatenate([carry, more])
            y, carry = carry[: len(p)], carry[len(p) :]
            test = assign_splits(np.arange(start, start + len(p)), table.schema, validation, total)
            ceiling.add(y[test == TEST], p[test == TEST])
            start += len(p)
        if len(carry) or next(rows, None) is not None:
            raise DcnError(f"{side}: holds fewer rows than {data}")
    return ceiling.figures()
