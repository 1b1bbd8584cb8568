"""The model config and the factory that builds every model from it."""

import dataclasses
import json

import numpy as np
import pytest

from dcn_cli import backend

keras = backend.load()

from dcn_cli.data.features import FeatureSpec  # noqa: E402
from dcn_cli.errors import DcnError  # noqa: E402
from dcn_cli.model.config import ModelConfig  # noqa: E402
from dcn_cli.model.factory import build_model, count_trainable_params  # noqa: E402
from dcn_cli.model.layers import Cross, CrossNetwork, MixCross, VectorCross  # noqa: E402
from dcn_cli.settings import parse_sizes  # noqa: E402


def mixer_config(**overrides):
    features = [FeatureSpec(name, "numerical") for name in ("country", "bananas", "cookbooks")]
    return ModelConfig(features=features, **{"arch": "cross", **overrides})


def mixed_config(**overrides):
    """One feature of every encoding the factory supports."""
    features = [
        FeatureSpec("movie_id", "categorical", "string", vocabulary=["1", "2", "3"]),
        FeatureSpec("age", "categorical", "int64", vocabulary=[1, 18, 25], embedding_dim=4),
        FeatureSpec("zip", "categorical", "string", hash_buckets=7, embedding_dim=3),
        FeatureSpec("price", "numerical", mean=10.0, variance=4.0),
        FeatureSpec("count", "numerical", "int64"),
    ]
    return ModelConfig(features=features, **{"embedding_dim": 8, **overrides})


def raw_rows():
    return {
        "movie_id": np.array(["1", "3", "never-seen"], dtype=object),
        "age": np.array([18, 1, 99], dtype="int64"),
        "zip": np.array(["10001", "x", ""], dtype=object),
        "price": np.array([10.0, 12.0, 8.0], dtype="float32"),
        "count": np.array([0, 5, 2], dtype="int64"),
    }


def test_mixer_cross_model_has_sixteen_parameters():
    model = build_model(mixer_config())
    assert count_trainable_params(model) == 16
    assert model.count_params() == 16


def test_mixer_model_computes_cross_then_linear_output():
    model = build_model(mixer_config())
    cross = model.get_layer("cross_network").cross_layers[0]
    kernel = np.arange(9, dtype="float32").reshape(3, 3) / 10
    cross.kernel.assign(kernel)
    cross.bias.assign(np.array([0.1, 0.2, 0.3], "float32"))
    logit = model.get_layer("logit")
    logit.kernel.assign(np.array([[1.0], [2.0], [3.0]], "float32"))
    logit.bias.assign(np.array([0.5], "float32"))
    x = np.array([[0.5, 0.25, 1.0], [0.1, 0.2, 0.3]], "float32")
    rows = {name: x[:, i] for i, name in enumerate(["country", "bananas", "cookbooks"])}
    expected = (x * (x @ kernel + [0.1, 0.2, 0.3]) + x) @ [[1.0], [2.0], [3.0]] + 0.5
    np.testing.assert_allclose(model.predict(rows, verbose=0), expected, rtol=1e-5)


@pytest.mark.parametrize("arch", ["cross", "deep", "stacked", "parallel"])
@pytest.mark.parametrize("cross_type", ["matrix", "vector", "mix"])
def test_every_arch_and_cross_type_takes_raw_rows(arch, cross_type):
    config = mixed_config(arch=arch, cross_type=cross_type, deep_layers=[16, 8], projection_dim=4)
    model = build_model(config)
    out = model.predict(raw_rows(), verbose=0)
    assert out.shape == (3, 1)
    assert np.all(np.isfinite(out))
    names = {layer.name for layer in model.layers}
    assert ("cross_network" in names) == (arch != "deep")
    assert ("deep_0" in names) == (arch != "cross")


def test_arch_wiring_by_parameter_count():
    base = dict(deep_layers=[16], embedding_dim=8)
    d = mixed_config(**base).input_dim  # 8 + 4 + 3 + 1 + 1 = 17
    assert d == 17
    embeddings = 4 * 8 + 4 * 4 + 7 * 3
    cross = d * d + d
    assert count_trainable_params(build_model(mixed_config(arch="cross", **base))) == (
        embeddings + cross + d + 1
    )
    assert count_trainable_params(build_model(mixed_config(arch="deep", **base))) == (
        embeddings + d * 16 + 16 + 16 + 1
    )
    assert count_trainable_params(build_model(mixed_config(arch="stacked", **base))) == (
        embeddings + cross + d * 16 + 16 + 16 + 1
    )
    assert count_trainable_params(build_model(mixed_config(arch="parallel", **base))) == (
        embeddings + cross + d * 16 + 16 + (d + 16) + 1
    )


def test_low_rank_and_vector_parameter_counts():
    config = mixed_config(arch="cross", projection_dim=2, cross_layers=3)
    d, embeddings = config.input_dim, 4 * 8 + 4 * 4 + 7 * 3
    assert count_trainable_params(build_model(config)) == embeddings + 3 * (2 * d * 2 + d) + d + 1
    vector = mixed_config(arch="cross", cross_type="vector", cross_layers=3)
    assert count_trainable_params(build_model(vector)) == embeddings + 3 * 2 * d + d + 1


def test_cross_network_gets_the_configured_layers():
    model = build_model(
        mixed_config(cross_type="mix", cross_layers=2, num_experts=3, projection_dim=5)
    )
    layers = model.get_layer("cross_network").cross_layers
    assert [type(layer) for layer in layers] == [MixCross, MixCross]
    assert {(layer.num_experts, layer.projection_dim) for layer in layers} == {(3, 5)}
    model = build_model(mixed_config(diag_scale=0.25, projection_dim=3))
    (layer,) = model.get_layer("cross_network").cross_layers
    assert (type(layer), layer.diag_scale, layer.projection_dim) == (Cross, 0.25, 3)
    model = build_model(mixed_config(cross_type="vector"))
    assert type(model.get_layer("cross_network").cross_layers[0]) is VectorCross


def test_binary_task_outputs_probabilities():
    model = build_model(mixed_config(task="binary"))
    out = model.predict(raw_rows(), verbose=0)
    assert np.all((out > 0) & (out < 1))
    assert model.layers[-1].name == "probability"


def test_cross_input_follows_the_feature_map():
    config = mixed_config()
    assert config.feature_map() == [
        {"name": "movie_id", "offset": 0, "width": 8},
        {"name": "age", "offset": 8, "width": 4},
        {"name": "zip", "offset": 12, "width": 3},
        {"name": "price", "offset": 15, "width": 1},
        {"name": "count", "offset": 16, "width": 1},
    ]
    model = build_model(config)
    probe = keras.Model(model.inputs, model.get_layer("cross_input").output)
    x0 = probe.predict(raw_rows(), verbose=0)
    assert x0.shape == (3, config.input_dim)
    # Numerical columns land raw (or normalised) at their offsets.
    np.testing.assert_allclose(x0[:, 15], [0.0, 1.0, -1.0], atol=1e-6)  # (price - 10) / 2
    np.testing.assert_allclose(x0[:, 16], [0.0, 5.0, 2.0])
    # Categorical columns are rows of their embedding tables; unseen ids share the OOV row.
    table = keras.ops.convert_to_numpy(model.get_layer("embed_movie_id").embeddings)
    np.testing.assert_allclose(x0[0, 0:8], table[1 + 0])  # "1" is vocabulary index 0, after OOV
    np.testing.assert_allclose(x0[2, 0:8], table[0])  # OOV bucket


@pytest.mark.parametrize("cross_type", ["matrix", "vector", "mix"])
def test_saved_model_reproduces_outputs_in_safe_mode(tmp_path, cross_type):
    config = mixed_config(
        arch="parallel",
        cross_type=cross_type,
        projection_dim=3,
        cross_layers=2,
        deep_layers=[8],
        task="binary",
    )
    model = build_model(config)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        loaded.predict(raw_rows(), verbose=0), model.predict(raw_rows(), verbose=0)
    )


@pytest.mark.parametrize("cross_type", ["matrix", "mix"])
def test_mixed_bfloat16_computes_in_bfloat16_with_float32_weights_and_output(tmp_path, cross_type):
    config = mixed_config(arch="parallel", cross_type=cross_type, projection_dim=3, task="binary")
    model = build_model(config)
    plain = build_model(mixed_config(arch="parallel", cross_type=cross_type, projection_dim=3))
    model.set_weights(plain.get_weights())
    bf16 = build_model(dataclasses.replace(config, precision="mixed_bfloat16"))
    bf16.set_weights(plain.get_weights())
    cross = bf16.get_layer("cross_network")
    assert cross.compute_dtype == "bfloat16" and cross.cross_layers[0].compute_dtype == "bfloat16"
    assert bf16.get_layer("deep_0").compute_dtype == "bfloat16"
    assert bf16.get_layer("embed_movie_id").compute_dtype == "bfloat16"
    assert {w.dtype for w in bf16.weights if w.trainable} == {"float32"}
    out = bf16.predict(raw_rows(), verbose=0)
    assert out.dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: close to the float32 model, not equal.
    reference = model.predict(raw_rows(), verbose=0)
    np.testing.assert_allclose(out, reference, atol=0.02)
    path = tmp_path / "model.keras"
    bf16.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("deep_0").compute_dtype == "bfloat16"
    np.testing.assert_array_equal(loaded.predict(raw_rows(), verbose=0), out)


def test_config_json_round_trip_rebuilds_the_same_architecture(tmp_path):
    config = mixed_config(
        arch="stacked",
        cross_type="mix",
        cross_layers=2,
        num_experts=2,
        projection_dim=3,
        deep_layers=[32, 16],
        dropout=0.1,
        task="binary",
    )
    path = tmp_path / "config.json"
    config.save(path)
    again = ModelConfig.load(path)
    assert again == config
    a, b = build_model(config), build_model(again)
    assert [(w.path, tuple(w.shape)) for w in a.weights] == [
        (w.path, tuple(w.shape)) for w in b.weights
    ]
    assert json.loads(path.read_text())["format"] == 1


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"arch": "tower"}, "arch must be one of stacked, parallel, cross, deep; got 'tower'"),
        ({"cross_type": "diagonal"}, "cross_type must be one of matrix"),
        ({"task": "ranking"}, "task must be one of regression, binary; got 'ranking'"),
        ({"cross_layers": 0}, "cross_layers must be a positive integer, got 0"),
        ({"projection_dim": 0}, "projection_dim must be a positive integer, got 0"),
        ({"num_experts": -1}, "num_experts must be a positive integer, got -1"),
        ({"diag_scale": -0.5}, "diag_scale must be a finite number >= 0, got -0.5"),
        ({"dropout": 1.0}, r"dropout must be a finite number in \[0, 1\), got 1.0"),
        ({"deep_layers": []}, "arch 'stacked' needs at least one deep layer"),
        ({"embedding_dim": 0}, "embedding_dim must be a positive integer, got 0"),
        ({"precision": "float16"}, "precision must be one of float32"),
    ],
)
def test_bad_model_settings_are_user_errors(overrides, message):
    with pytest.raises(DcnError, match=message):
        mixed_config(**overrides)


@pytest.mark.parametrize(
    "feature, message",
    [
        (
            dict(name="a", kind="text"),
            "kind of feature 'a' must be one of categorical, numerical; got 'text'",
        ),
        (dict(name="a", kind="categorical", dtype="string"), "exactly one of a vocabulary"),
        (
            dict(name="a", kind="categorical", dtype="string", vocabulary=["x"], hash_buckets=3),
            "exactly one of a vocabulary",
        ),
        (dict(name="a", kind="categorical", dtype="string", vocabulary=["x", "x"]), "duplicate"),
        (dict(name="a", kind="categorical", dtype="float32", vocabulary=[1.0]), "categorical"),
        (dict(name="a", kind="numerical", dtype="string"), "numerical but has dtype"),
        (dict(name="a", kind="numerical", mean=1.0), "both mean and variance"),
    ],
)
def test_bad_feature_specs_are_user_errors(feature, message):
    with pytest.raises(DcnError, match=message):
        ModelConfig(features=[FeatureSpec(**feature)])


def test_unknown_keys_in_a_saved_config_are_named(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**mixer_config().to_dict(), "layers": 3}))
    with pytest.raises(DcnError, match="unknown model setting.*layers"):
        ModelConfig.load(path)
    path.write_text("{not json")
    with pytest.raises(DcnError, match=r"config.json:1:[0-9]+: not valid JSON"):
        ModelConfig.load(path)


def test_projection_dim_that_saves_nothing_is_warned_about():
    assert mixed_config(projection_dim=2).warnings() == []
    (note,) = mixed_config(projection_dim=9).warnings()
    assert "projection_dim 9" in note and "input width 17" in note


def test_parse_sizes():
    assert parse_sizes("192,192") == [192, 192]
    assert parse_sizes(" 512, 256,128 ") == [512, 256, 128]
    assert parse_sizes("") == []
    with pytest.raises(DcnError, match="comma-separated integers"):
        parse_sizes("192;192")
    with pytest.raises(DcnError, match="positive integer"):
        parse_sizes("192,0")


def test_layers_module_exports_stay_registered():
    registered = keras.saving.get_registered_object
    for cls in (Cross, VectorCross, MixCross, CrossNetwork):
        assert registered(f"dcn_cli>{cls.__name__}") is cls


def test_forward_flops_count_the_matrix_products():
    from dcn_cli.model.factory import forward_flops

    raw = mixer_config()  # d = 3, one full cross layer, then the output
    assert forward_flops(raw) == 2 * 9 + 2 * 3
    config = mixed_config(arch="stacked", deep_layers=[16, 8])  # d = 17
    assert forward_flops(config) == 2 * 17 * 17 + 2 * 17 * 16 + 2 * 16 * 8 + 2 * 8
    low = mixed_config(arch="parallel", projection_dim=4, deep_layers=[16])
    assert forward_flops(low) == 2 * (17 * 4 * 2) + 2 * 17 * 16 + 2 * (17 + 16)
    deep = mixed_config(arch="deep", deep_layers=[16])
    assert forward_flops(deep) == 2 * 17 * 16 + 2 * 16


def test_embedding_l2_adds_a_penalty_without_parameters():
    plain = build_model(mixed_config(embedding_l2=0.0))
    penalised = build_model(mixed_config(embedding_l2=1e-3))
    assert count_trainable_params(plain) == count_trainable_params(penalised)
    assert not plain.losses
    tables = sum(
        float(np.sum(np.square(w.numpy()))) for w in penalised.weights if "embeddings" in w.path
    )
    assert float(sum(penalised.losses)) == pytest.approx(1e-3 * tables, rel=1e-5)
    with pytest.raises(DcnError, match="embedding_l2 must be a finite number >= 0"):
        mixed_config(embedding_l2=-1.0)
