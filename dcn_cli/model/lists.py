"""Keras layers of a list-valued feature: split and look up, then embed and pool.

A list feature arrives as one string per row, its elements joined by a
separator (``"Action|Comedy"``; an empty string is an empty list), the form
a CSV cell and ``dcn export``'s serving signature take. :class:`ListLookup`
splits it inside the model and gives each row's first ``length`` element ids,
``-1`` past the end of its list; :class:`PooledEmbedding` embeds the ids and
pools them (mean or sum; an empty list pools to zeros) into one field of the
cross network's input, as wide as any categorical feature's embedding.
``dcn_cli.train.pipeline.Encoder`` computes the same ids outside the model.

:class:`ListLookup` uses TensorFlow's string ops (dcn runs Keras on
TensorFlow); :class:`PooledEmbedding` uses ``keras.ops`` only.
"""

from __future__ import annotations

import keras
from keras import ops

from dcn_cli.model.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class ListLookup(keras.layers.Layer):
    """Strings of ``separator``-joined elements -> ``(batch, length)`` int64 ids.

    Each element is looked up in ``vocabulary`` (0: out of vocabulary, i + 1:
    the vocabulary's i-th, as ``StringLookup`` with one OOV index gives) or,
    with ``hash_buckets``, hashed as ``Hashing`` hashes. Empty elements are
    dropped; elements past ``length`` are cut; the slots after a row's last
    element hold -1.

    Args:
        separator: what joins a row's elements (not empty).
        length: ids per row.
        vocabulary: the elements with their own ids (default None: hashing).
        hash_buckets: buckets to hash into (default None: the vocabulary).
        num_oov: out-of-vocabulary ids (default 1).
    """

    def __init__(
        self,
        separator: str,
        length: int,
        vocabulary: list[str] | None = None,
        hash_buckets: int | None = None,
        num_oov: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not separator:
            raise ValueError(f"`separator` must not be empty. Received: separator={separator!r}")
        if length < 1:
            raise ValueError(f"`length` must be positive. Received: length={length}")
        if (vocabulary is None) == (hash_buckets is None):
            raise ValueError("Give exactly one of `vocabulary` and `hash_buckets`.")
        self.separator, self.length = separator, length
        self.vocabulary, self.hash_buckets, self.num_oov = vocabulary, hash_buckets, num_oov
        if hash_buckets is not None:
            self.lookup = keras.layers.Hashing(num_bins=hash_buckets)
        else:
            self.lookup = keras.layers.StringLookup(
                vocabulary=list(vocabulary or []), num_oov_indices=num_oov, mask_token=None
            )

    def build(self, input_shape):
        self.built = True  # the lookup holds its vocabulary already

    def call(self, inputs):
        import tensorflow as tf

        parts = tf.strings.split(tf.reshape(inputs, [-1]), self.separator)
        parts = tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)
        cells = parts.to_tensor(default_value="", shape=[None, self.length])
        ids = tf.cast(self.lookup(cells), tf.int64)
        return tf.where(cells == "", tf.constant(-1, tf.int64), ids)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor((inputs.shape[0], self.length), dtype="int64")

    def get_config(self):
        return {
            **super().get_config(),
            "separator": self.separator,
            "length": self.length,
            "vocabulary": self.vocabulary,
            "hash_buckets": self.hash_buckets,
            "num_oov": self.num_oov,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class PooledEmbedding(keras.layers.Layer):
    """``(batch, length)`` ids (-1: no element) -> ``(batch, output_dim)``.

    ``mean``: the mean of the elements' embeddings; ``sum``: their sum. A row
    without elements pools to zeros.

    Args:
        input_dim: rows of the embedding table.
        output_dim: embedding width.
        pooling: ``"mean"`` (default) or ``"sum"``.
        embeddings_initializer: default ``"uniform"``, as ``keras.layers.Embedding``.
        embeddings_regularizer: default None.
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        pooling: str = "mean",
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if pooling not in ("mean", "sum"):
            raise ValueError(f"`pooling` must be mean or sum. Received: pooling={pooling!r}")
        if input_dim < 1 or output_dim < 1:
            raise ValueError(
                f"`input_dim` and `output_dim` must be positive. Received: input_dim="
                f"{input_dim}, output_dim={output_dim}"
            )
        self.input_dim, self.output_dim, self.pooling = input_dim, output_dim, pooling
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )

    def call(self, ids):
        ids = ops.cast(ids, "int64")
        present = ops.cast(ops.greater_equal(ids, 0), self.compute_dtype)
        vectors = ops.take(self.embeddings, ops.maximum(ids, 0), axis=0)
        total = ops.sum(vectors * ops.expand_dims(present, -1), axis=1)
        if self.pooling == "sum":
            return total
        return total / ops.maximum(ops.sum(present, axis=1, keepdims=True), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "pooling": self.pooling,
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
        }
