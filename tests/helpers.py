"""What several test modules share: checks and reference computations (test modules do
not import each other)."""

import numpy as np


def assert_same_weights(got, want, rtol=1e-5):
    """Each weight tensor of ``got`` equal to ``want``'s to ``rtol`` relative to its norm.

    Not element by element: summing gradients in another order changes them
    by float rounding, and Adam divides by the root of the squared gradient,
    so an element whose gradient is nearly 0 may move by 1e-4 of itself
    while the tensor agrees to 1e-7.
    """
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert np.linalg.norm(a - b) <= rtol * np.linalg.norm(b) + 1e-12, np.abs(a - b).max()


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
