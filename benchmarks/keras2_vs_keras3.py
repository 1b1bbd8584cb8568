"""Why does a Keras 3 port of the DCN tutorial score worse than the Keras 2 original?

    python benchmarks/keras2_vs_keras3.py ML100K_DIR [--runs 5] [--variant NAME]
    TF_USE_LEGACY_KERAS=1 python benchmarks/keras2_vs_keras3.py ML100K_DIR ...

The same functional model (the tutorial's: six 32-wide embeddings, one
TFRS-style cross layer, Dense 192-192, Dense 1; Adam 0.01, batch 8192, 8
epochs) trains on the tutorial's split and cached batches, under Keras 3 or,
with TF_USE_LEGACY_KERAS=1 (needs the tf-keras package), under Keras 2.
``--variant`` switches one suspected difference at a time and prints the mean
test RMSE over ``--runs`` seeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from dcn_cli.data.sources import open_table  # noqa: E402

keras = tf.keras
STRING = ["movie_id", "user_id", "user_zip_code", "user_occupation_text"]
INTEGER = ["user_gender", "bucketized_user_age"]


def load(path: str):
    (chunk,) = list(open_table(path).chunks())
    rng = np.random.RandomState(42)  # the tutorial shuffles once with seed 42, then 80/20
    order = rng.permutation(len(chunk["user_rating"]))
    rows = {k: v[order] for k, v in chunk.items()}
    train = {k: v[:80_000] for k, v in rows.items()}
    test = {k: v[80_000:] for k, v in rows.items()}
    vocab = {k: np.unique(rows[k]) for k in STRING + INTEGER}  # from all rows, as the tutorial
    return train, test, vocab


def build(vocab, variant: str, arch: str):
    inputs, parts = {}, []
    for name in STRING + INTEGER:
        dtype = "string" if name in STRING else "int64"
        inputs[name] = keras.Input(shape=(), dtype=dtype, name=name)
        lookup_cls = keras.layers.StringLookup if name in STRING else keras.layers.IntegerLookup
        lookup = lookup_cls(vocabulary=list(vocab[name]), mask_token=None)
        parts.append(keras.layers.Embedding(len(vocab[name]) + 1, 32)(lookup(inputs[name])))
    x0 = keras.layers.Concatenate()(parts)
    x = x0
    if arch == "dcn":
        dense = keras.layers.Dense(192, kernel_initializer="truncated_normal")
        x = x0 * dense(x0) + x0
    for _ in range(2 if arch == "dcn" else 3):
        x = keras.layers.Dense(192, activation="relu")(x)
    out = keras.layers.Dense(1)(x)
    return keras.Model(inputs, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--arch", choices=["dcn", "dnn"], default="dcn")
    parser.add_argument("--variant", default="plain")
    args = parser.parse_args()
    train, test, vocab = load(args.data)
    label_shape = (-1,) if args.variant != "label2d" else (-1, 1)
    features = lambda d: {k: d[k] for k in STRING + INTEGER}  # noqa: E731
    test_ds = (
        tf.data.Dataset.from_tensor_slices(
            (features(test), test["user_rating"].reshape(label_shape))
        )
        .batch(4096)
        .cache()
    )
    rmses = []
    for seed in range(args.runs):
        keras.utils.set_random_seed(seed)
        train_ds = (
            tf.data.Dataset.from_tensor_slices(
                (features(train), train["user_rating"].reshape(label_shape))
            )
            .shuffle(100_000, seed=seed)
            .batch(8192)
            .cache()
        )
        model = build(vocab, args.variant, args.arch)
        if args.variant == "dedup":  # duplicate sparse-gradient rows summed first
            from dcn_cli.model.optimizers import Adam

            optimizer = Adam(0.01)
        else:
            optimizer = keras.optimizers.Adam(0.01)
        model.compile(
            optimizer=optimizer,
            loss=keras.losses.MeanSquaredError(),
            metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
        )
        start = time.perf_counter()
        model.fit(train_ds, epochs=8, verbose=0)
        rmse = model.evaluate(test_ds, verbose=0, return_dict=True)["rmse"]
        rmses.append(rmse)
        print(f"seed {seed}: rmse {rmse:.4f} ({time.perf_counter() - start:.1f} s)", flush=True)
    version = getattr(keras, "__version__", "2 (tf_keras)")
    print(
        f"keras {version} arch {args.arch} variant {args.variant}: "
        f"mean {np.mean(rmses):.4f} std {np.std(rmses):.4f}"
    )


if __name__ == "__main__":
    main()
