"""Cross layers against their formulas computed in NumPy, with weights set by hand."""

import numpy as np
import pytest

from dcn_cli import backend

keras = backend.load()

from dcn_cli.model.layers import Cross, CrossNetwork, MixCross, VectorCross  # noqa: E402

RNG = np.random.default_rng(0)
X0 = RNG.normal(size=(4, 3)).astype("float32")
XL = RNG.normal(size=(4, 3)).astype("float32")


def _np(layer, *inputs):
    return keras.ops.convert_to_numpy(layer(*inputs))


def _set(layer, **weights):
    """Build ``layer`` on width 3 and assign its weights by name."""
    layer.build((None, 3))
    by_name = {w.name: w for w in layer.weights}
    assert set(by_name) == set(weights), f"weights are {sorted(by_name)}"
    for name, value in weights.items():
        by_name[name].assign(np.asarray(value, dtype="float32"))


def test_cross_full_rank_matches_formula():
    kernel = RNG.normal(size=(3, 3))
    bias = np.array([0.1, -0.2, 0.3])
    layer = Cross()
    _set(layer, kernel=kernel, bias=bias)
    # The paper's W x_l is x_l @ kernel in Keras' row layout.
    expected = X0 * (XL @ kernel + bias) + XL
    np.testing.assert_allclose(_np(layer, X0, XL), expected, rtol=1e-5, atol=1e-6)
    # With x_l omitted the layer is the first one: x_l = x0.
    np.testing.assert_allclose(_np(layer, X0), X0 * (X0 @ kernel + bias) + X0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.effective_kernel(), kernel, rtol=1e-6)


def test_cross_ablation_masks_the_learnt_kernel_only():
    kernel, bias = RNG.normal(size=(3, 3)), np.array([0.1, -0.2, 0.3])
    layer = Cross(diag_scale=0.5)
    _set(layer, kernel=kernel, bias=bias)
    mask = np.ones((3, 3))
    mask[1, 2] = mask[2, 2] = 0
    layer.ablation = mask
    try:
        masked = _np(layer, X0, XL)
    finally:
        layer.ablation = None
    # diag_scale's fixed s x is not learnt: explain's mask leaves it in place.
    expected = X0 * (XL @ (kernel * mask) + bias + 0.5 * XL) + XL
    np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-6)


def test_cross_low_rank_matches_formula_and_counts():
    u, v = RNG.normal(size=(3, 2)), RNG.normal(size=(2, 3))
    bias = np.array([0.5, 0.0, -0.5])
    layer = Cross(projection_dim=2)
    _set(layer, u_kernel=u, v_kernel=v, bias=bias)
    expected = X0 * (XL @ u @ v + bias) + XL
    np.testing.assert_allclose(_np(layer, X0, XL), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.effective_kernel(), u @ v, rtol=1e-5)
    assert [tuple(w.shape) for w in layer.weights] == [(3, 2), (2, 3), (3,)]
    assert layer.count_params() == 2 * 3 * 2 + 3


def test_cross_diag_scale_preactivation_and_no_bias():
    kernel = RNG.normal(size=(3, 3))
    layer = Cross(diag_scale=0.5, preactivation="relu", use_bias=False)
    _set(layer, kernel=kernel)
    expected = X0 * (np.maximum(XL @ kernel, 0) + 0.5 * XL) + XL
    np.testing.assert_allclose(_np(layer, X0, XL), expected, rtol=1e-5, atol=1e-6)


def test_cross_default_initializers_are_the_tutorials():
    layer = Cross()
    # TensorFlow Recommenders' Cross, the tutorial's layer, uses truncated_normal.
    assert type(layer.kernel_initializer).__name__ == "TruncatedNormal"
    assert layer.kernel_initializer.stddev == 0.05
    assert type(layer.bias_initializer).__name__ == "Zeros"
    layer.build((None, 3))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.bias), np.zeros(3))


def test_vector_cross_matches_formula():
    w = RNG.normal(size=(3, 1))
    bias = np.array([1.0, 2.0, 3.0])
    layer = VectorCross()
    _set(layer, kernel=w, bias=bias)
    # The bias sits outside the product: x0 (w^T x_l) + b + x_l.
    expected = X0 * (XL @ w) + bias + XL
    np.testing.assert_allclose(_np(layer, X0, XL), expected, rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 2 * 3
    # explain --ablate's mask on w 1^T: output j loses x0_j x_i w_i where mask[i, j] is 0.
    mask = np.ones((3, 3))
    mask[0, 2] = mask[2, 0] = 0
    layer.ablation = mask
    try:
        masked = _np(layer, X0, XL)
    finally:
        layer.ablation = None
    expected = X0 * (XL @ (w * mask)) + bias + XL
    np.testing.assert_allclose(masked, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(masked, _np(layer, X0, XL))


def test_mix_cross_matches_formula():
    experts, rank = 2, 2
    v = RNG.normal(size=(experts, 3, rank))
    c = RNG.normal(size=(experts, rank, rank))
    u = RNG.normal(size=(experts, rank, 3))
    gate = RNG.normal(size=(3, experts))
    bias = RNG.normal(size=3)  # one per layer, shared by the experts (the paper's eq. 3)
    layer = MixCross(projection_dim=rank, num_experts=experts)
    _set(layer, v_kernel=v, c_kernel=c, u_kernel=u, gate_kernel=gate, bias=bias)

    logits = XL @ gate
    weights = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    expected = XL.astype("float64").copy()
    for i in range(experts):
        expert = X0 * (np.tanh(np.tanh(XL @ v[i]) @ c[i]) @ u[i] + bias)
        expected += weights[:, i : i + 1] * expert
    np.testing.assert_allclose(_np(layer, X0, XL), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(layer.expert_kernels(), v @ c @ u, rtol=1e-5)
    assert layer.count_params() == experts * (3 * rank + rank * rank + rank * 3) + 3 + 3 * experts


def _unrelated(a, b) -> bool:
    """Whether two weights were drawn independently: neither copies nor rescales the other.

    A shared unseeded initializer gives equal values in the same order (reshaped,
    or rescaled by another fan), so the common prefix of the flattened arrays is
    perfectly correlated; independent draws of 32 or more values are not.
    """
    a, b = np.ravel(a), np.ravel(b)
    n = min(a.size, b.size)
    return abs(np.corrcoef(a[:n], b[:n])[0, 1]) < 0.9


def _kernels(layer):
    """Kernel weights by their path below the layer (``cross_0/u_kernel``)."""
    return {
        w.path.split("/", 1)[-1]: keras.ops.convert_to_numpy(w)
        for w in layer.weights
        if "bias" not in w.name
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: Cross(projection_dim=4),
        lambda: MixCross(projection_dim=4, num_experts=4),
        lambda: CrossNetwork(num_layers=3, projection_dim=4),
        lambda: CrossNetwork(num_layers=2, cross_type="mix", projection_dim=4, num_experts=4),
        lambda: CrossNetwork(num_layers=3),
        lambda: CrossNetwork(num_layers=3, cross_type="vector"),
        # One initializer object passed in is copied per weight as well.
        lambda: CrossNetwork(
            num_layers=2, projection_dim=4, kernel_initializer=keras.initializers.GlorotUniform()
        ),
    ],
    ids=["low-rank", "mix", "network", "mix-network", "full-network", "vector-network", "object"],
)
def test_every_kernel_starts_from_its_own_draw(make):
    keras.utils.set_random_seed(3)
    layer = make()
    layer.build((None, 8))
    kernels = _kernels(layer)
    assert len(kernels) >= 2
    names = sorted(kernels)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert _unrelated(kernels[a], kernels[b]), f"{a} and {b} start from one draw"
    # The same seed still gives the same start.
    keras.utils.set_random_seed(3)
    again = make()
    again.build((None, 8))
    for name, value in _kernels(again).items():
        np.testing.assert_array_equal(value, kernels[name])


def test_cross_network_feeds_x0_to_every_layer():
    net = CrossNetwork(num_layers=2, projection_dim=2)
    net.build((None, 3))
    first, second = net.cross_layers
    expected = second(X0, first(X0, X0))
    np.testing.assert_allclose(_np(net, X0), keras.ops.convert_to_numpy(expected), rtol=1e-6)
    assert [layer.projection_dim for layer in net.cross_layers] == [2, 2]


@pytest.mark.parametrize(
    "cross_type, layer_class",
    [
        ("matrix", Cross),
        ("vector", VectorCross),
        ("mix", MixCross),
    ],
)
def test_cross_network_builds_each_type(cross_type, layer_class):
    net = CrossNetwork(num_layers=3, cross_type=cross_type)
    assert _np(net, X0).shape == X0.shape
    assert all(type(layer) is layer_class for layer in net.cross_layers)


def test_sixteen_parameters_as_in_the_tutorial():
    inputs = keras.Input(shape=(3,))
    outputs = keras.layers.Dense(1)(Cross()(inputs))
    assert keras.Model(inputs, outputs).count_params() == 16


@pytest.mark.parametrize(
    "layer",
    [
        Cross(
            projection_dim=2,
            diag_scale=0.3,
            preactivation="relu",
            kernel_regularizer="l2",
            bias_initializer="ones",
        ),
        VectorCross(use_bias=False, kernel_initializer="he_normal"),
        MixCross(projection_dim=2, num_experts=3, activation="relu"),
        CrossNetwork(num_layers=2, cross_type="mix", projection_dim=2, num_experts=2),
        CrossNetwork(num_layers=2, projection_dim=1, kernel_regularizer="l1"),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config


@pytest.mark.parametrize(
    "make",
    [
        lambda: Cross(projection_dim=2, diag_scale=0.1),
        lambda: VectorCross(),
        lambda: MixCross(projection_dim=2, num_experts=2),
        lambda: CrossNetwork(num_layers=2, cross_type="matrix", projection_dim=2),
    ],
    ids=["cross", "vector", "mix", "network"],
)
def test_keras_file_round_trip_reproduces_outputs(tmp_path, make):
    inputs = keras.Input(shape=(3,))
    layer = make()
    if isinstance(layer, CrossNetwork):
        outputs = keras.layers.Dense(1)(layer(inputs))
    else:
        outputs = keras.layers.Dense(1)(layer(inputs, layer(inputs)))
    model = keras.Model(inputs, outputs)
    # Non-default weights, so that a load that silently re-initialised would show.
    for weight in model.weights:
        weight.assign(RNG.normal(size=weight.shape).astype("float32"))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)  # safe_mode on, no custom_objects
    np.testing.assert_array_equal(loaded.predict(X0, verbose=0), model.predict(X0, verbose=0))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Cross(projection_dim=0), "Received: projection_dim=0"),
        (lambda: Cross(projection_dim=-3), "Received: projection_dim=-3"),
        (lambda: Cross(diag_scale=-1.0), "Received: diag_scale=-1.0"),
        (lambda: MixCross(num_experts=0), "Received: num_experts=0"),
        (lambda: MixCross(projection_dim=0), "Received: projection_dim=0"),
        (lambda: CrossNetwork(num_layers=0), "Received: num_layers=0"),
        (lambda: CrossNetwork(cross_type="diagonal"), "Received: cross_type='diagonal'"),
    ],
)
def test_bad_arguments_raise_at_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()
