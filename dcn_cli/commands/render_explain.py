"""What ``dcn explain`` prints: the strongest crosses, of one run or several, what an
ablation costs, and one row's parts."""

from __future__ import annotations

from typing import Any

from dcn_cli.commands.render import console, print_json, titled, warn

NOTES = {
    "effect": "effect of a pair of features a, b: how far the logit moves, to first order, "
    "without its blocks of the layer's matrix K: the mean over held-out rows of "
    "|g_b · (x0_b * (x_a @ K[a, b]))|, g being the logit's gradient with respect to the "
    "layer's output, combined with (b, a) as √(E[a,b]² + E[b,a]²); of the three it told "
    "best the crosses a model uses (docs/explain.md)",
    "flow": "flow: the same without g, the mean of the norm (over b's block) of "
    "x0_b * (x_a @ K[a, b]): what the blocks add to the layer's output, whatever the "
    "layers above make of it",
    "strength": "strength: √(B[a,b]² + B[b,a]²), B being the root mean square of |W| over "
    "a feature-by-feature block (the --block-norm figure), the weights alone; of a "
    "feature with itself: B[a,a]",
}
SHOWN = ("effect", "flow", "strength")


def crosses(result: dict[str, Any], as_json: bool) -> None:
    """``dcn explain``'s strongest crosses per layer, or its matrices as JSON."""
    for note in result.get("notes", []):
        warn(note)
    if as_json:
        layers = result["layers"]
        shown: Any = layers[0] if len(layers) == 1 else layers
        if "ablation" in result:
            shown = {"layers": layers, "ablation": result["ablation"]}
        print_json(shown)
        return
    from rich.table import Table

    out = console()
    for entry in result["layers"]:
        columns = [name for name in SHOWN if name in entry["top"][0]]
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("cross")
        for name in columns:
            table.add_column(name, justify="right")
        for rank, cross in enumerate(entry["top"], start=1):
            cells = [f"{cross[name]:.4g}" for name in columns]
            table.add_row(str(rank), " × ".join(cross["features"]), *cells)
        ranking = entry["ranked_by"]
        rows = f" on {entry['rows']:,} {entry['split']} rows" if ranking != "strength" else ""
        titled(out, f"strongest crosses by {ranking}{rows}, cross layer {entry['layer']}", table)
    shown_once = [name for name in SHOWN if name in result["layers"][0]["top"][0]]
    for name in shown_once:
        out.print(NOTES[name], highlight=False, soft_wrap=True)
    if "ablation" in result:
        _ablation(out, result["ablation"])
    print(f"wrote {result['figure']}")


def _ablation(out, ablation: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table()
    names = ["cross", *(f"{name} (rank)" for name in SHOWN), "loss change", "rank by loss"]
    for name in names:
        table.add_column(name, justify="left" if name == "cross" else "right")
    for row in ablation["pairs"]:
        table.add_row(
            " × ".join(row["features"]) + (" (control)" if row["control"] else ""),
            *(f"{row[name]:.3g} ({row[f'{name}_rank']:g})" for name in SHOWN),
            f"{row['loss_change']:+.3g}",
            f"{row['loss_rank']:g}",
        )
    titled(
        out,
        f"each cross zeroed in every cross layer: loss on {ablation['rows']:,} "
        f"{ablation['split']} rows, {ablation['loss']:.4g} with all",
        table,
    )
    for name, value in ablation["rank_correlations"].items():
        if value is not None:
            out.print(
                f"rank correlation of {name} and loss change (Spearman): {value:.2f}",
                highlight=False,
            )
    out.print(
        "effect, flow and strength here: over all cross layers (the root sum of their squares)",
        highlight=False,
        soft_wrap=True,
    )


def row_parts(result: dict[str, Any], top: int, as_json: bool) -> None:
    """``dcn explain --data``: each feature's part of one row's logit, and its ``top``
    pairs; or all of it as JSON."""
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    out = console()
    exact = result["method"] == "exact"
    table = Table()
    table.add_column("feature")
    table.add_column("part of the logit", justify="right")
    for entry in result["features"]:
        table.add_row(entry["feature"], f"{entry['contribution']:+.4g}")
    check = result["check"]
    titled(
        out,
        f"row {result['row']} of {result['data']}: logit {result['logit']:.4g}, prediction "
        f"{result['prediction']:.4g} ({result['method']})",
        table,
    )
    base = "the output's bias" if exact else "the logit at x0 = 0"
    out.print(
        f"{base} {check['base']:+.4g} and the parts add up to {check['sum_of_parts']:.6g} "
        f"(the logit: {check['adds_up_to']:.6g}; gap {check['gap']:.1e})",
        highlight=False,
        soft_wrap=True,
    )
    table = Table()
    table.add_column("cross")
    if exact:
        table.add_column("part of the logit", justify="right")
    table.add_column("size in cross layer 0's output", justify="right")
    for entry in result["pairs"][:top]:
        cells = [f"{entry['contribution']:+.4g}"] if exact else []
        table.add_row(" × ".join(entry["features"]), *cells, f"{entry['first_layer_part']:.4g}")
    titled(out, "its strongest crosses", table)


def run_crosses(result: dict[str, Any], as_json: bool) -> None:
    """``dcn explain`` of several runs: per layer, the crosses strongest on average, their
    ranks in each run, and how far the runs agree; or all of it as JSON."""
    for note in result.get("notes", []):
        warn(note)
    if as_json:
        print_json(result)
        return
    run_tables(result["layers"])
    print(f"wrote {result['figure']}")


def run_tables(layers: list[dict[str, Any]], model: str = "") -> None:
    """The tables of :func:`run_crosses` (of ``model``'s runs, in ``dcn compare``)."""
    from rich.table import Table

    out = console()
    for entry in layers:
        k = entry["k"]
        table = Table()
        table.add_column("rank", justify="right")
        table.add_column("cross")
        table.add_column(f"{entry['ranked_by']}, mean ± sd", justify="right")
        table.add_column("rank in each run", justify="right")
        table.add_column(f"top {k} in every run", justify="center")
        for rank, row in enumerate(entry["top"], start=1):
            table.add_row(
                str(rank),
                " × ".join(row["features"]),
                f"{row['mean']:.4g} ± {row['std']:.2g}",
                " ".join(f"{r:g}" for r in row["ranks"]),
                "yes" if row["in_every_top"] else "",
            )
        runs = len(entry["runs"])
        of = f"{model}: crosses of its" if model else "crosses of"
        titled(out, f"{of} {runs} runs, cross layer {entry['layer']}", table)
        overlap, correlation = entry["top_overlap"], entry["rank_correlation"]
        parts = [
            f"{entry['in_every_top']} of {entry['pairs']} pairs are in the top {k} of every run"
        ]
        if overlap:
            parts.append(
                f"two runs share {overlap['mean']:.0%} of their top {k} on average "
                f"(at least {overlap['min']:.0%})"
            )
        if correlation:
            parts.append(
                f"rank correlation (Spearman) over all pairs {correlation['mean']:.2f} on "
                f"average (at least {correlation['min']:.2f})"
            )
        out.print("; ".join(parts), highlight=False, soft_wrap=True)
    out.print(NOTES[layers[0]["ranked_by"]], highlight=False, soft_wrap=True)
