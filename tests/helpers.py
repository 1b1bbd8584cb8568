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


def clicks(directory, rows: int, shard_rows: int | None = None, seed: int = 0):
    """A small click dataset (a directory with schema.json): two string categories, an
    integer category, two numbers and a binary label that depends on all of them.

    What tests train on when the engine, checkpoints or processes are what they test:
    ``dcn generate ctr``'s 39 columns cost about 5 s of tracing per model here, these
    five about 1 s.
    """
    from pathlib import Path

    from dcn_cli.data.schema import Column, Schema, Split

    directory = Path(directory)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    user, item, hour = (
        rng.integers(0, 40, rows),
        rng.integers(0, 60, rows),
        rng.integers(0, 24, rows),
    )
    price, age = rng.lognormal(2.0, 1.0, rows), rng.uniform(18, 70, rows)
    logit = np.sin(user) + np.cos(item * hour) - 0.3 * np.log(price) + 0.02 * (age - 40)
    clicked = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    shard_rows = shard_rows or rows
    files = []
    for start in range(0, rows, shard_rows):
        files.append(f"data-{len(files):05d}.csv")
        with open(directory / files[-1], "w") as handle:
            handle.write("clicked,user,item,hour,price,age\n")
            for i in range(start, min(start + shard_rows, rows)):
                handle.write(
                    f"{clicked[i]},u{user[i]},i{item[i]},{hour[i]},{price[i]:.3f},{age[i]:.1f}\n"
                )
    columns = [
        Column("clicked", "label"),
        Column("user", "categorical", "string"),
        Column("item", "categorical", "string"),
        Column("hour", "categorical", "int64"),
        Column("price", "numerical"),
        Column("age", "numerical"),
    ]
    schema = Schema(columns=columns, task="binary", split=Split(kind="random", test=0.2, seed=0))
    schema.files = files
    schema.save(directory / "schema.json")
    return directory


def set_role(directory, column: str, role: str) -> None:
    """Give ``column`` of the dataset in ``directory`` another role in its schema.json."""
    import json
    from pathlib import Path

    path = Path(directory) / "schema.json"
    schema = json.loads(path.read_text())
    for entry in schema["columns"]:
        if entry["name"] == column:
            entry["role"] = role
    path.write_text(json.dumps(schema))
