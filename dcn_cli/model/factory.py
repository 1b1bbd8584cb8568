"""The model factory: one function builds every model ``dcn`` trains.

:func:`build_model` turns a :class:`~dcn_cli.model.config.ModelConfig` into a Keras
functional model that takes raw feature values, one named input per feature
(strings, integers or floats, each of shape ``(batch,)``), and does the
vocabulary lookup, hashing and normalisation inside, so a saved
``model.keras`` serves raw rows on its own.

Layer names are part of the checkpoint format: ``cross_input`` (the
concatenated ``x0``), ``cross_network``, ``deep_0``..., ``logit`` and, for a
binary task, ``probability``.
"""

from __future__ import annotations

import hashlib
import re
import warnings

import keras

from dcn_cli.data.features import FeatureSpec
from dcn_cli.model.config import ModelConfig
from dcn_cli.model.layers import CrossNetwork
from dcn_cli.model.lists import ListLookup, PooledEmbedding

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# Names this module gives its own layers; a feature called so would clash.
_OURS = re.compile(
    r"cross_input|cross_network|cross_and_deep|logit|probability|(deep|dropout)_[0-9]+"
    r"|(column|norm|hash|lookup|embed)_.*"
)


def layer_name(feature: str) -> str:
    """The name a feature's input and layers carry inside the model.

    Column names are the user's: a space, a ``/``, a non-ASCII letter or a
    clash with one of the model's own layer names would break Keras. Plain
    names stay as they are; any other becomes its plain characters plus a
    short hash of the whole name, so two different columns never share one.
    The model still takes its inputs keyed by the feature names themselves.
    """
    if _PLAIN.fullmatch(feature) and not _OURS.fullmatch(feature):
        return feature
    digest = hashlib.sha1(feature.encode("utf-8")).hexdigest()[:8]
    return f"{re.sub(r'[^A-Za-z0-9_.-]', '_', feature)}_{digest}"


def input_name(feature: str) -> str:
    """The name of a feature's input: the feature's own where Keras takes it.

    Keras accepts spaces and any letters in an input's name, but not ``/``
    nor a name another layer has; those inputs take :func:`layer_name`.
    """
    return feature if "/" not in feature and not _OURS.fullmatch(feature) else layer_name(feature)


def _encode(feature: FeatureSpec, tensor, config: ModelConfig):
    """Raw input of shape ``(batch,)`` -> a ``(batch, width)`` float tensor."""
    name = layer_name(feature.name)
    if feature.kind == "numerical":
        x = keras.layers.Reshape((1,), name=f"column_{name}")(tensor)
        if feature.mean is not None:
            x = keras.layers.Normalization(
                mean=[feature.mean], variance=[feature.variance], name=f"norm_{name}"
            )(x)
        return x
    if feature.is_list:
        return _encode_list(feature, tensor, config)
    if feature.hash_buckets is not None:
        ids = keras.layers.Hashing(num_bins=feature.hash_buckets, name=f"hash_{name}")(tensor)
    else:
        string = feature.dtype == "string"
        lookup = keras.layers.StringLookup if string else keras.layers.IntegerLookup
        ids = lookup(
            vocabulary=list(feature.vocabulary or []),
            num_oov_indices=feature.num_oov,
            mask_token=None,
            name=f"lookup_{name}",
        )(tensor)
    l2 = config.embedding_l2
    return keras.layers.Embedding(
        input_dim=feature.input_size(),
        output_dim=feature.width(config.embedding_dim),
        embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None,
        dtype=config.precision,
        name=f"embed_{name}",
    )(ids)


def _encode_list(feature: FeatureSpec, tensor, config: ModelConfig):
    """A list feature's strings -> its elements' ids -> one pooled embedding."""
    name = layer_name(feature.name)
    prefix = "lookup" if feature.hash_buckets is None else "hash"
    ids = ListLookup(
        separator=feature.separator or "",
        length=feature.ids(),
        vocabulary=None if feature.vocabulary is None else list(feature.vocabulary),
        hash_buckets=feature.hash_buckets,
        num_oov=feature.num_oov,
        name=f"{prefix}_{name}",
    )(tensor)
    l2 = config.embedding_l2
    return PooledEmbedding(
        input_dim=feature.input_size(),
        output_dim=feature.width(config.embedding_dim),
        pooling=feature.pooling,
        embeddings_regularizer=keras.regularizers.L2(l2) if l2 else None,
        dtype=config.precision,
        name=f"embed_{name}",
    )(ids)


def _deep(config: ModelConfig, x):
    for i, units in enumerate(config.deep_layers):
        x = keras.layers.Dense(units, activation="relu", dtype=config.precision, name=f"deep_{i}")(
            x
        )
        if config.dropout:
            x = keras.layers.Dropout(config.dropout, dtype=config.precision, name=f"dropout_{i}")(x)
    return x


def _cross_network(config: ModelConfig) -> CrossNetwork:
    kwargs = {}
    if config.cross_type == "matrix":
        kwargs = {"projection_dim": config.projection_dim, "diag_scale": config.diag_scale}
    elif config.cross_type == "mix":
        kwargs = {"num_experts": config.num_experts}
        if config.projection_dim is not None:
            kwargs["projection_dim"] = config.projection_dim
    return CrossNetwork(
        num_layers=config.cross_layers,
        cross_type=config.cross_type,
        dtype=config.precision,
        name="cross_network",
        **kwargs,
    )


def build_model(config: ModelConfig) -> keras.Model:
    """Build the Keras model that ``config`` describes (weights freshly initialised)."""
    inputs = {
        f.name: keras.Input(shape=(), dtype=f.dtype, name=input_name(f.name))
        for f in config.features
    }
    parts = [_encode(f, inputs[f.name], config) for f in config.features]
    if len(parts) > 1:
        x0 = keras.layers.Concatenate(dtype=config.precision, name="cross_input")(parts)
    else:
        x0 = keras.layers.Identity(dtype=config.precision, name="cross_input")(parts[0])

    if config.arch == "cross":
        hidden = _cross_network(config)(x0)
    elif config.arch == "deep":
        hidden = _deep(config, x0)
    elif config.arch == "stacked":
        hidden = _deep(config, _cross_network(config)(x0))
    else:  # parallel
        hidden = keras.layers.Concatenate(dtype=config.precision, name="cross_and_deep")(
            [_cross_network(config)(x0), _deep(config, x0)]
        )

    output = keras.layers.Dense(1, dtype="float32", name="logit")(hidden)
    if config.task == "binary":
        output = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(output)
    return _functional(inputs, output, f"dcn_{config.arch}")


def _functional(inputs, outputs, name: str) -> keras.Model:
    with warnings.catch_warnings():
        # Inputs are keyed by feature name; an input renamed by layer_name() is
        # deliberate, and Keras maps the dict by its keys.
        warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
        return keras.Model(inputs=inputs, outputs=outputs, name=name)


def split_model(model: keras.Model, config: ModelConfig) -> tuple[keras.Model, keras.Model]:
    """``model`` as two models that share its layers: encoder, then core.

    The encoder maps raw values to what the embeddings and the numerical
    layers take (vocabulary ids, hashed buckets, numbers as a column); the core
    maps those, as a list in feature order, to the output. Encoding the data
    once and training the core trains ``model`` itself, since the weights are
    shared.
    """
    encoded = _encoded(model, config)
    encoder = _functional(model.input, encoded, "encoder")
    core = _functional(encoded, model.output, "core")
    return encoder, core


def _encoded(model: keras.Model, config: ModelConfig) -> list:
    """The outputs of ``model``'s lookup, hashing and numerical-column layers, in feature
    order: the inputs of its core."""
    encoded = []
    for feature in config.features:
        # Not the model's own inputs: a core built on them would rewire them, and the
        # model would no longer save (Keras re-points an Input's history).
        prefix = "column" if feature.kind == "numerical" else "lookup"
        if feature.hash_buckets is not None:
            prefix = "hash"
        encoded.append(model.get_layer(f"{prefix}_{layer_name(feature.name)}").output)
    return encoded


def cross_input_model(model: keras.Model) -> keras.Model:
    """``model`` up to its cross input ``x0``: raw values (keyed by feature) in, ``x0`` out."""
    return _functional(model.input, model.get_layer("cross_input").output, "cross_input")


def core_cross_input(model: keras.Model, config: ModelConfig) -> keras.Model:
    """The core of :func:`split_model` up to the cross input ``x0``: encoded in, x0 out."""
    x0 = model.get_layer("cross_input").output
    return _functional(_encoded(model, config), x0, "core_cross_input")


def cross_input_to_logit(model: keras.Model) -> keras.Model:
    """``model`` past its cross input: ``x0`` in, the logit (before any sigmoid) out."""
    x0 = model.get_layer("cross_input").output
    return _functional(x0, model.get_layer("logit").output, "cross_input_to_logit")


def forward_flops(config: ModelConfig) -> int:
    """Multiply-add FLOPs (2 per multiply-add) of one example's forward pass.

    Counts the matrix products of the cross and deep networks and the output
    layer; lookups, elementwise work and activations are left out. Training
    costs about three times this per example (forward, input and weight
    gradients).
    """
    d = config.input_dim
    flops = 0
    if config.uses_cross:
        r, layers = config.projection_dim, config.cross_layers
        if config.cross_type == "matrix":
            per_layer = 2 * d * d if r is None else 2 * (d * r + r * d)
        elif config.cross_type == "vector":
            per_layer = 2 * d
        else:
            r = r or 32
            per_layer = (
                config.num_experts * 2 * (d * r + r * r + r * d) + 2 * d * config.num_experts
            )
        flops += layers * per_layer
    width = d
    if config.uses_deep:
        for units in config.deep_layers:
            flops += 2 * width * units
            width = units
    if config.arch == "parallel":
        width = d + config.deep_layers[-1]
    return flops + 2 * width


def count_trainable_params(model: keras.Model) -> int:
    return int(sum(int(w.numpy().size) for w in model.trainable_weights))
