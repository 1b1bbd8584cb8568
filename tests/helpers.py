"""What several test modules share: checks and reference computations (test modules do
not import each other)."""

import numpy as np

from dcn_cli.errors import DcnError


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


def dataset(prepared, split: str, batch_size: int, shuffle_seed: int | None = None):
    """A ``tf.data.Dataset`` of ``(raw features, label)`` batches of one split.

    What Keras' own ``fit`` and ``predict`` take (tests and ``explain`` use
    it); training goes through :mod:`dcn_cli.train.pipeline`, which encodes first.
    With ``shuffle_seed`` each epoch is a fresh permutation of the rows,
    drawn as the engine draws its in-memory epochs, so ``model.fit`` on it
    sees the engine's batches.
    """
    from dcn_cli import backend

    backend.load()
    import tensorflow as tf

    if prepared.rows[split] == 0:
        raise DcnError(f"{prepared.table.name}: the {split} split is empty")
    data = prepared.arrays(split)
    n = len(data[prepared.label])
    columns = {f.name: tf.constant(data[f.name]) for f in prepared.features}
    # Labels as (n, 1), the model's output shape: Keras 3 losses insist on equal ranks.
    labels = tf.constant(data[prepared.label].reshape(-1, 1))
    if shuffle_seed is None:
        return tf.data.Dataset.from_tensor_slices((columns, labels)).batch(batch_size)
    rng = np.random.default_rng(shuffle_seed)
    batches = -(-n // batch_size)

    def permutation():
        yield rng.permutation(n)

    def cut(order):
        starts = tf.data.Dataset.range(batches)
        return starts.map(lambda b: order[b * batch_size : tf.minimum((b + 1) * batch_size, n)])

    ds = tf.data.Dataset.from_generator(
        permutation, output_signature=tf.TensorSpec((n,), tf.int64)
    ).flat_map(cut)
    ds = ds.apply(tf.data.experimental.assert_cardinality(batches))
    return ds.map(
        lambda rows: (
            {k: tf.gather(c, rows) for k, c in columns.items()},
            tf.gather(labels, rows),
        )
    )
