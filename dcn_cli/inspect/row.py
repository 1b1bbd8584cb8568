"""``dcn explain --data ROWS --row N``: each feature's and each pair's part of one row's
score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.inspect.explain import load_cross_network, pair_strengths, pairs
from dcn_cli.model import checkpoint

IG_STEPS = 64  # integrated gradients: points on the path from x0 = 0 to the row's x0


def explain_row(ckpt: str | Path, data: str, row: int = 1) -> dict[str, Any]:
    """Why the model scored row ``row`` (from 1) of ``data`` as it did.

    The logit is split among the features, and the first cross layer's output
    among the feature pairs. With one DCN-V2 cross layer and the output right
    on it (``--arch cross``) the split is exact: the logit is
    ``c + sum_j w_j x0_j (1 + b_j) + sum_ij w_j x0_j x0_i K[i, j]``, a feature's
    linear term plus the pair terms, each pair's shared equally by its two
    features. Otherwise it is integrated gradients (Sundararajan et al. 2017)
    on ``x0``, from ``x0 = 0``, whose parts add up to ``logit(x0) - logit(0)``.
    ``check`` says how far the parts are from what they must add up to.
    """
    from dcn_cli.model.factory import cross_input_to_logit

    if row < 1:
        raise DcnError(f"--row counts from 1; got {row}")
    record, model, feature_map, network = load_cross_network(ckpt)
    config = checkpoint.model_config(record, ckpt)
    x0 = _row_x0(ckpt, record, config, model, data, row)
    names = [entry["name"] for entry in feature_map]
    logit_of = cross_input_to_logit(model)
    logit = float(np.asarray(logit_of(x0[None, :].astype(np.float32))).reshape(-1)[0])
    first = network.cross_layers[0]
    # The first cross layer's output, x1 = x0 * (x0 @ K + b) + x0: each pair's part.
    layer_pairs = pair_strengths(_row_flow(first, x0, feature_map))
    if _exact(config, network, model):
        method, features, pair_parts, check = _exact_parts(model, first, x0, feature_map, logit)
    else:
        method = "integrated gradients"
        features, check = _integrated_gradients(logit_of, x0, feature_map, logit)
        pair_parts = None
    crosses = pairs(len(names))
    order = np.argsort(-(np.abs(pair_parts) if pair_parts is not None else layer_pairs))
    return {
        "row": row,
        "data": data,
        "logit": logit,
        "prediction": float(1 / (1 + np.exp(-logit))) if config.task == "binary" else logit,
        "method": method,
        "features": sorted(
            (
                {"feature": n, "contribution": float(c)}
                for n, c in zip(names, features, strict=True)
            ),
            key=lambda f: -abs(f["contribution"]),
        ),
        "pairs": [
            {
                "features": [names[crosses[p][0]], names[crosses[p][1]]],
                **({"contribution": float(pair_parts[p])} if pair_parts is not None else {}),
                "first_layer_part": float(layer_pairs[p]),
            }
            for p in order
        ],
        "check": check,
    }


def _row_x0(ckpt, record, config, model, data: str, row: int) -> np.ndarray:
    """Row ``row`` of ``data``'s cross input x0, encoded as the model encodes it."""
    from dcn_cli.data.sources import scoring_table
    from dcn_cli.data.table import head
    from dcn_cli.model.factory import core_cross_input
    from dcn_cli.train.pipeline import Encoder

    label = checkpoint.label(record, ckpt)
    table = scoring_table(
        data, config.features, config.task, label, filled=checkpoint.filled(record, ckpt)
    )
    rows = head(table.chunks(), row, table.schema)
    if rows.num_rows < row:
        raise DcnError(f"{data}: holds {rows.num_rows} row(s); --row {row} is past its end")
    (x, _), *_ = Encoder(config.features).batches(rows.slice(row - 1, 1), None, 1)
    return np.asarray(core_cross_input(model, config)(x, training=False), np.float64)[0]


def _exact(config, network, model) -> bool:
    """One DCN-V2 cross layer (no preactivation) with the logit right on its output."""
    from dcn_cli.model.layers import Cross

    layers = network.cross_layers
    return (
        config.arch == "cross"
        and len(layers) == 1
        and type(layers[0]) is Cross
        and getattr(layers[0].preactivation, "__name__", "linear") == "linear"
    )


def _exact_parts(model, layer, x0, feature_map, logit):
    K = layer.effective_kernel().astype(np.float64)
    b = np.asarray(layer.bias, np.float64) if layer.use_bias else np.zeros(len(x0))
    head = model.get_layer("logit")
    w = np.asarray(head.kernel, np.float64).reshape(-1)
    c = float(np.asarray(head.bias).reshape(-1)[0]) if head.use_bias else 0.0
    wx = w * x0  # the output's weight on each x1_j times x0_j
    terms = x0[:, None] * K * wx[None, :]  # terms[i, j]: w_j x0_j x0_i K[i, j]
    terms[np.diag_indices(len(x0))] += layer.diag_scale * x0 * wx
    blocks = _block_sums(terms, feature_map)
    n = len(feature_map)
    pair_parts = np.array([blocks[i, j] + (blocks[j, i] if i != j else 0) for i, j in pairs(n)])
    linear = np.add.reduceat(wx * (1 + b), [e["offset"] for e in feature_map])
    features = linear.copy()
    for (i, j), part in zip(pairs(n), pair_parts, strict=True):
        features[i] += part / 2
        features[j] += part / 2
    total = c + float(linear.sum() + pair_parts.sum())
    check = {"sum_of_parts": total, "adds_up_to": logit, "gap": abs(total - logit), "base": c}
    return "exact", features, pair_parts, check


def _block_sums(matrix: np.ndarray, feature_map: list[dict]) -> np.ndarray:
    starts = [e["offset"] for e in feature_map]
    return np.add.reduceat(np.add.reduceat(matrix, starts, axis=0), starts, axis=1)


def _row_flow(layer, x0: np.ndarray, feature_map: list[dict]) -> np.ndarray:
    """One row's |x0_j * (x0_i @ K[i, j])| per block of the first cross layer."""
    K = layer.effective_kernel().astype(np.float64)
    n = len(feature_map)
    out = np.zeros((n, n))
    for i, a in enumerate(feature_map):
        for j, b in enumerate(feature_map):
            I = slice(a["offset"], a["offset"] + a["width"])  # noqa: E741
            J = slice(b["offset"], b["offset"] + b["width"])
            out[i, j] = np.linalg.norm(x0[J] * (x0[I] @ K[I, J]))
    return out


def _integrated_gradients(logit_of, x0, feature_map, logit):
    import tensorflow as tf

    alphas = (np.arange(IG_STEPS) + 0.5) / IG_STEPS  # the midpoint rule
    path = tf.constant(alphas[:, None] * x0[None, :], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(path)
        out = tf.reduce_sum(logit_of(path, training=False))
    grads = tape.gradient(out, path).numpy().astype(np.float64).mean(axis=0)
    parts = np.add.reduceat(grads * x0, [e["offset"] for e in feature_map])
    start = float(np.asarray(logit_of(np.zeros((1, len(x0)), np.float32))).reshape(-1)[0])
    total = start + float(parts.sum())
    check = {"sum_of_parts": total, "adds_up_to": logit, "gap": abs(total - logit), "base": start}
    return parts, check
