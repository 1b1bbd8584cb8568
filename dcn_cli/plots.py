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
    """Mean metric per model with standard-deviation error bars."""
    plt = _pyplot()
    models = result["models"]
    names = [m["name"] for m in models]
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2.5, 4))
    ax.bar(
        names,
        [m["mean"] for m in models],
        yerr=[m["std"] for m in models],
        capsize=6,
        color="#4c72b0",
    )
    means = np.array([m["mean"] for m in models])
    spread = max(float(np.max([m["std"] for m in models])), 1e-9)
    low = float(means.min() - 4 * spread)
    ax.set_ylim(bottom=max(low, 0.0) if result["metric"] != "rmse" or low > 0 else 0.0)
    runs = result.get("training", {}).get("runs", len(models[0]["runs"]))
    ax.set_ylabel(f"test {result['metric']} (mean ± std, {runs} runs)")
    ax.set_title(f"dcn compare on {result.get('data', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)


def heatmaps(panels: list[dict[str, Any]], path: Path) -> None:
    """One heatmap per panel: ``{"title", "matrix", "labels", "ticks"}``, with colour bars.

    ``ticks`` are the positions of ``labels`` on both axes (block centres for
    embedded features); ``bounds`` (optional) draws the block edges.
    """
    plt = _pyplot()
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    cols = min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    size = 5.5 if max(len(p["labels"]) for p in panels) > 4 else 4.5
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        image = ax.matshow(panel["matrix"], cmap=plt.cm.Blues)
        ax.set_xticks(panel["ticks"])
        ax.set_yticks(panel["ticks"])
        ax.set_xticklabels(panel["labels"], rotation=45, ha="left", fontsize=8)
        ax.set_yticklabels(panel["labels"], fontsize=8)
        for edge in panel.get("bounds", []):
            ax.axhline(edge - 0.5, color="grey", linewidth=0.4)
            ax.axvline(edge - 0.5, color="grey", linewidth=0.4)
        ax.set_title(panel["title"], fontsize=9, pad=40)
        cax = make_axes_locatable(ax).append_axes("right", size="5%", pad=0.05)
        fig.colorbar(image, cax=cax)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=120)
    plt.close(fig)
