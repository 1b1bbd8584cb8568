"""The TensorFlow Recommenders DCN tutorial's MovieLens code, as the speed reference.

    TF_USE_LEGACY_KERAS=1 PYTHONPATH=.bench-deps python benchmarks/tfrs_tutorial.py \
        ML100K_DIR {train,compare}

Needs ``tensorflow-recommenders`` and ``tf-keras`` (the tutorial is tf.keras 2
code), installed beside the venv, not into it:

    .venv/bin/pip install --target .bench-deps --no-deps "tf-keras~=2.21.0" \
        tensorflow-recommenders

The code is the tutorial's (https://www.tensorflow.org/recommenders/examples/dcn,
"Deep & Cross Network (DCN)", MovieLens 100K part), with one change: the
ratings come from the local MovieLens 100K files through dcn's reader instead
of ``tfds.load``, which needs the internet. ``train`` runs one stacked DCN
(``run_models(True, [192, 192], num_runs=1)``); ``compare`` runs the
tutorial's DCN, low-rank DCN and DNN, 5 runs each. It prints one JSON line:
the seconds from loading the data to the last evaluation, and the RMSEs.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from dcn_cli.data.sources import open_table  # noqa: E402


def ratings_dataset(path: str) -> tf.data.Dataset:
    """MovieLens 100K ratings with the features tfds' movielens/100k-ratings gives."""
    (chunk,) = list(open_table(path).chunks())
    columns = {
        "movie_id": chunk["movie_id"].astype(str),
        "user_id": chunk["user_id"].astype(str),
        "user_rating": chunk["user_rating"],
        "user_gender": chunk["user_gender"],
        "user_zip_code": chunk["user_zip_code"].astype(str),
        "user_occupation_text": chunk["user_occupation_text"].astype(str),
        "bucketized_user_age": chunk["bucketized_user_age"],
    }
    return tf.data.Dataset.from_tensor_slices(columns)


def main(path: str, job: str) -> None:
    start = time.perf_counter()
    ratings = ratings_dataset(path)

    # From here on: the tutorial's code.
    shuffled = ratings.shuffle(100_000, seed=42, reshuffle_each_iteration=False)
    train = shuffled.take(80_000)
    test = shuffled.skip(80_000).take(20_000)

    feature_names = [
        "movie_id",
        "user_id",
        "user_gender",
        "user_zip_code",
        "user_occupation_text",
        "bucketized_user_age",
    ]
    vocabularies = {}
    for feature_name in feature_names:
        vocab = ratings.batch(1_000_000).map(lambda x, name=feature_name: x[name])
        vocabularies[feature_name] = np.unique(np.concatenate(list(vocab)))

    class DCN(tfrs.Model):
        def __init__(self, use_cross_layer, deep_layer_sizes, projection_dim=None):
            super().__init__()
            self.embedding_dimension = 32
            str_features = ["movie_id", "user_id", "user_zip_code", "user_occupation_text"]
            int_features = ["user_gender", "bucketized_user_age"]
            self._all_features = str_features + int_features
            self._embeddings = {}
            for feature_name in str_features:
                vocabulary = vocabularies[feature_name]
                self._embeddings[feature_name] = tf.keras.Sequential(
                    [
                        tf.keras.layers.StringLookup(vocabulary=vocabulary, mask_token=None),
                        tf.keras.layers.Embedding(len(vocabulary) + 1, self.embedding_dimension),
                    ]
                )
            for feature_name in int_features:
                vocabulary = vocabularies[feature_name]
                self._embeddings[feature_name] = tf.keras.Sequential(
                    [
                        tf.keras.layers.IntegerLookup(vocabulary=vocabulary, mask_token=None),
                        tf.keras.layers.Embedding(len(vocabulary) + 1, self.embedding_dimension),
                    ]
                )
            if use_cross_layer:
                self._cross_layer = tfrs.layers.dcn.Cross(
                    projection_dim=projection_dim, kernel_initializer="glorot_uniform"
                )
            else:
                self._cross_layer = None
            self._deep_layers = [
                tf.keras.layers.Dense(layer_size, activation="relu")
                for layer_size in deep_layer_sizes
            ]
            self._logit_layer = tf.keras.layers.Dense(1)
            self.task = tfrs.tasks.Ranking(
                loss=tf.keras.losses.MeanSquaredError(),
                metrics=[tf.keras.metrics.RootMeanSquaredError("RMSE")],
            )

        def call(self, features):
            embeddings = []
            for feature_name in self._all_features:
                embedding_fn = self._embeddings[feature_name]
                embeddings.append(embedding_fn(features[feature_name]))
            x = tf.concat(embeddings, axis=1)
            if self._cross_layer is not None:
                x = self._cross_layer(x)
            for deep_layer in self._deep_layers:
                x = deep_layer(x)
            return self._logit_layer(x)

        def compute_loss(self, features, training=False):
            labels = features.pop("user_rating")
            scores = self(features)
            return self.task(labels=labels, predictions=scores)

    cached_train = train.shuffle(100_000).batch(8192).cache()
    cached_test = test.batch(4096).cache()
    epochs = 8
    learning_rate = 0.01

    def run_models(use_cross_layer, deep_layer_sizes, projection_dim=None, num_runs=5):
        rmses = []
        for _ in range(num_runs):
            model = DCN(
                use_cross_layer=use_cross_layer,
                deep_layer_sizes=deep_layer_sizes,
                projection_dim=projection_dim,
            )
            model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate))
            model.fit(cached_train, epochs=epochs, verbose=False)
            metrics = model.evaluate(cached_test, return_dict=True, verbose=False)
            rmses.append(metrics["RMSE"])
        return rmses

    if job == "train":
        results = {"dcn": run_models(True, [192, 192], num_runs=1)}
    else:
        results = {
            "dcn": run_models(True, [192, 192]),
            "dcn-lr": run_models(True, [192, 192], projection_dim=20),
            "dnn": run_models(False, [192, 192, 192]),
        }
    print(json.dumps({"seconds": time.perf_counter() - start, "rmse": results}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
