"""``dcn explain``: which feature crosses a trained cross network learned.

For each cross layer it takes the matrix ``K`` with ``W x = x @ K`` (the
product ``U V`` for a low-rank layer; ``w 1^T`` (row i all w_i) for a DCN-V1
vector layer; one ``V_i C_i U_i`` per expert for DCN-Mix, plus their sum
weighted by the mean gate over the checkpoint's test rows) and draws ``|K|``,
or with ``block_norm`` the root mean square of each feature-by-feature block
(blocks are as wide as the features' embeddings, so they may differ; the
mean keeps a wide block from outranking a narrow one by its size alone).

``K[i, j]`` scales the cross ``x0_j * x_i``, so the strength of the unordered
cross of features ``a`` and ``b`` is the norm of both blocks together,
``sqrt(B[a, b]^2 + B[b, a]^2)``; a feature with itself is ``B[a, a]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli import backend
from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path
from dcn_cli.model import checkpoint

FIGURE_NOTE = (
    "Cell (i, j): how strongly the layer multiplies feature i (of its input) by feature j "
    "(of the model's input x0). The diagonal is a feature crossed with itself (e.g. a "
    "square). dcn explain's printed table ranks pairs of two features, combining (i, j) "
    "and (j, i). Layers count from 0."
)
GATE_ROWS = 4096  # test rows whose mean gate weighs a mixture's experts
RUNS_FIGURE = "explain-runs.png"  # several checkpoints' figure, by default here
ABLATION_ROWS = 20_000  # held-out rows each ablation is scored on
CONTROLS = 3  # the weakest pairs, ablated too: what no use costs
FLOW_ROWS = 4096  # held-out rows whose flow through each block is measured


def block_norms(matrix: np.ndarray, feature_map: list[dict]) -> np.ndarray:
    """Root mean square of each feature-by-feature block of ``matrix``.

    The Frobenius norm divided by the square root of the block's size: a
    number's block with another number has one entry where two 16-wide
    embeddings' has 256, and the plain norm would rank it by its size. On a
    ctr checkpoint the plain norm ranked the planted crosses 1st, 19th and
    675th of 780 pairs; this one ranks them 1st, 2nd and 3rd (docs/data.md).
    """
    n = len(feature_map)
    out = np.zeros((n, n))
    for i, a in enumerate(feature_map):
        for j, b in enumerate(feature_map):
            block = matrix[
                a["offset"] : a["offset"] + a["width"], b["offset"] : b["offset"] + b["width"]
            ]
            out[i, j] = np.linalg.norm(block, ord="fro") / np.sqrt(block.size)
    return out


def pair_strengths(blocks: np.ndarray) -> np.ndarray:
    """The strength of every unordered cross of a feature-by-feature strength matrix, in
    the order of :func:`pairs` (a with a, a with b, ..., b with b, ...)."""
    n = len(blocks)
    return np.array(
        [blocks[i, i] if i == j else np.hypot(blocks[i, j], blocks[j, i]) for i, j in pairs(n)]
    )


def pairs(n: int) -> list[tuple[int, int]]:
    """The unordered pairs ``(i, j)``, ``i <= j``, of ``n`` features, in matrix order."""
    return [(i, j) for i in range(n) for j in range(i, n)]


def top_crosses(blocks: np.ndarray, names: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` strongest unordered crosses of a feature-by-feature strength matrix."""
    strengths = pair_strengths(blocks)
    order = np.argsort(-strengths, kind="stable")  # ties keep the matrix order
    index = pairs(len(names))
    return [
        {"features": [names[index[p][0]], names[index[p][1]]], "strength": float(strengths[p])}
        for p in order[:k]
    ]


def ranks(values: np.ndarray) -> np.ndarray:
    """Each value's rank from the largest (1), ties sharing their mean rank."""
    order = np.argsort(-values, kind="stable")
    sorted_values = values[order]
    out = np.empty(len(values))
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        out[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return out


def agreement(strengths: np.ndarray, k: int) -> dict[str, Any]:
    """How far runs agree on the crosses, from ``strengths`` (runs by pairs).

    For every two runs: the share of their top ``k`` they have in common, and
    Spearman's rank correlation over all pairs. Returns each one's mean and
    minimum over the couples of runs, and which pairs are in every run's top ``k``.
    """
    runs = len(strengths)
    rank = np.array([ranks(row) for row in strengths])
    top = [set(np.flatnonzero(row <= k)) for row in rank]  # ties share their mean rank
    overlaps, correlations = [], []
    for a in range(runs):
        for b in range(a + 1, runs):
            overlaps.append(len(top[a] & top[b]) / k)
            if rank[a].std() > 0 and rank[b].std() > 0:  # all tied: no order to correlate
                correlations.append(float(np.corrcoef(rank[a], rank[b])[0, 1]))
            else:
                correlations.append(float("nan"))
    return {
        "ranks": rank,
        "overlap": _mean_min(overlaps),
        "spearman": _mean_min(correlations),
        "in_every_top": set.intersection(*top) if top else set(),
    }


def _mean_min(values: list[float]) -> dict[str, float] | None:
    """Mean and minimum, or None where there is none (one run; a run with no order)."""
    if not values or not np.all(np.isfinite(values)):
        return None
    return {"mean": float(np.mean(values)), "min": float(np.min(values))}


def _layer_matrices(layer, index: int, mean_gate: np.ndarray | None) -> list[tuple[str, Any]]:
    """``(title, K)`` panels of one cross layer."""
    from dcn_cli.model.layers import Cross, MixCross, VectorCross

    if isinstance(layer, Cross):
        kind = " (low rank, W = U V)" if layer.projection_dim else ""
        return [(f"cross layer {index}{kind}", layer.effective_kernel())]
    if isinstance(layer, VectorCross):
        w = np.asarray(layer.kernel)[:, 0]
        return [(f"cross layer {index} (DCN-V1: row i is w_i)", np.tile(w[:, None], (1, len(w))))]
    if isinstance(layer, MixCross):
        experts = layer.expert_kernels()
        panels = [(f"cross layer {index}, expert {e}", experts[e]) for e in range(len(experts))]
        weights = mean_gate if mean_gate is not None else np.full(len(experts), 1 / len(experts))
        gated = np.tensordot(weights, experts, axes=1)
        panels.append((f"cross layer {index}, experts' gated sum", gated))
        return panels
    raise DcnError(f"unsupported cross layer {type(layer).__name__}")


def _mean_gates(ckpt, model, record, cross_network, notes: list[str]) -> list:
    """Mean softmax gate of each mix layer over up to 4096 of the checkpoint's test rows.

    Without the training data (a checkpoint copied alone) the experts weigh
    equally, and ``notes`` says so.
    """
    from dcn_cli.data.sources import DataSpec, check_features
    from dcn_cli.data.splits import split_of
    from dcn_cli.data.table import head, to_numpy
    from dcn_cli.model.factory import cross_input_model
    from dcn_cli.model.layers import MixCross

    if not any(isinstance(layer, MixCross) for layer in cross_network.cross_layers):
        return [None] * len(cross_network.cross_layers)
    try:
        spec = DataSpec.from_record(record, ckpt)
    except DcnError as err:
        notes.append(f"{err}; the gated sum weighs the experts equally")
        return [None] * len(cross_network.cross_layers)
    keras = backend.load()
    table = spec.open()
    features = checkpoint.model_config(record, ckpt).features
    try:
        check_features(table.schema.columns, features, spec.data or "the built-in mixer")
    except DcnError as err:
        notes.append(f"{err}; the gated sum weighs the experts equally")
        return [None] * len(cross_network.cross_layers)
    rows = head(split_of(table, "test", spec.validation), GATE_ROWS, table.schema)
    x0 = cross_input_model(model)({f.name: to_numpy(rows[f.name]) for f in features})
    gates: list[np.ndarray | None] = []
    x = x0
    for layer in cross_network.cross_layers:
        if isinstance(layer, MixCross):
            logits = keras.ops.matmul(x, layer.gate_kernel)
            gates.append(np.asarray(keras.ops.mean(keras.ops.softmax(logits, axis=-1), axis=0)))
        else:
            gates.append(None)
        x = layer(x0, x)
    return gates


def explain(
    ckpt: str | Path,
    block_norm: bool = False,
    layer: int | None = None,
    top: int = 10,
    out: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Compute the panels, draw them to ``out`` and return what ``--json`` prints.

    ``out`` defaults to the checkpoint's own figure, redrawn each time; a file
    the user names is replaced only with ``force``.
    """
    if out is not None and Path(out).suffix.lower() != ".png":
        raise DcnError(f"{out}: explain draws a PNG; give --out a name ending in .png")
    if out is not None and Path(out).is_file() and not force:
        raise DcnError(f"{out}: exists; replace it with --force, or choose another --out")
    if top <= 0:
        raise DcnError(f"--top must be positive, got {top}")
    record, model, feature_map, cross_network = _cross_network(ckpt)
    names = [entry["name"] for entry in feature_map]
    chosen = _chosen_layers(ckpt, len(cross_network.cross_layers), layer)
    notes: list[str] = []
    gates = _mean_gates(ckpt, model, record, cross_network, notes)

    panels, layers_out = [], []
    for index in chosen:
        for title, matrix in _layer_matrices(
            cross_network.cross_layers[index], index, gates[index]
        ):
            matrix = np.abs(np.asarray(matrix, dtype=np.float64))
            blocks = block_norms(matrix, feature_map)
            panel = _panel(title, blocks if block_norm else matrix, feature_map, block_norm)
            panels.append(panel)
            if ", expert " not in title:  # the layer's own matrix (a mix layer's gated sum)
                layers_out.append(
                    {
                        "layer": index,
                        "features": names,
                        "matrix": (blocks if block_norm else matrix).tolist(),
                        "top": top_crosses(blocks, names, top),
                    }
                )
    out = Path(out) if out else Path(ckpt) / checkpoint.FIGURES[1 if block_norm else 0]
    from dcn_cli.plots import heatmaps

    with atomic_path(out) as tmp:
        heatmaps(panels, tmp, note=FIGURE_NOTE)
    return {"layers": layers_out, "figure": str(out), "notes": notes}


def explain_runs(
    ckpts: Sequence[str | Path],
    layer: int | None = None,
    top: int = 10,
    out: str | Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """The crosses of several runs of one model (seeds): each pair's strength in every
    run, its mean, spread and ranks, how far the runs agree, and a figure of it.

    ``out`` defaults to ``explain-runs.png`` here; a file there is replaced only
    with ``force``.
    """
    if top <= 0:
        raise DcnError(f"--top must be positive, got {top}")
    out = Path(out or RUNS_FIGURE)
    if out.suffix.lower() != ".png":
        raise DcnError(f"{out}: explain draws a PNG; give --out a name ending in .png")
    if out.is_file() and not force:
        raise DcnError(f"{out}: exists; replace it with --force, or choose another --out")
    notes: list[str] = []
    runs: list[dict[int, np.ndarray]] = []
    first: tuple[Any, list, int] | None = None
    chosen: list[int] = []
    for ckpt in ckpts:
        record, model, feature_map, network = _cross_network(ckpt)
        shape = [(entry["name"], entry["width"]) for entry in feature_map]
        count = len(network.cross_layers)
        if first is None:
            first, chosen = (ckpt, shape, count), _chosen_layers(ckpt, count, layer)
        elif shape != first[1]:
            raise DcnError(
                f"{ckpt}: its features differ from {first[0]}'s; explain compares runs of "
                "one model on one feature set"
            )
        elif count != first[2]:
            raise DcnError(
                f"{ckpt}: has {count} cross layer(s) where {first[0]} has {first[2]}; explain "
                "compares runs of one model"
            )
        gates = _mean_gates(ckpt, model, record, network, notes)
        blocks = {}
        for index in chosen:  # the layer's own matrix: a mix layer's gated sum is last
            _, matrix = _layer_matrices(network.cross_layers[index], index, gates[index])[-1]
            blocks[index] = block_norms(np.abs(np.asarray(matrix, np.float64)), feature_map)
        runs.append(blocks)
    assert first is not None
    names = [name for name, _ in first[1]]
    crosses = pairs(len(names))
    layers_out = []
    for i in chosen:
        strengths = np.array([pair_strengths(run[i]) for run in runs])
        agree = agreement(strengths, top)
        mean, std = strengths.mean(axis=0), strengths.std(axis=0, ddof=1)
        order = np.argsort(-mean, kind="stable")
        rows = [
            {
                "features": [names[crosses[p][0]], names[crosses[p][1]]],
                "mean": float(mean[p]),
                "std": float(std[p]),
                "strengths": strengths[:, p].tolist(),
                "ranks": agree["ranks"][:, p].tolist(),
                "in_every_top": bool(p in agree["in_every_top"]),
            }
            for p in order[:top]
        ]
        layers_out.append(
            {
                "layer": i,
                "runs": [str(c) for c in ckpts],
                "k": top,
                "pairs": len(crosses),
                "top_overlap": agree["overlap"],
                "rank_correlation": agree["spearman"],
                "in_every_top": len(agree["in_every_top"]),
                "top": rows,
            }
        )
    from dcn_cli.plots import run_crosses

    with atomic_path(out) as tmp:
        run_crosses(layers_out, tmp)
    return {"layers": layers_out, "figure": str(out), "notes": list(dict.fromkeys(notes))}


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
    record, model, feature_map, network = _cross_network(ckpt)
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


def _cross_network(ckpt: str | Path):
    """A checkpoint's record, model, feature map and cross network (an error without)."""
    record = checkpoint.load_record(ckpt)
    config = checkpoint.model_config(record, ckpt)
    model = checkpoint.load_model(ckpt, config)
    try:
        cross_network = model.get_layer("cross_network")
    except ValueError:
        raise DcnError(
            f"{ckpt}: the model has no cross layer (arch {record['model']['arch']!r}); "
            "explain needs a cross network"
        ) from None
    return record, model, config.feature_map(), cross_network


def _chosen_layers(ckpt, count: int, layer: int | None) -> list[int]:
    if layer is not None and not 0 <= layer < count:
        raise DcnError(
            f"--layer {layer} is out of range: {ckpt} has {count} cross "
            f"layer(s), numbered 0..{count - 1}"
        )
    return list(range(count)) if layer is None else [layer]


def _panel(title: str, matrix: np.ndarray, feature_map: list[dict], block_norm: bool) -> dict:
    names = [e["name"] for e in feature_map]
    if block_norm:
        return {
            "title": f"cross strength between features,\n{title}: RMS of |W| per block",
            "matrix": matrix,
            "labels": names,
            "ticks": list(range(len(names))),
            "colorbar": "RMS of |W| over the feature pair's block",
        }
    centres = [e["offset"] + (e["width"] - 1) / 2 for e in feature_map]
    bounds = (
        [e["offset"] for e in feature_map[1:]] if any(e["width"] > 1 for e in feature_map) else []
    )
    return {
        "title": f"cross strength |W| between features,\n{title}",
        "matrix": matrix,
        "labels": names,
        "ticks": centres,
        "bounds": bounds,
        "colorbar": "|W| entry (weight of x0_j * x_i)",
    }


# ------------------------------------------------------------------ one row

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
    record, model, feature_map, network = _cross_network(ckpt)
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
