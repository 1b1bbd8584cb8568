"""The ceiling on quality: Bayes-optimal figures from each row's true probability.

``dcn generate ctr`` writes, beside each data file, a side file with the
probability its hidden logistic model gave each row (``schema.truth``).
Predicting exactly that probability is the best any model can do, so its AUC
and log loss on the test split are the ceiling a trained model is measured
against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from dcn_cli.errors import DcnError
from dcn_cli.prepare import TEST, assign_splits
from dcn_cli.table import Table

COLUMN = "probability"


def read_truth(table: Table) -> np.ndarray:
    """Every row's true probability, in row order, from the schema's side files."""
    parts = []
    directory = Path(table.name)  # the dataset directory: its schema.json names the files
    for name in table.schema.truth:
        path = Path(directory, name)
        if not path.is_file():
            raise DcnError(f"{path}: no such file (schema.json lists it under truth)")
        convert = pa_csv.ConvertOptions(column_types={COLUMN: pa.float64()})
        try:
            column = pa_csv.read_csv(path, convert_options=convert).column(COLUMN)
            values = column.to_numpy()
        except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as err:
            raise DcnError(
                f"{path}: not a truth file of {COLUMN!r} numbers ({_first_line(err)})"
            ) from None
        if not ((values >= 0) & (values <= 1)).all():
            raise DcnError(f"{path}: a {COLUMN!r} is not between 0 and 1")
        parts.append(values)
    return np.concatenate(parts)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_labels(table: Table) -> np.ndarray:
    return np.concatenate(
        [chunk[table.schema.label].to_numpy() for chunk in table.chunks()]
    ).astype(np.float64)


def exact_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties counted half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(average, ends - starts)
    positives = labels == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def logloss(labels: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def bayes_optimal(table: Table, validation: float) -> dict[str, float]:
    """The test split's AUC and log loss of the true probabilities."""
    truth, labels = read_truth(table), read_labels(table)
    if len(truth) != len(labels):
        raise DcnError(
            f"{table.name}: the truth files hold {len(truth)} rows, the data {len(labels)}"
        )
    codes = assign_splits(np.arange(len(labels)), table.schema, validation, len(labels))
    test = codes == TEST
    return {
        "bayes_auc": exact_auc(labels[test], truth[test]),
        "bayes_logloss": logloss(labels[test], truth[test]),
    }
