"""How far runs of one model (seeds) agree on its crosses: ``dcn explain CKPT CKPT ...``
and ``dcn compare --explain``.

Each run's crosses are ranked by effect (:mod:`dcn_cli.inspect.use`) where every
run has it, else by the weights' strength; for every two runs, the share of their top k
they have in common and Spearman's rank correlation over all pairs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dcn_cli.errors import DcnError
from dcn_cli.fileio import atomic_path
from dcn_cli.inspect.explain import (
    block_norms,
    check_figure,
    chosen_layers,
    layer_matrices,
    load_cross_network,
    mean_gates,
    pair_strengths,
    pairs,
    ranks,
)

RUNS_FIGURE = "explain-runs.png"  # several checkpoints' figure, by default here


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
            overlaps.append(len(top[a] & top[b]) / min(k, strengths.shape[1]))
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


def explain_runs(
    ckpts: Sequence[str | Path],
    layer: int | None = None,
    top: int = 10,
    out: str | Path | None = None,
    force: bool = False,
    rank_by: str | None = None,
) -> dict[str, Any]:
    """The crosses of several runs of one model (seeds): each pair's effect (or the
    ranking ``rank_by`` names, as for :func:`explain`) in every run, its mean, spread
    and ranks, how far the runs agree, and a figure of it.

    ``out`` defaults to ``explain-runs.png`` here; a file there is replaced only
    with ``force``.
    """
    if top <= 0:
        raise DcnError(f"--top must be positive, got {top}")
    out = Path(out or RUNS_FIGURE)
    check_figure(out, force)
    notes: list[str] = []
    names, chosen, runs = _runs_blocks(ckpts, layer, rank_by, notes)
    result = runs_agreement(names, chosen, runs, [str(c) for c in ckpts], top)
    if result["layers"][0]["ranked_by"] != runs[0]["ranked_by"]:
        notes.append("so every run's crosses are ranked by the weights' strength")
    draw_runs(result["layers"], out)
    return {**result, "figure": str(out), "notes": list(dict.fromkeys(notes))}


def draw_runs(layers: list[dict[str, Any]], out: Path) -> None:
    from dcn_cli.plots import run_crosses

    with atomic_path(out) as tmp:
        run_crosses(layers, tmp)


def runs_agreement(
    names: list[str], chosen: list[int], runs: list[dict], labels: list[str], top: int
) -> dict[str, Any]:
    """Per cross layer in ``chosen``, how far ``runs`` agree: each is ``{"ranked_by":
    a ranking, ranking: {layer: feature-by-feature blocks}, ...}`` (:func:`network_blocks`),
    all ranked one way (by strength if any run lacks their ranking)."""
    ranked_by = runs[0]["ranked_by"]
    if any(ranked_by not in run for run in runs):
        ranked_by = "strength"
    crosses = pairs(len(names))
    layers_out = []
    for i in chosen:
        values = np.array([pair_strengths(run[ranked_by][i]) for run in runs])
        agree = agreement(values, top)
        mean, std = values.mean(axis=0), values.std(axis=0, ddof=1)
        order = np.argsort(-mean, kind="stable")
        rows = [
            {
                "features": [names[crosses[p][0]], names[crosses[p][1]]],
                "mean": float(mean[p]),
                "std": float(std[p]),
                "values": values[:, p].tolist(),
                "ranks": agree["ranks"][:, p].tolist(),
                "in_every_top": bool(p in agree["in_every_top"]),
            }
            for p in order[:top]
        ]
        layers_out.append(
            {
                "layer": i,
                "runs": labels,
                "ranked_by": ranked_by,
                "k": top,
                "pairs": len(crosses),
                "top_overlap": agree["overlap"],
                "rank_correlation": agree["spearman"],
                "in_every_top": len(agree["in_every_top"]),
                "top": rows,
            }
        )
    return {"layers": layers_out}


def network_blocks(network, feature_map, gates, chosen, found, ranking) -> dict[str, Any]:
    """One run's blocks per chosen layer, by strength (a mix layer's gated sum) and,
    where measured (``found``, :func:`dcn_cli.inspect.use.measures`), by effect and
    flow: what :func:`runs_agreement` takes for each run, to rank by ``ranking``."""
    from dcn_cli.inspect.use import MEASURED

    blocks: dict[str, Any] = {"ranked_by": ranking, "strength": {}}
    for index in chosen:  # the layer's own matrix: a mix layer's gated sum is last
        _, matrix = layer_matrices(network.cross_layers[index], index, gates[index])[-1]
        blocks["strength"][index] = block_norms(np.abs(np.asarray(matrix, np.float64)), feature_map)
    for name in MEASURED if found else ():
        blocks[name] = {index: found[name][index] for index in chosen}
    return blocks


def _runs_blocks(ckpts, layer: int | None, rank_by: str | None, notes: list[str]):
    """The feature names, the layers chosen and each run's blocks per layer, from
    checkpoints that must share their features and cross layers."""
    from dcn_cli.inspect.use import checkpoint_measures

    runs: list[dict[str, Any]] = []
    first: tuple[Any, list, int] | None = None
    chosen: list[int] = []
    for ckpt in ckpts:
        record, model, feature_map, network = load_cross_network(ckpt)
        shape = [(entry["name"], entry["width"]) for entry in feature_map]
        count = len(network.cross_layers)
        if first is None:
            first, chosen = (ckpt, shape, count), chosen_layers(ckpt, count, layer)
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
        gates = mean_gates(ckpt, model, record, network, notes)
        found, ranking = checkpoint_measures(
            ckpt, record, model, network, feature_map, rank_by, notes
        )
        runs.append(network_blocks(network, feature_map, gates, chosen, found, ranking))
    assert first is not None
    return [name for name, _ in first[1]], chosen, runs


class CompareCrosses:
    """``dcn compare --explain``: each trained run's crosses, read as ``compare`` trains
    (its ``after_run`` hook), then how far each model's runs agree, as
    :func:`explain_runs` says it of checkpoints. Effect and flow are measured on up to
    4,096 held-out rows (the validation split, else the test split) of the compared data."""

    def __init__(self, top: int = 10):
        self.top = top
        self.models: list[dict[str, Any]] = []  # per compared model with a cross network
        self.notes: list[str] = []

    def __call__(self, name: str, seed: int, model, config, prepared) -> None:
        from dcn_cli.inspect import use

        if not config.uses_cross:
            if not seed:
                self.notes.append(f"{name}: has no cross network, so no crosses to explain")
            return
        network = model.get_layer("cross_network")
        layers, feature_map = network.cross_layers, config.feature_map()
        if not seed:  # compare trains each model's seeds 0..N-1 in turn: a new model
            label = prepared.schema.label
            split, _, batches = use.held_out(
                prepared.table, config.features, label, prepared.validation, use.FLOW_ROWS
            )
            reason = use.why_not_measured(layers)
            if reason:
                self.notes.append(f"{name}: {reason}; its crosses are ranked by strength")
            self.models.append(
                {
                    "model": name,
                    "names": [e["name"] for e in feature_map],
                    "split": split,
                    "batches": batches,
                    "ranking": "strength" if reason else "effect",
                    "runs": [],
                }
            )
        entry = self.models[-1]
        x0 = use.x0_of(model, config, entry["batches"])
        entry["rows"] = len(x0)
        ranking = entry["ranking"]
        found = use.measures(model, x0, layers, feature_map) if ranking == "effect" else None
        chosen = list(range(len(layers)))
        gates = use.gates_of(layers, x0)
        entry["runs"].append(network_blocks(network, feature_map, gates, chosen, found, ranking))

    def results(self) -> list[dict[str, Any]]:
        """Per compared model with a cross network, in order: :func:`runs_agreement` of its
        runs, with the held-out rows their effect was measured on."""
        out = []
        for entry in self.models:
            runs, name = entry["runs"], entry["model"]
            labels = [f"{name} seed {seed}" for seed in range(len(runs))]
            chosen = sorted(runs[0]["strength"])
            agreed = runs_agreement(entry["names"], chosen, runs, labels, self.top)
            out.append({"model": name, **agreed, "split": entry["split"], "rows": entry["rows"]})
        return out
