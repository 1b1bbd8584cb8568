"""``dcn explain --ablate``: which crosses a model uses, measured by taking each away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.inspect.explain import block_norms, load_cross_network, pair_strengths, pairs, ranks
from dcn_cli.inspect.flow import checkpoint_rows, flow_blocks, layer_kernel, x0_of
from dcn_cli.model import checkpoint

ABLATION_ROWS = 20_000  # held-out rows each ablation is scored on
CONTROLS = 3  # the weakest pairs, ablated too: what no use costs


def model_strengths(blocks: list[np.ndarray]) -> np.ndarray:
    """Each unordered cross's strength in the whole cross network: the root sum of its
    squared strengths in every layer (one layer: that layer's)."""
    return np.sqrt(np.sum([pair_strengths(b) ** 2 for b in blocks], axis=0))


def ablate(ckpt: str | Path, k: int, controls: int = CONTROLS) -> dict[str, Any]:
    """What the model loses without each of its ``k`` strongest crosses, by weight and
    by flow (:mod:`dcn_cli.inspect.flow`), and without its ``controls`` weakest by
    weight: the pair's two blocks of every cross layer's K set to 0, the loss measured again on
    up to :data:`ABLATION_ROWS` held-out rows (the validation split, else the test
    split). Each ranking's Spearman correlation with the loss each pair costs says
    which one tells the crosses the model uses."""
    if k <= 0:
        raise DcnError(f"--ablate must be positive, got {k}")
    record, model, feature_map, network = load_cross_network(ckpt)
    layers = network.cross_layers
    kernels = [layer_kernel(layer) for layer in layers]
    if any(K is None for K in kernels):
        raise DcnError(
            f"{ckpt}: --ablate zeroes blocks of each cross layer's W, and a DCN-Mix layer's "
            "experts are not linear in its input, so no block of it is one cross's own"
        )
    from dcn_cli.model.factory import split_model

    split, rows, batches, task = checkpoint_rows(ckpt, record, ABLATION_ROWS)
    config = checkpoint.model_config(record, ckpt)
    core = split_model(model, config)[1]
    weight = model_strengths(
        [block_norms(np.abs(K), feature_map) for K in kernels if K is not None]
    )
    flow = model_strengths(flow_blocks(x0_of(model, config, batches), layers, feature_map))
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


def _spearman(a, b) -> float | None:
    """Spearman's rank correlation of two rankings; None with fewer than 3, or no order."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])
