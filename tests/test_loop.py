"""compare's training loop: it must train exactly as model.fit does."""

import numpy as np
import pytest

from dcn_cli import backend
from dcn_cli.config import ModelConfig
from dcn_cli.loop import FitLoop, MemoryLoop, make_loop
from dcn_cli.model import build_model, split_model
from dcn_cli.pipeline import DataOptions, prepare
from dcn_cli.sources import open_table
from dcn_cli.training import TrainSettings, compile_model, make_optimizer

SAMPLES = {"ctr": "sample_data/ctr", "mixer": "sample_data/mixer"}
MODEL = {"arch": "stacked", "cross_layers": 1, "deep_layers": [16, 16], "dropout": 0.3}


def _setup(sample, memory_budget=None, seed=0, hash_buckets=None):
    keras = backend.load()
    options = DataOptions(hash_buckets=hash_buckets or {})
    if memory_budget is not None:
        options.memory_budget = memory_budget
    prepared = prepare(open_table(SAMPLES[sample]), options)
    config = ModelConfig(features=prepared.features, task=prepared.task, embedding_l2=1e-3, **MODEL)
    keras.utils.set_random_seed(seed)
    return keras, prepared, config, build_model(config)


def _weights(model):
    return [w.numpy() for w in model.weights]


@pytest.mark.parametrize("sample", ["ctr", "mixer"])
def test_memory_loop_trains_as_model_fit_does(sample):
    settings = TrainSettings(batch_size=256, lr=0.01)
    keras, prepared, config, fitted = _setup(sample)
    compile_model(keras, fitted, prepared.task, make_optimizer(settings))
    fitted.fit(prepared.dataset("train", 256, shuffle_seed=3), epochs=2, verbose=0, shuffle=False)
    expected = fitted.evaluate(prepared.dataset("test", 8192), verbose=0, return_dict=True)

    keras, prepared, config, model = _setup(sample)
    before = _weights(model)
    loop = make_loop(model, config, prepared, 256)
    assert isinstance(loop, MemoryLoop)
    loop.compile(make_optimizer(settings))
    loop.fit(2, seed=3)
    metrics = loop.evaluate()

    after = _weights(model)  # the full model learnt: the core shares its weights
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    for got, want in zip(after, _weights(fitted), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    for name in ("auc", "logloss") if sample == "ctr" else ("rmse", "mae"):
        assert metrics[name] == pytest.approx(expected[name], rel=1e-4)


def test_streamed_data_falls_back_to_model_fit():
    settings = TrainSettings(batch_size=256, lr=0.01)
    results = []
    for budget in (None, 0):
        keras, prepared, config, model = _setup("ctr", memory_budget=budget)
        loop = make_loop(model, config, prepared, 256)
        assert isinstance(loop, FitLoop if budget == 0 else MemoryLoop)
        loop.compile(make_optimizer(settings))
        loop.fit(1, seed=0)
        results.append(loop.evaluate()["auc"])
    # The streamed path shuffles within chunks, so the batches differ; both must learn.
    assert all(0.5 < auc < 1 for auc in results)


def test_split_model_shares_weights_and_reproduces_outputs():
    import tensorflow as tf

    keras, prepared, config, model = _setup("ctr", hash_buckets={"C1": 50})
    assert config.features[13].name == "C1" and config.features[13].hash_buckets == 50
    encoder, core = split_model(model, config)
    test = prepared.arrays("test")
    raw = {f.name: tf.constant(test[f.name][:64]) for f in config.features}
    encoded = encoder(raw)
    kinds = {f.kind: t.dtype for f, t in zip(config.features, encoded, strict=True)}
    assert kinds == {"categorical": tf.int64, "numerical": tf.float32}
    np.testing.assert_array_equal(core(encoded).numpy(), model(raw).numpy())
    assert {id(w) for w in core.weights} <= {id(w) for w in model.weights}
