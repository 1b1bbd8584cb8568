"""How much a model uses each block of its cross layers, on held-out rows: the
data-aware measures by which ``dcn explain`` ranks crosses (docs/explain.md).

- **Flow** ``F[i, j]``: the mean over rows of the norm of ``x0_j * (x_i @ K[i, j])``,
  the part of the layer's output for feature j that feature i's block of ``K``
  makes. Unlike the weights it counts how large the inputs are.
- **Effect** ``E[i, j]``: the mean over rows of ``|g_j . (x0_j * (x_i @ K[i, j]))|``,
  ``g`` being the gradient of the logit with respect to the layer's output: to
  first order, how far the logit moves when the block is taken away. It weighs the
  flow by what the layers above make of it, so a large part of the output that
  they ignore counts for little. Measured against ablation over every pair, it
  told the crosses a model uses best of the three (docs/explain.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.model import checkpoint

FLOW_ROWS = 4096  # held-out rows each block's flow and effect are measured on
EFFECT_BATCH = 1024  # rows per gradient
RANKINGS = ("effect", "flow", "strength")
MEASURED = ("effect", "flow")  # the rankings that need the data


def layer_kernel(layer) -> np.ndarray | None:
    """The ``(d, d)`` matrix ``K`` with ``W x = x @ K`` of a cross layer: ``U V`` for a
    low-rank DCN-V2 layer (without ``diag_scale``'s fixed ``s x``, which explain leaves in
    place), ``w 1^T`` for DCN-V1 (its output j takes ``x0_j * w . x``).
    None for a mixture layer, whose experts are not linear in ``x``."""
    from dcn_cli.model.layers import Cross, VectorCross

    if isinstance(layer, Cross):
        return layer.effective_kernel()  # learnt: diag_scale's fixed s x is no cross of it
    if isinstance(layer, VectorCross):
        w = np.asarray(layer.kernel)
        return np.tile(w, (1, len(w)))
    return None


def why_not_measured(layers) -> str | None:
    """Why the flow of these cross layers is not defined, or None where it is."""
    mixed = [layer for layer in layers if layer_kernel(layer) is None]
    if mixed:
        return (
            "effect and flow are not defined for DCN-Mix layers, whose experts are not "
            "linear in their input (no block of them is one cross's own)"
        )
    return None


def flow_blocks(x0: np.ndarray, layers, feature_map: list[dict]) -> list[np.ndarray]:
    """Each cross layer's ``F`` (features by features) over the rows of ``x0``; each
    layer's ``x_i`` is what flows into it."""
    x0 = np.asarray(x0, np.float64)[:FLOW_ROWS]
    starts = [entry["offset"] for entry in feature_map]
    out, x = [], x0
    for layer in layers:
        K = layer_kernel(layer)
        if K is None:
            raise DcnError(str(why_not_measured([layer])))
        blocks = np.zeros((len(feature_map), len(feature_map)))
        for i, entry in enumerate(feature_map):
            part = slice(entry["offset"], entry["offset"] + entry["width"])
            made = x0 * (x[:, part] @ K[part, :])  # feature i's share of every output
            norms = np.sqrt(np.add.reduceat(made**2, starts, axis=1))  # per output block
            blocks[i] = norms.mean(axis=0)
        out.append(blocks)
        x = np.asarray(layer(x0.astype(np.float32), x.astype(np.float32))).astype(np.float64)
    return out


def x0_of(model, config, batches) -> np.ndarray:
    """The cross network's input ``x0`` of the first :data:`FLOW_ROWS` encoded rows."""
    from dcn_cli.model.factory import core_cross_input

    up_to_x0 = core_cross_input(model, config)
    x0, rows = [], 0
    for x, _, _ in batches:
        x0.append(np.asarray(up_to_x0(x, training=False)))
        rows += len(x0[-1])
        if rows >= FLOW_ROWS:
            break
    return np.concatenate(x0)[:FLOW_ROWS]


def held_out(table, features, label: str, validation: float, limit: int):
    """Up to ``limit`` held-out rows of ``table``, encoded once: ``(split, rows, [(x, y,
    w)])``, from the validation split, else the test split."""
    import tensorflow as tf

    from dcn_cli.data.splits import split_by_file
    from dcn_cli.train.engine import EVAL_BATCH
    from dcn_cli.train.pipeline import Encoder, gathered, weights_of

    split = "validation" if validation else "test"
    encoder, batches, rows = Encoder(features), [], 0
    for _, chunks in split_by_file(table, split, validation):
        for chunk in gathered(chunks):
            chunk = chunk.slice(0, limit - rows)
            w = weights_of(chunk, table.schema.weight)
            for start, (x, y) in zip(
                range(0, chunk.num_rows, EVAL_BATCH),
                encoder.batches(chunk, label, EVAL_BATCH),
                strict=True,
            ):
                batches.append((x, y, tf.constant(w[start : start + EVAL_BATCH])))
            rows += chunk.num_rows
            if rows >= limit:
                return split, rows, batches
    if not rows:
        raise DcnError(f"{table.name}: no {split} rows to measure on")
    return split, rows, batches


def checkpoint_rows(ckpt: str | Path, record: dict[str, Any], limit: int):
    """The checkpoint's own held-out rows (:func:`held_out`), with its task: an error
    where its data is gone or changed."""
    from dcn_cli.data.sources import DataSpec
    from dcn_cli.inspect.evaluate import check_own_data

    config = checkpoint.model_config(record, ckpt)
    saved = DataSpec.from_record(record, ckpt)
    table = saved.open()
    check_own_data(config, table, saved.data or "the built-in mixer")
    label = checkpoint.label(record, ckpt)
    split, rows, batches = held_out(table, config.features, label, saved.validation, limit)
    return split, rows, batches, config.task


def effect_blocks(model, x0: np.ndarray, layers, feature_map: list[dict]) -> list[np.ndarray]:
    """Each cross layer's ``E`` (features by features) over the rows of ``x0``."""
    import tensorflow as tf

    from dcn_cli.model.factory import cross_input_to_logit

    to_logit = cross_input_to_logit(model)
    x0 = np.asarray(x0, np.float32)[:FLOW_ROWS]
    n, starts = len(feature_map), [entry["offset"] for entry in feature_map]
    sums = [np.zeros((n, n)) for _ in layers]
    for start in range(0, len(x0), EFFECT_BATCH):
        batch = x0[start : start + EFFECT_BATCH]
        probes = [tf.zeros(batch.shape, layer.compute_dtype) for layer in layers]
        for layer, probe in zip(layers, probes, strict=True):
            layer.probe = probe  # zeros added to its output: the tape reads its gradient
        try:
            with tf.GradientTape() as tape:
                tape.watch(probes)
                logit = tf.reduce_sum(tf.cast(to_logit(batch, training=False), tf.float32))
            grads = tape.gradient(logit, probes)
        finally:
            for layer in layers:
                layer.probe = None
        x = batch.astype(np.float64)
        for layer, grad, total in zip(layers, grads, sums, strict=True):
            if grad is None:  # a layer the logit does not reach through its probe: a bug
                raise RuntimeError(f"no gradient reached cross layer {layer.name}'s output")
            K, g = layer_kernel(layer), np.asarray(grad, np.float64)
            if K is None:
                raise DcnError(str(why_not_measured([layer])))
            for i, entry in enumerate(feature_map):
                part = slice(entry["offset"], entry["offset"] + entry["width"])
                moved = batch * (x[:, part] @ K[part, :]) * g  # per output: its share of dlogit
                total[i] += np.abs(np.add.reduceat(moved, starts, axis=1)).sum(axis=0)
            x = np.asarray(layer(batch, x.astype(np.float32)), np.float64)
    return [total / len(x0) for total in sums]


def measures(model, x0: np.ndarray, layers, feature_map: list[dict]) -> dict[str, list]:
    """Each cross layer's effect and flow blocks over the rows of ``x0``."""
    return {
        "effect": effect_blocks(model, x0, layers, feature_map),
        "flow": flow_blocks(x0, layers, feature_map),
    }


def check_ranking(rank_by: str | None) -> None:
    """``rank_by`` is None (the default) or one of :data:`RANKINGS`."""
    if rank_by not in (None, *RANKINGS):
        raise DcnError(f"--rank-by must be one of {', '.join(RANKINGS)}, got {rank_by!r}")


def checkpoint_measures(
    ckpt, record, model, network, feature_map, rank_by: str | None, notes: list[str]
) -> tuple[dict[str, Any] | None, str]:
    """Every cross layer's effect and flow on the checkpoint's held-out rows (with
    ``"split"`` and ``"rows"``, what they were measured on), and the ranking to use:
    ``rank_by``, or by default effect. Where they cannot be measured (no data, or a
    mixture layer) the ranking is strength and ``notes`` says why; asked for by name,
    the reason is an error."""
    check_ranking(rank_by)
    if rank_by == "strength":
        return None, "strength"
    try:
        reason = why_not_measured(network.cross_layers)
        if reason:
            raise DcnError(f"{ckpt}: {reason}")
        split, rows, batches, _ = checkpoint_rows(ckpt, record, FLOW_ROWS)
    except DcnError as err:
        if rank_by is not None:
            raise DcnError(
                f"{err}; --rank-by {rank_by} needs it (--rank-by strength does not)"
            ) from None
        notes.append(f"{err}; the crosses are ranked by the weights' strength")
        return None, "strength"
    config = checkpoint.model_config(record, ckpt)
    x0 = x0_of(model, config, batches)
    found = measures(model, x0, network.cross_layers, feature_map)
    return {**found, "split": split, "rows": len(x0)}, rank_by or "effect"


def gates_of(layers, x0: np.ndarray) -> list[np.ndarray | None]:
    """Each mixture layer's softmax gate, averaged over the rows of ``x0`` (None for
    other layers): how much each expert weighs in the layer's gated sum."""
    from dcn_cli.model.layers import MixCross

    gates: list[np.ndarray | None] = []
    x0 = np.asarray(x0, np.float32)
    x = x0
    for layer in layers:
        if isinstance(layer, MixCross):
            logits = x.astype(np.float64) @ np.asarray(layer.gate_kernel, np.float64)
            gate = np.exp(logits - logits.max(axis=1, keepdims=True))
            gates.append((gate / gate.sum(axis=1, keepdims=True)).mean(axis=0))
        else:
            gates.append(None)
        x = np.asarray(layer(x0, x))
    return gates
