"""Per-dataset comparison figures across the models (and latent sizes).

- `<dataset>-metrics.png`: every plotted column of `table.COLUMNS`, one panel
  each, models on the x axis and one bar per latent size;
- `<dataset>-activity.png`: the sorted activity profile A_u of every model, one
  panel per latent size, on a log scale with the active-unit threshold.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from aebench.reporting.catalog import COMPARE_FIGURES, dataset_label, model_label
from aebench.reporting.inputs import ModelResult
from aebench.reporting.plots import log_floor
from aebench.reporting.plotting import PALETTE, new_figure, save_png, theme
from aebench.reporting.table import COLUMNS, MISSING

METRIC_PANEL_PX = (330, 300)
METRIC_PANELS_PER_ROW = 4
ACTIVITY_PANEL_PX = (520, 380)


def metrics_figure(results: list[ModelResult], *, dataset: str) -> Figure:
    columns = [column for column in COLUMNS if column.plotted]
    rows = math.ceil(len(columns) / METRIC_PANELS_PER_ROW)
    cols = min(len(columns), METRIC_PANELS_PER_ROW)
    fig = new_figure(METRIC_PANEL_PX[0] * cols, METRIC_PANEL_PX[1] * rows + 40)
    axes = fig.subplots(rows, cols, squeeze=False).flatten()
    models = list(dict.fromkeys(model_label(r.key.model) for r in results))
    sizes = sorted({r.key.latent_dim for r in results})
    palette = dict(zip(sizes, sns.color_palette(PALETTE, len(sizes)), strict=True))
    width = 0.8 / len(sizes)
    for ax, column in zip(axes, columns, strict=False):
        for offset, size in enumerate(sizes):
            for position, model in enumerate(models):
                match = [r for r in results if model_label(r.key.model) == model and r.key.latent_dim == size]
                value = column.value(match[0]) if match else None
                x = position - 0.4 + width * (offset + 0.5)
                if value is None:
                    ax.text(x, 0, MISSING, ha="center", va="bottom", fontsize=7, color="0.4", rotation=90)
                    continue
                bar = ax.bar(x, value, width=width * 0.92, color=palette[size], label=f"D = {size}")
                ax.bar_label(bar, labels=[f"{value:,.{column.digits}f}"], fontsize=7, padding=1,
                             rotation=0 if len(sizes) <= 2 else 90)
        ax.set_xticks(range(len(models)), models)
        ax.set_xlim(-0.5, len(models) - 0.5)  # keep every model's slot, even one whose values are all n/a
        ax.set_title(column.header, fontsize=9)
        ax.margins(y=0.22)
        ax.tick_params(labelsize=8)
    for ax in axes[len(columns):]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    fig.legend(unique.values(), unique.keys(), loc="upper right", ncols=len(unique), fontsize=8)
    fig.suptitle(f"{dataset_label(dataset)}: test metrics by model and latent size", fontsize=11, x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 40 / fig.get_size_inches()[1] / fig.dpi))
    return fig


def activity_figure(results: list[ModelResult], *, dataset: str, threshold: float) -> Figure:
    sizes = sorted({r.key.latent_dim for r in results})
    fig = new_figure(ACTIVITY_PANEL_PX[0] * len(sizes), ACTIVITY_PANEL_PX[1])
    axes = fig.subplots(1, len(sizes), squeeze=False)[0]
    for ax, size in zip(axes, sizes, strict=True):
        frames = []
        for result in (r for r in results if r.key.latent_dim == size):
            profile = np.sort(result.latent.activity)[::-1]  # (D,) most active first
            frames.append(pd.DataFrame({
                "rank": np.arange(1, len(profile) + 1),
                "activity": profile,
                "model": model_label(result.key.model),
            }))
        long = pd.concat(frames, ignore_index=True)
        floor = log_floor(long["activity"].to_numpy(), threshold)
        long["activity"] = long["activity"].clip(lower=floor)  # a dimension that never moves sits on the floor
        sns.lineplot(data=long, x="rank", y="activity", hue="model", style="model", markers=True, dashes=False,
                     palette=PALETTE, ax=ax)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        if threshold > 0:
            ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
        ax.legend(fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("dimension, sorted by activity")
        ax.set_ylabel("A_u" if ax is axes[0] else "")
        ax.set_title(f"D = {size}", fontsize=10)
    fig.suptitle(f"{dataset_label(dataset)}: sorted activity profiles", fontsize=11)
    fig.tight_layout()
    return fig


DRAWERS = {
    "metrics": lambda results, dataset, threshold: metrics_figure(results, dataset=dataset),
    "activity": lambda results, dataset, threshold: activity_figure(results, dataset=dataset, threshold=threshold),
}


def draw_comparison_figures(
    results: list[ModelResult], *, threshold: float, out_dir: str | Path
) -> dict[str, list[Path]]:
    """Write every comparison figure of every dataset into `out_dir`; dataset -> paths, in catalog order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, list[Path]] = {}
    datasets = list(dict.fromkeys(r.key.dataset for r in results))
    with theme():
        for dataset in datasets:
            subset = [r for r in results if r.key.dataset == dataset]
            for spec in COMPARE_FIGURES:
                path = out_dir / spec.filename(dataset)
                save_png(DRAWERS[spec.name](subset, dataset, threshold), path)
                written.setdefault(dataset, []).append(path)
    return written
