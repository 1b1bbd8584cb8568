"""Figures: the comparison bar chart and the cross-matrix heatmaps.

matplotlib runs headless (Agg) and is imported only when a figure is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(result: dict[str, Any], path: Path) -> None:
    """Mean metric per model (bars, standard deviation as error bars), each run a dot.

    The y-axis starts near the lowest run, not at 0, to show differences of a
    few thousandths; the axis says where it starts.
    """
    plt = _pyplot()
    models = result["models"]
    names = [m["name"] for m in models]
    means = np.array([m["mean"] for m in models])
    runs = [np.asarray(m["runs"], dtype=float) for m in models]
    every = np.concatenate(runs)
    spread = max(float(every.max() - every.min()), float(np.max([m["std"] for m in models])), 1e-9)
    from matplotlib.ticker import MaxNLocator

    # Start at a round tick below the lowest run, or at 0 when that is near.
    low, top = float(every.min() - 0.5 * spread), float(every.max() + 0.3 * spread)
    ticks = MaxNLocator(nbins=6).tick_values(max(low, 0.0), top)
    bottom = max(0.0, float(max(t for t in ticks if t <= max(low, 0.0))))
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 3, 4.4))
    positions = np.arange(len(names))
    ax.bar(
        positions,
        means - bottom,
        bottom=bottom,
        yerr=[m["std"] for m in models],
        capsize=6,
        color="#a6bddb",
        edgecolor="#4c72b0",
        label="mean ± std",
    )
    for i, values in enumerate(runs):
        jitter = np.linspace(-0.18, 0.18, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(
            positions[i] + jitter,
            values,
            s=18,
            color="#08306b",
            zorder=3,
            label="one run" if i == 0 else None,
        )
    ax.set_xticks(positions)
    ax.set_xticklabels(
        [
            name if m["p_value"] is None else f"{name}\np = {m['p_value']:.2g} vs {names[0]}"
            for name, m in zip(names, models, strict=True)
        ],
        fontsize=8,
    )
    ax.set_ylim(bottom, top)
    t = result.get("training", {})
    count = t.get("runs", len(models[0]["runs"]))
    from dcn_cli.settings import HIGHER_IS_BETTER

    better = "higher is better" if result["metric"] in HIGHER_IS_BETTER else "lower is better"
    better = "nearest 1 is best" if result["metric"] == "calibration" else better
    ax.set_ylabel(f"test {result['metric']} ({better})")
    ax.set_xlabel("model")
    start = "0" if bottom == 0 else f"{bottom:.4g}, not 0"
    ax.set_title(
        f"dcn compare: test {result['metric']} on {result.get('data', '')}, {count} runs per model"
        f"\n(y-axis starts at {start})",
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def heatmaps(panels: list[dict[str, Any]], path: Path, note: str = "") -> None:
    """One heatmap per panel, each with axis titles and a labelled colour bar.

    A panel is ``{"title", "matrix", "labels", "ticks", "colorbar"}``: ``ticks``
    are the positions of ``labels`` on both axes (block centres for embedded
    features); ``bounds`` (optional) draws the block edges. ``note`` goes
    under the figure.
    """
    plt = _pyplot()
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cols = min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    size = 6.0 if max(len(p["labels"]) for p in panels) > 4 else 5.0
    count = max(len(p["labels"]) for p in panels)
    size = max(size, 0.16 * count)  # room for every feature's name
    font = 8 if count <= 24 else max(5, 8 * 24 / count)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.6), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        image = ax.matshow(panel["matrix"], cmap=plt.cm.Blues)
        ax.set_xticks(panel["ticks"])
        ax.set_yticks(panel["ticks"])
        ax.set_xticklabels(panel["labels"], rotation=90, ha="center", fontsize=font)
        ax.set_yticklabels(panel["labels"], fontsize=font)
        ax.xaxis.set_label_position("top")
        ax.set_xlabel("feature j, multiplied by x0_j", fontsize=8)
        ax.set_ylabel("feature i of the layer's input x_l", fontsize=8)
        for edge in panel.get("bounds", []):
            ax.axhline(edge - 0.5, color="grey", linewidth=0.4)
            ax.axvline(edge - 0.5, color="grey", linewidth=0.4)
        ax.set_title(panel["title"], fontsize=9, pad=12)
        cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.05)
        bar = fig.colorbar(image, cax=cax)
        bar.set_label(panel.get("colorbar", ""), fontsize=8)
        bar.ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout(rect=(0, 0.08 if note else 0, 1, 1))
    if note:
        fig.text(0.02, 0.01, note, fontsize=7, wrap=True, va="bottom")
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def reliability_diagram(
    bins: dict[str, list[float]], metrics: dict[str, Any], title: str, path: Path
) -> None:
    """Observed click rate against mean prediction per bin of equal rows, with the diagonal
    a calibrated model follows; both axes on the predictions' own range."""
    plt = _pyplot()
    predicted, observed = np.array(bins["predicted"]), np.array(bins["observed"])
    top = float(max(predicted.max(), observed.max(), 1e-6)) * 1.05
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, top], [0, top], linestyle="--", color="#999999", label="calibrated")
    ax.plot(predicted, observed, marker="o", color="#4c72b0", label="model, per bin")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("mean predicted probability in the bin")
    ax.set_ylabel("observed rate of positive labels in the bin")
    figures = [f"{name} {metrics[name]:.4f}" for name in ("calibration", "ne") if name in metrics]
    ax.set_title(
        f"reliability: {len(predicted)} bins of equal rows\n{title}"
        + (f"\n{', '.join(figures)}" if figures else ""),
        fontsize=9,
    )
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def tune_history(rows: list[dict[str, Any]], metric: str, maximize: bool, path: Path) -> None:
    """Each trial's validation value (pruned ones hollow) and the best so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    pruned = [r for r in rows if r["state"] == "pruned" and r["value"] is not None]
    ax.scatter(
        [r["number"] for r in done],
        [r["value"] for r in done],
        s=22,
        color="#4c72b0",
        label="complete trial",
    )
    if pruned:
        ax.scatter(
            [r["number"] for r in pruned],
            [r["value"] for r in pruned],
            s=22,
            facecolors="none",
            edgecolors="#999999",
            label="pruned (last epoch reported)",
        )
    best, xs, ys = None, [], []
    for r in sorted(done, key=lambda r: r["number"]):
        if best is None or (r["value"] > best if maximize else r["value"] < best):
            best = r["value"]
        xs.append(r["number"])
        ys.append(best)
    ax.step(xs, ys, where="post", color="#c44e52", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(
        f"dcn tune: validation {metric} per trial ({'higher' if maximize else 'lower'} is better)",
        fontsize=10,
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def importance_chart(importances: dict[str, float], metric: str, path: Path) -> None:
    """Each searched setting's importance (shares summing to 1), largest on top."""
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(names) + 1.6))
    ax.barh(names, [importances[n] for n in names], color="#a6bddb", edgecolor="#4c72b0")
    ax.set_xlabel(f"importance for validation {metric} (PED-ANOVA, shares sum to 1)")
    ax.set_title("dcn tune: which settings mattered", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def run_crosses(layers: list[dict[str, Any]], path: Path) -> None:
    """Per cross layer, the strongest crosses by their mean over runs: a bar for the mean
    and a dot for each run, starred where the cross is in every run's top k."""
    plt = _pyplot()
    height = sum(0.32 * len(entry["top"]) + 1.2 for entry in layers) + 0.6
    fig, axes = plt.subplots(len(layers), 1, figsize=(7.5, height), squeeze=False)
    for ax, entry in zip(axes[:, 0], layers, strict=True):
        rows = entry["top"][::-1]
        y = np.arange(len(rows))
        labels = [" × ".join(r["features"]) + (" *" if r["in_every_top"] else "") for r in rows]
        ax.barh(y, [r["mean"] for r in rows], color="#a6bddb", edgecolor="#4c72b0", label="mean")
        for at, row in zip(y, rows, strict=True):
            ax.plot(row["values"], [at] * len(row["values"]), "o", color="#08306b", ms=3)
        ax.set_yticks(y, labels, fontsize=8)
        measure = {
            "effect": "cross effect (mean |change of the logit| without it, to first order)",
            "flow": "cross flow (mean |x0_j (x_i @ K[i, j])| on held-out rows)",
            "strength": "cross strength (block RMS of |W|)",
        }[entry["ranked_by"]]
        ax.set_xlabel(f"{measure}; a dot per run")
        agree = entry["top_overlap"]
        shared = f", top-{entry['k']} overlap {agree['mean']:.2f}" if agree else ""
        ax.set_title(
            f"cross layer {entry['layer']}: {len(entry['runs'])} runs{shared}; "
            f"* in the top {entry['k']} of every run",
            fontsize=9,
        )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
