"""``dcn explain --ablate``: which crosses a model uses, measured by taking each away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.inspect.explain import block_norms, load_cross_network, pair_strengths, pairs, ranks
from dcn_cli.inspect.use import (
    MEASURED,
    checkpoint_rows,
    layer_kernel,
    measures,
    why_not_measured,
    x0_of,
)
from dcn_cli.model import checkpoint

ABLATION_ROWS = 20_000  # held-out rows each ablation is scored on
CONTROLS = 3  # the weakest pairs, ablated too: what no use costs


def model_strengths(blocks: list[np.ndarray]) -> np.ndarray:
    """Each unordered cross's strength in the whole cross network: the root sum of its
    squared strengths in every layer (one layer: that layer's)."""
    return np.sqrt(np.sum([pair_strengths(b) ** 2 for b in blocks], axis=0))


def ablate(ckpt: str | Path, k: int, controls: int = CONTROLS) -> dict[str, Any]:
    """What the model loses without each of its ``k`` strongest crosses by each ranking
    (strength, and effect and flow: :mod:`dcn_cli.inspect.use`), and without its
    ``controls`` weakest by strength: the pair's two blocks of every cross layer's K
    set to 0, the loss measured again on up to :data:`ABLATION_ROWS` held-out rows (the
    validation split, else the test split). Each ranking's Spearman correlation with
    the loss each pair costs says which one tells the crosses the model uses."""
    if k <= 0:
        raise DcnError(f"--ablate must be positive, got {k}")
    record, model, feature_map, network = load_cross_network(ckpt)
    layers = network.cross_layers
    reason = why_not_measured(layers)
    if reason:
        raise DcnError(f"{ckpt}: --ablate zeroes blocks of each cross layer's W; {reason}")
    from dcn_cli.model.factory import split_model

    split, rows, batches, task = checkpoint_rows(ckpt, record, ABLATION_ROWS)
    config = checkpoint.model_config(record, ckpt)
    core = split_model(model, config)[1]
    kernels = [np.asarray(layer_kernel(layer)) for layer in layers]  # none is a mix layer
    strength = [block_norms(np.abs(K), feature_map) for K in kernels]
    found = measures(model, x0_of(model, config, batches), layers, feature_map)
    values = {"strength": model_strengths(strength)}
    values |= {name: model_strengths(found[name]) for name in MEASURED}
    tops = {name: np.argsort(-v, kind="stable")[:k] for name, v in values.items()}
    chosen = list(dict.fromkeys(p for top in tops.values() for p in top))
    weakest = np.argsort(values["strength"], kind="stable")
    chosen += [p for p in weakest if p not in chosen][:controls][::-1]

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
    ranked = {name: ranks(v) for name, v in values.items()}
    out = []
    for p in chosen:
        a, b = (feature_map[i] for i in crosses[p])
        mask = np.ones((dim, dim))
        for i, j in ((a, b), (b, a)):
            mask[i["offset"] : i["offset"] + i["width"], j["offset"] : j["offset"] + j["width"]] = 0
        row: dict[str, Any] = {"features": [a["name"], b["name"]]}
        for name in values:
            row[name], row[f"{name}_rank"] = float(values[name][p]), float(ranked[name][p])
        row["loss_change"] = loss(mask) - base
        row["control"] = bool(not any(p in top for top in tops.values()))
        out.append(row)
    by_loss = ranks(np.array([row["loss_change"] for row in out]))
    for row, r in zip(out, by_loss, strict=True):
        row["loss_rank"] = float(r)
    correlations = {n: _spearman([r[f"{n}_rank"] for r in out], by_loss) for n in values}
    return {
        "split": split,
        "rows": rows,
        "loss": base,
        "pairs": out,
        "rank_correlations": correlations,
    }


def _spearman(a, b) -> float | None:
    """Spearman's rank correlation of two rankings; None with fewer than 3, or no order."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])
