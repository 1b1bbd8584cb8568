"""Sparse embedding gradients: duplicate rows are summed before Adam/Adagrad update."""

import numpy as np
import pytest

from dcn_cli import backend

keras = backend.load()
import tensorflow as tf  # noqa: E402

from dcn_cli.model import optimizers  # noqa: E402


def test_deduplicate_sums_rows_that_share_an_index():
    grad = tf.IndexedSlices(
        tf.constant([[1.0, 2.0], [10.0, 20.0], [3.0, 4.0]]), tf.constant([4, 1, 4]), [5, 2]
    )
    out = optimizers.deduplicate(grad)
    dense = tf.convert_to_tensor(out).numpy()
    np.testing.assert_array_equal(dense, tf.convert_to_tensor(grad).numpy())
    assert sorted(out.indices.numpy().tolist()) == [1, 4]  # one row per index, still sparse
    plain = tf.constant([1.0])
    assert optimizers.deduplicate(plain) is plain


def test_densify_gives_the_dense_gradient():
    grad = tf.IndexedSlices(
        tf.constant([[1.0, 2.0], [10.0, 20.0], [3.0, 4.0]]), tf.constant([4, 1, 4]), [5, 2]
    )
    expected = [[0, 0], [10, 20], [0, 0], [0, 0], [4, 6]]
    np.testing.assert_array_equal(optimizers.densify(grad).numpy(), expected)
    plain = tf.constant([1.0])
    assert optimizers.densify(plain) is plain


def _one_step(optimizer, dense_reference: bool):
    """One update of a 4-row embedding whose batch repeats row 0 many times, misses row 3."""
    keras.utils.set_random_seed(0)
    table = keras.layers.Embedding(4, 2)
    ids = tf.constant([0] * 50 + [1, 2])
    table.build((None,))
    with tf.GradientTape() as tape:
        out = table(ids)
        signs = tf.constant(np.where(np.arange(52) % 2, 1.0, -0.9), tf.float32)[:, None]
        loss = tf.reduce_sum(out * signs)
    (grad,) = tape.gradient(loss, table.trainable_weights)
    assert isinstance(grad, tf.IndexedSlices)
    if dense_reference:
        grad = tf.convert_to_tensor(grad)
    optimizer.apply([grad], table.trainable_weights)
    return table.embeddings.numpy()


@pytest.mark.parametrize("name", ["adam", "adamw", "adagrad"])
def test_sparse_update_equals_the_update_on_the_dense_gradient(name):
    ours = _one_step(optimizers.make(name, 0.1), dense_reference=False)
    stock = {
        "adam": keras.optimizers.Adam,
        "adamw": keras.optimizers.AdamW,
        "adagrad": keras.optimizers.Adagrad,
    }[name]
    reference = _one_step(stock(learning_rate=0.1), dense_reference=True)
    np.testing.assert_allclose(ours, reference, rtol=1e-6, atol=1e-7)


def test_optimizers_round_trip_through_a_saved_model(tmp_path):
    inputs = keras.Input(shape=(), dtype="int64")
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Embedding(4, 2)(inputs)))
    model.compile(optimizer=optimizers.make("adam", 0.01), loss="mse")
    model.fit(np.array([0, 1, 1, 3]), np.ones(4), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.optimizer) is optimizers.Adam
    assert loaded.optimizer.learning_rate.numpy() == pytest.approx(0.01)


def test_weight_decay_reaches_every_optimizer():
    for name in ("adam", "adamw", "adagrad", "sgd"):
        assert optimizers.make(name, 0.01, weight_decay=0.1).weight_decay == pytest.approx(0.1)
    assert optimizers.make("adam", 0.01).weight_decay is None
