"""``dcn explain``: which feature crosses a trained cross network learned.

For each cross layer it takes the matrix ``K`` with ``W x = x @ K`` (the
product ``U V`` for a low-rank layer; ``w 1^T`` (row i all w_i) for a DCN-V1
vector layer; one ``V_i C_i U_i`` per expert for DCN-Mix, plus their sum
weighted by the mean gate over the checkpoint's held-out rows) and draws ``|K|``,
or with ``block_norm`` the root mean square of each feature-by-feature block
(blocks are as wide as the features' embeddings, so they may differ; the
mean keeps a wide block from outranking a narrow one by its size alone).

``K[i, j]`` scales the cross ``x0_j * x_i``, so the strength of the unordered
cross of features ``a`` and ``b`` is the norm of both blocks together,
``sqrt(B[a, b]^2 + B[b, a]^2)``; a feature with itself is ``B[a, a]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path
from dcn_cli.model import checkpoint

FIGURE_NOTE = (
    "Cell (i, j): how strongly the layer multiplies feature i (of its input) by feature j "
    "(of the model's input x0). The diagonal is a feature crossed with itself (e.g. a "
    "square). dcn explain's printed table ranks pairs of two features, combining (i, j) "
    "and (j, i). Layers count from 0."
)
GATE_ROWS = 4096  # held-out rows whose mean gate weighs a mixture's experts


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


def top_crosses(
    blocks: np.ndarray,
    names: list[str],
    k: int,
    measured: dict[str, np.ndarray] | None = None,
    rank_by: str = "strength",
) -> list[dict[str, Any]]:
    """The ``k`` strongest unordered crosses of a feature-by-feature strength matrix;
    given the layer's effect and flow blocks (:mod:`dcn_cli.inspect.use`), the ``k``
    first by ``rank_by``, each with all three."""
    values = {"strength": pair_strengths(blocks)}
    values |= {name: pair_strengths(b) for name, b in (measured or {}).items()}
    order = np.argsort(-values[rank_by], kind="stable")  # ties keep the matrix order
    index = pairs(len(names))
    return [
        {
            "features": [names[index[p][0]], names[index[p][1]]],
            **{name: float(v[p]) for name, v in values.items()},
        }
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


def layer_matrices(layer, index: int, mean_gate: np.ndarray | None) -> list[tuple[str, Any]]:
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


def mean_gates(ckpt, model, record, cross_network, notes: list[str]) -> list:
    """Mean softmax gate of each mix layer over up to 4096 of the checkpoint's held-out
    rows (the validation split, else the test split).

    Without the training data (a checkpoint copied alone) the experts weigh
    equally, and ``notes`` says so.
    """
    from dcn_cli.data.sources import DataSpec, check_features
    from dcn_cli.data.splits import split_of
    from dcn_cli.data.table import head, to_numpy
    from dcn_cli.inspect.use import gates_of
    from dcn_cli.model.factory import cross_input_model
    from dcn_cli.model.layers import MixCross

    if not any(isinstance(layer, MixCross) for layer in cross_network.cross_layers):
        return [None] * len(cross_network.cross_layers)
    try:
        spec = DataSpec.from_record(record, ckpt)
    except DcnError as err:
        notes.append(f"{err}; the gated sum weighs the experts equally")
        return [None] * len(cross_network.cross_layers)
    table = spec.open()
    features = checkpoint.model_config(record, ckpt).features
    try:
        check_features(table.schema.columns, features, spec.data or "the built-in mixer")
    except DcnError as err:
        notes.append(f"{err}; the gated sum weighs the experts equally")
        return [None] * len(cross_network.cross_layers)
    held_out = "validation" if spec.validation else "test"  # as flow's rows
    rows = head(split_of(table, held_out, spec.validation), GATE_ROWS, table.schema)
    x0 = cross_input_model(model)({f.name: to_numpy(rows[f.name]) for f in features})
    return gates_of(cross_network.cross_layers, np.asarray(x0))


def explain(
    ckpt: str | Path,
    block_norm: bool = False,
    layer: int | None = None,
    top: int = 10,
    out: str | Path | None = None,
    force: bool = False,
    rank_by: str | None = None,
) -> dict[str, Any]:
    """Compute the panels, draw them to ``out`` and return what ``--json`` prints.

    ``out`` defaults to the checkpoint's own figure, redrawn each time; a file
    the user names is replaced only with ``force``. The crosses are ranked by
    ``rank_by``: "effect", "flow" or "strength"; by default effect where the
    checkpoint's data is at hand (:func:`dcn_cli.inspect.use.checkpoint_measures`).
    """
    if out is not None:
        check_figure(Path(out), force)
    if top <= 0:
        raise DcnError(f"--top must be positive, got {top}")
    record, model, feature_map, cross_network = load_cross_network(ckpt)
    names = [entry["name"] for entry in feature_map]
    chosen = chosen_layers(ckpt, len(cross_network.cross_layers), layer)
    notes: list[str] = []
    gates = mean_gates(ckpt, model, record, cross_network, notes)
    from dcn_cli.inspect.use import MEASURED, checkpoint_measures

    found, ranking = checkpoint_measures(
        ckpt, record, model, cross_network, feature_map, rank_by, notes
    )

    panels, layers_out = [], []
    for index in chosen:
        for title, matrix in layer_matrices(cross_network.cross_layers[index], index, gates[index]):
            matrix = np.abs(np.asarray(matrix, dtype=np.float64))
            blocks = block_norms(matrix, feature_map)
            panel = _panel(title, blocks if block_norm else matrix, feature_map, block_norm)
            panels.append(panel)
            if ", expert " not in title:  # the layer's own matrix (a mix layer's gated sum)
                mine = {m: found[m][index] for m in MEASURED} if found else None
                layers_out.append(
                    {
                        "layer": index,
                        "features": names,
                        "matrix": (blocks if block_norm else matrix).tolist(),
                        "ranked_by": ranking,
                        **({m: v.tolist() for m, v in mine.items()} if mine else {}),
                        **({"rows": found["rows"], "split": found["split"]} if found else {}),
                        "top": top_crosses(blocks, names, top, mine, ranking),
                    }
                )
    out = Path(out) if out else Path(ckpt) / checkpoint.FIGURES[1 if block_norm else 0]
    from dcn_cli.plots import heatmaps

    with atomic_path(out) as tmp:
        heatmaps(panels, tmp, note=FIGURE_NOTE)
    return {"layers": layers_out, "figure": str(out), "notes": notes}


def check_figure(out: Path, force: bool) -> None:
    """A figure may be written to ``out`` (a PNG, and not a file kept without ``force``)."""
    if out.suffix.lower() != ".png":
        raise DcnError(f"{out}: explain draws a PNG; give --out a name ending in .png")
    if out.is_file() and not force:
        raise DcnError(f"{out}: exists; replace it with --force, or choose another --out")


def load_cross_network(ckpt: str | Path):
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


def chosen_layers(ckpt, count: int, layer: int | None) -> list[int]:
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
