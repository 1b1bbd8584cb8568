"""The training engine: it trains as model.fit does, on one device or several."""

import functools

import numpy as np
import pytest
from helpers import assert_same_weights, clicks, dataset

from dcn_cli import backend
from dcn_cli.data.prepare import DataOptions, prepare
from dcn_cli.data.sources import open_table
from dcn_cli.model.config import ModelConfig
from dcn_cli.model.factory import build_model, split_model
from dcn_cli.model.optimizers import make as make_optimizer
from dcn_cli.train.engine import Engine, compile_model
from dcn_cli.train.metrics import evaluate_batches

SAMPLES: dict[str, str] = {}  # sample name -> its copy's path (the fixture below)
# No dropout: the engine pads the last batch of an epoch, so its masks would differ.
MODEL = {"arch": "stacked", "cross_layers": 1, "deep_layers": [16, 16], "dropout": 0.0}


@pytest.fixture(autouse=True, scope="module")
def _small_samples(samples, tmp_path_factory):
    """Click rows (string and integer categories, numbers, a binary label: what the engine
    does with them does not depend on how many columns there are), and a copy of the mixer."""
    ctr = clicks(tmp_path_factory.mktemp("engine") / "clicks", rows=1500)
    SAMPLES.update(ctr=str(ctr), mixer=str(samples / "sample_data/mixer"))


def _setup(sample, memory_budget=None, seed=0, hash_buckets=None, strategy=None, optimizer="adam"):
    import tensorflow as tf

    keras = backend.load()
    options = DataOptions(hash_buckets=hash_buckets or {})
    if memory_budget is not None:
        options.memory_budget = memory_budget
    prepared = prepare(open_table(SAMPLES[sample]), options)
    config = ModelConfig(features=prepared.features, task=prepared.task, embedding_l2=1e-3, **MODEL)
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(seed)
        model = build_model(config)
        compile_model(model, config.task, make_optimizer(optimizer, 0.01))
    return keras, prepared, config, model


@functools.cache
def _mirrored():
    """One MirroredStrategy for the session: a second one in the same process reuses the
    first one's collective keys, and TensorFlow then mixes up their shapes."""
    import tensorflow as tf

    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) == 2  # conftest splits the CPU
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _weights(model):
    return [w.numpy() for w in model.weights]


def _fit_with_keras(sample, memory_budget=None, optimizer="adam"):
    """model.fit on the engine's batches: the reference.

    Rows in memory: the whole model on raw values, in the engine's order.
    Streamed rows: the model's core on the streamed pipeline's encoded batches
    (the encoding itself is checked against the model's layers in test_readers).
    """
    from dcn_cli.train.pipeline import Encoder, streamed_batches

    keras, prepared, config, fitted = _setup(sample, memory_budget, optimizer=optimizer)
    if prepared.in_memory:
        batches = dataset(prepared, "train", 256, shuffle_seed=3)
        fitted.fit(batches, epochs=2, verbose=0, shuffle=False)
        return fitted
    _, core = split_model(fitted, config)
    compile_model(core, config.task, make_optimizer(optimizer, 0.01))
    encoder = Encoder(config.features)
    epochs = [
        streamed_batches(prepared, encoder, "train", 256, seed=3, epoch=e).map(
            lambda x, y, w: (x, y)
        )
        for e in (0, 1)
    ]
    import tensorflow as tf

    batches = -(-prepared.rows["train"] // 256)
    both = epochs[0].concatenate(epochs[1])
    both = both.apply(tf.data.experimental.assert_cardinality(2 * batches))
    core.fit(both, epochs=1, verbose=0, shuffle=False)
    return fitted


@pytest.mark.parametrize(
    "sample, memory_budget, optimizer",
    [("ctr", None, "adam"), ("mixer", None, "adagrad"), ("ctr", 0, "adagrad")],
)
def test_engine_trains_as_model_fit_does(sample, memory_budget, optimizer):
    fitted = _fit_with_keras(sample, memory_budget, optimizer)
    keras, prepared, config, model = _setup(sample, memory_budget, optimizer=optimizer)
    assert prepared.in_memory == (memory_budget is None)
    before = _weights(model)
    engine = Engine(model, config, prepared, 256)
    engine.fit(2, seed=3)

    after = _weights(model)  # the full model learnt, whether the core or itself trained
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    for got, want in zip(after, _weights(fitted), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert int(model.optimizer.iterations.numpy()) == 2 * engine.steps_per_epoch()
    metrics = engine.evaluate("test")
    expected = evaluate_batches(
        lambda x: fitted(x, training=False), config.task, dataset(prepared, "test", 8192)
    )
    for name in ("auc", "logloss") if sample == "ctr" else ("rmse", "mae"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-4)


@pytest.mark.parametrize(
    "optimizer, memory_budget",
    # Streamed (budget 0) trains as long again; the slow tier runs it (.ci/run).
    [("adam", None), ("adagrad", None), pytest.param("adam", 0, marks=pytest.mark.slow)],
)
def test_mirrored_over_two_devices_trains_as_one_device(optimizer, memory_budget):

    strategy = _mirrored()
    results = []
    for chosen in (None, strategy):
        keras, prepared, config, model = _setup(
            "ctr", memory_budget, strategy=chosen, optimizer=optimizer
        )
        engine = Engine(model, config, prepared, 256, strategy=chosen)
        assert engine.replicas == (2 if chosen else 1)
        engine.fit(2, seed=3)
        results.append(_weights(model))
    assert_same_weights(results[1], results[0])


def test_a_diverging_run_stops_with_an_error():
    from dcn_cli.errors import DcnError

    keras, prepared, config, model = _setup("mixer")
    model.optimizer.learning_rate.assign(1e30)
    engine = Engine(model, config, prepared, 256)
    with pytest.raises(DcnError, match="training diverged"):
        engine.fit(3, seed=0)


def test_split_model_shares_weights_and_reproduces_outputs():
    import tensorflow as tf

    keras, prepared, config, model = _setup("ctr", hash_buckets={"user": 50})
    assert config.features[0].name == "user" and config.features[0].hash_buckets == 50
    encoder, core = split_model(model, config)
    test = prepared.arrays("test")
    raw = {f.name: tf.constant(test[f.name][:64]) for f in config.features}
    encoded = encoder(raw)
    kinds = {f.kind: t.dtype for f, t in zip(config.features, encoded, strict=True)}
    assert kinds == {"categorical": tf.int64, "numerical": tf.float32}
    np.testing.assert_array_equal(core(encoded).numpy(), model(raw).numpy())
    assert {id(w) for w in core.weights} <= {id(w) for w in model.weights}
