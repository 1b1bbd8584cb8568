"""``dcn explain --ablate``: which crosses a model uses, measured by taking each away,
and what flows through each block of its cross layers (the data-aware strength)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.inspect.explain import block_norms, load_cross_network, pair_strengths, pairs, ranks
from dcn_cli.model import checkpoint

ABLATION_ROWS = 20_000  # held-out rows each ablation is scored on
CONTROLS = 3  # the weakest pairs, ablated too: what no use costs
FLOW_ROWS = 4096  # held-out rows whose flow through each block is measured


def model_strengths(blocks: list[np.ndarray]) -> np.ndarray:
    """Each unordered cross's strength in the whole cross network: the root sum of its
    squared strengths in every layer (one layer: that layer's)."""
    return np.sqrt(np.sum([pair_strengths(b) ** 2 for b in blocks], axis=0))


def ablate(ckpt: str | Path, k: int, controls: int = CONTROLS) -> dict[str, Any]:
    """What the model loses without each of its ``k`` strongest crosses, by weight and
    by flow (:func:`flow_blocks`), and without its ``controls`` weakest by weight: the
    pair's two blocks of every cross layer's K set to 0, the loss measured again on
    up to :data:`ABLATION_ROWS` held-out rows (the validation split, else the test
    split). Each ranking's Spearman correlation with the loss each pair costs says
    which one tells the crosses the model uses."""
    from dcn_cli.model.layers import Cross

    if k <= 0:
        raise DcnError(f"--ablate must be positive, got {k}")
    record, model, feature_map, network = load_cross_network(ckpt)
    layers = network.cross_layers
    other = [type(layer).__name__ for layer in layers if type(layer) is not Cross]
    if other:
        raise DcnError(
            f"{ckpt}: --ablate zeroes blocks of DCN-V2's W (full or low rank); this model's "
            f"cross layers are {other[0]} (cross type {record['model'].get('cross_type')!r})"
        )
    split, rows, batches, task = _held_out(ckpt, record)
    core, x0_of = _core(model, record, ckpt)
    kernels = [layer.effective_kernel() for layer in layers]
    weight = model_strengths([block_norms(np.abs(K), feature_map) for K in kernels])
    flow = model_strengths(flow_blocks(x0_of, layers, kernels, feature_map, batches))
    by_weight = np.argsort(-weight, kind="stable")
    by_flow = np.argsort(-flow, kind="stable")
    chosen = list(dict.fromkeys([*by_weight[:k], *by_flow[:k]]))
    chosen += [p for p in by_weight[::-1][:controls] if p not in chosen][::-1]

    def loss(mask: np.ndarray | None) -> float:
        from dcn_cli.train.metrics import evaluate_predictions

        for layer in layers:
            layer.ablation = mask
        try:
            scored = ((y, core(x, training=False), w) for x, y, w in batches)
            return float(evaluate_predictions(task, scored)["loss"])
        finally:
            for layer in layers:
                layer.ablation = None

    base = loss(None)
    crosses = pairs(len(feature_map))
    dim = sum(entry["width"] for entry in feature_map)
    weight_rank, flow_rank = ranks(weight), ranks(flow)
    out = []
    for p in chosen:
        a, b = (feature_map[i] for i in crosses[p])
        mask = np.ones((dim, dim))
        for i, j in ((a, b), (b, a)):
            mask[i["offset"] : i["offset"] + i["width"], j["offset"] : j["offset"] + j["width"]] = 0
        out.append(
            {
                "features": [a["name"], b["name"]],
                "strength": float(weight[p]),
                "strength_rank": float(weight_rank[p]),
                "flow": float(flow[p]),
                "flow_rank": float(flow_rank[p]),
                "loss_change": loss(mask) - base,
                "control": bool(p not in by_weight[:k] and p not in by_flow[:k]),
            }
        )
    by_loss = ranks(np.array([row["loss_change"] for row in out]))
    for row, r in zip(out, by_loss, strict=True):
        row["loss_rank"] = float(r)
    return {
        "split": split,
        "rows": rows,
        "loss": base,
        "pairs": out,
        "rank_correlation": _spearman([r["strength_rank"] for r in out], by_loss),
        "flow_rank_correlation": _spearman([r["flow_rank"] for r in out], by_loss),
    }


def flow_blocks(x0_of, layers, kernels, feature_map, batches) -> list[np.ndarray]:
    """What flows through each block of each cross layer: ``F[i, j]``, the mean over
    up to :data:`FLOW_ROWS` rows of the norm of ``x0_j * (x_i @ K[i, j])``, the part
    of the layer's output for feature j that feature i's block of K makes. Unlike
    the weights, it counts how large the inputs are: a numerical column and a wide
    embedding compare on what they add to the output."""
    x0 = np.concatenate([np.asarray(x0_of(x, training=False)) for x, _, _ in batches])
    x0 = x0[:FLOW_ROWS].astype(np.float64)
    starts = [entry["offset"] for entry in feature_map]
    out, x = [], x0
    for layer, K in zip(layers, kernels, strict=True):
        blocks = np.zeros((len(feature_map), len(feature_map)))
        for i, entry in enumerate(feature_map):
            part = slice(entry["offset"], entry["offset"] + entry["width"])
            made = x0 * (x[:, part] @ K[part, :])  # feature i's share of every output
            norms = np.sqrt(np.add.reduceat(made**2, starts, axis=1))  # per output block
            blocks[i] = norms.mean(axis=0)
        out.append(blocks)
        x = np.asarray(layer(x0.astype(np.float32), x.astype(np.float32))).astype(np.float64)
    return out


def _spearman(a, b) -> float | None:
    """Spearman's rank correlation of two rankings; None with fewer than 3, or no order."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def _held_out(ckpt, record) -> tuple[str, int, list, str]:
    """The checkpoint's held-out rows, encoded once: ``(split, rows, [(x, y, w)], task)``."""
    import tensorflow as tf

    from dcn_cli.data.sources import DataSpec
    from dcn_cli.data.splits import split_by_file
    from dcn_cli.inspect.evaluate import check_own_data
    from dcn_cli.train.engine import EVAL_BATCH
    from dcn_cli.train.pipeline import Encoder, gathered, weights_of

    config = checkpoint.model_config(record, ckpt)
    saved = DataSpec.from_record(record, ckpt)
    table = saved.open()
    check_own_data(config, table, saved.data or "the built-in mixer")
    split = "validation" if saved.validation else "test"
    label = checkpoint.label(record, ckpt)
    encoder, batches, rows = Encoder(config.features), [], 0
    for _, chunks in split_by_file(table, split, saved.validation):
        for chunk in gathered(chunks):
            chunk = chunk.slice(0, ABLATION_ROWS - rows)
            w = weights_of(chunk, table.schema.weight)
            for start, (x, y) in zip(
                range(0, chunk.num_rows, EVAL_BATCH),
                encoder.batches(chunk, label, EVAL_BATCH),
                strict=True,
            ):
                batches.append((x, y, tf.constant(w[start : start + EVAL_BATCH])))
            rows += chunk.num_rows
            if rows >= ABLATION_ROWS:
                break
        if rows >= ABLATION_ROWS:
            break
    if not rows:
        raise DcnError(f"{table.name}: no {split} rows to measure an ablation on")
    return split, rows, batches, config.task


def _core(model, record, ckpt):
    """The model's core (encoded inputs in, prediction out) and its part up to x0."""
    from dcn_cli.model.factory import core_cross_input, split_model

    config = checkpoint.model_config(record, ckpt)
    _, core = split_model(model, config)
    return core, core_cross_input(model, config)
