"""Figures that put every model and every seed of a dataset side by side: `COMPARE_FIGURES`.

`draw_comparison_figures` writes `<out_dir>/<dataset>-<name>.png` for each.
Sizes are fixed per panel (`PANEL_PX`, wrapped at `PANELS_PER_ROW`, plus
`HEADER_PX`), so a figure's pixel size follows from the models alone.
`panel_grid` and `draw_isolines` are shared with the sweep's figures. No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from aebench.common.config import Params
from aebench.evaluation.metrics import DETERMINISTIC_NOTE
from aebench.evaluation.activity import active_units_curve, default_thresholds
from aebench.evaluation.usage_split import usage_shares
from aebench.reporting.columns import COLUMNS, MISSING, MetricColumn, passing_columns
from aebench.reporting.labels import dataset_label, joined, model_label, variant_label
from aebench.reporting.plotting import (PALETTE, FigureSpec, activity_handles, log_floor, mu_lines, new_figure,
                                        palette_colors, save_figures)
from aebench.reporting.results import ModelResults, ReplicateResult

# (width, height) in pixels of one panel; a figure is panels x this plus HEADER_PX for title and legend.
PANEL_PX = {
    "metrics": (300, 250),
    "activity": (460, 380),
    "active_units_curve": (460, 380),
    "usage": (460, 380),
    "emae_mu_lines": (520, 400),
    "rate_distortion": (760, 560),
    "sweep_plane": (760, 560),
    "sweep_weight": (340, 300),
    "learning_curves": (380, 300),
}
HEADER_PX = 60
TITLE_BAND_PX, LEGEND_BAND_PX = 28, 32  # the header's split when margins are fixed: suptitle above, legend below
# Fixed margins (left, right, top, bottom) around each metrics panel: 23 panels laid out by hand draw in half
# the time constrained layout takes, and the tests draw them often.
METRIC_MARGINS_PX = (48, 10, 42, 26)
PANELS_PER_ROW = {"metrics": 4, "emae_mu_lines": 3, "sweep_weight": 3, "learning_curves": 3}  # others: one row
SIZE_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # one per latent size, in size order
SIZE_PALETTE = "crest"  # sequential, and unlike the variants' colours: the metrics bars are latent sizes
ISOLINE_BINS = 4  # about this many -ELBO isolines across the points
LABEL_BOX = {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6}  # text over lines stays legible


@dataclass(frozen=True, kw_only=True)
class CompareContext:
    """What params and the classifier stage say that the comparison figures need."""

    au_threshold: float  # evaluate.au_threshold: A_u above it is an active unit
    usage_threshold: float  # evaluate.usage_threshold: a usage share above it is a used unit
    seeds: tuple[int, ...]  # params seeds: every model has one replicate per seed, in this order
    # Sample-quality metrics that ranked the controlled degradations correctly (on every dataset, as the table).
    passed_quality_metrics: frozenset[str]
    activity_images: int  # figures.activity_images: test images in the posterior-mean lines

    @classmethod
    def from_params(cls, params: Params, *, passing_quality: Iterable[str]) -> CompareContext:
        return cls(au_threshold=params.evaluate.au_threshold, usage_threshold=params.evaluate.usage_threshold,
                   seeds=tuple(params.seeds), passed_quality_metrics=frozenset(passing_quality),
                   activity_images=params.figures.activity_images)


# ---------------------------------------------------------------- shared pieces


def _variants(results: list[ModelResults]) -> list[str]:
    return list(dict.fromkeys(model.key.variant for model in results))


def _sizes(results: list[ModelResults]) -> list[int]:
    return sorted({model.key.latent_dim for model in results})


def _variant_colors(results: list[ModelResults]) -> dict[str, tuple]:
    variants = _variants(results)
    return dict(zip(variants, palette_colors(PALETTE, len(variants)), strict=True))


def _of_size(results: list[ModelResults], size: int) -> list[ModelResults]:
    return [model for model in results if model.key.latent_dim == size]


def _dataset(results: list[ModelResults]) -> str:
    return results[0].key.dataset


def _known(values: list) -> list[float]:
    return [float(v) for v in values if v is not None]


def panel_grid(kind: str, count: int, *, sharey: bool = False,
            margins_px: tuple[int, int, int, int] | None = None) -> tuple[Figure, list[Axes]]:
    """A fixed-size grid of `count` panels of PANEL_PX[kind], spare cells hidden.

    Constrained layout, or with `margins_px` (left, right, top, bottom around
    each panel) a fixed layout: the header's title band above, legend band below.
    """
    per_row = PANELS_PER_ROW.get(kind, max(count, 1))
    rows, cols = math.ceil(count / per_row), min(count, per_row)
    width, height = PANEL_PX[kind]
    fig_w, fig_h = width * cols, height * rows + HEADER_PX
    fig = new_figure(fig_w, fig_h)
    grid = None
    if margins_px is None:
        fig.set_layout_engine("constrained")
    else:
        left, right, top, bottom = margins_px
        inner_w, inner_h = width - left - right, height - top - bottom
        grid = {"left": left / fig_w, "right": 1 - right / fig_w, "top": 1 - (TITLE_BAND_PX + top) / fig_h,
                "bottom": (LEGEND_BAND_PX + bottom) / fig_h, "wspace": (left + right) / inner_w,
                "hspace": (top + bottom) / inner_h}
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey, gridspec_kw=grid).flatten()
    for ax in axes[count:]:
        ax.set_axis_off()
    return fig, list(axes[:count])


def _spread(values: list[float]) -> str:
    """One seed's value, or the range over seeds: "12" or "11-13"."""
    low, high = min(values), max(values)
    return f"{low:g}" if low == high else f"{low:g}-{high:g}"


def _variant_legend(fig: Figure, results: list[ModelResults], extra: list) -> None:
    colors = _variant_colors(results)
    handles = [Line2D([], [], color=colors[v], marker="o", markersize=4, label=variant_label(v)) for v in colors]
    fig.legend(handles=handles + extra, loc="outside lower center", ncols=len(handles) + len(extra), fontsize=8)


def _no_model_panel(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


# ---------------------------------------------------------------- metrics


def _metrics_panel(ax: Axes, column: MetricColumn, results: list[ModelResults], colors: dict[int, tuple]) -> None:
    variants, sizes = _variants(results), _sizes(results)
    width = 0.8 / len(sizes)  # one group of bars per variant, 0.8 wide
    dots_x, dots_y = [], []
    for offset, size in enumerate(sizes):
        bars_x, bars_y = [], []
        for slot, variant in enumerate(variants):
            x = slot - 0.4 + width * (offset + 0.5)
            match = [m for m in results if m.key.variant == variant and m.key.latent_dim == size]
            values = [column.display(v) for v in _known(match[0].values(column.key))] if match else []
            if not values:
                ax.text(x, 0, MISSING, ha="center", va="bottom", fontsize=7, color="0.4", rotation=90)
                continue
            bars_x.append(x)
            bars_y.append(float(np.mean(values)))
            # Seeds spread evenly across the bar (no random jitter: the PNG must not change between runs).
            dots_x.extend(x + np.linspace(-width / 4, width / 4, len(values)) if len(values) > 1 else [x])
            dots_y.extend(values)
        ax.bar(bars_x, bars_y, width=width * 0.9, color=colors[size], alpha=0.8)
    ax.scatter(dots_x, dots_y, s=9, color="0.1", zorder=3, linewidths=0)
    ax.set_xticks(range(len(variants)), [variant_label(v) for v in variants])
    ax.set_xlim(-0.5, len(variants) - 0.5)  # every variant keeps its slot, even one that is all n/a
    ax.margins(y=0.1)
    ax.set_title(f"{column.name}\n({column.unit})" if column.unit else column.name, fontsize=8.5)
    ax.tick_params(labelsize=8)


def metrics_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    dataset, sizes = _dataset(results), _sizes(results)
    columns = passing_columns(context.passed_quality_metrics)
    colors = dict(zip(sizes, palette_colors(SIZE_PALETTE, len(sizes)), strict=True))
    fig, axes = panel_grid("metrics", len(columns), margins_px=METRIC_MARGINS_PX)
    for ax, column in zip(axes, columns, strict=True):
        _metrics_panel(ax, column, results, colors)
    handles = [Patch(color=colors[size], label=f"D = {size}: mean of seeds") for size in sizes]
    handles.append(Line2D([], [], color="0.1", marker="o", linestyle="", markersize=3, label="one seed"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0), ncols=len(handles), fontsize=8)
    fig.suptitle(f"{dataset_label(dataset)}: test metrics by variant and latent size", fontsize=11,
                 y=1 - (TITLE_BAND_PX / 2) / fig.bbox.height, va="center")
    return fig


def metrics_caption(results: list[ModelResults], context: CompareContext) -> str:
    dataset = _dataset(results)
    labels = [variant_label(v) for v in _variants(results)]
    seeds = ", ".join(map(str, context.seeds))
    deterministic = list(dict.fromkeys(variant_label(m.key.variant) for m in results if not m.stochastic))
    text = (f"Test-set metrics of {joined(labels)} on {dataset_label(dataset)}, one bar per latent size "
            f"(D = {', '.join(map(str, _sizes(results)))}) at the mean over the {len(context.seeds)} seeds "
            f"({seeds}), each seed's value a dot.")
    if deterministic:
        text += f" n/a for {joined(deterministic)}: {DETERMINISTIC_NOTE}."
    dropped = [c.name for c in COLUMNS if c not in passing_columns(context.passed_quality_metrics)]
    if dropped:
        text += (" Left out because their metric failed to rank controlled degradations of the test images "
                 f"correctly: {'; '.join(dropped)}.")
    return text


# ---------------------------------------------------------------- activity, AU(delta), usage


def _profile_figure(results: list[ModelResults], context: CompareContext, *, kind: str, key: str,
                    threshold: float, ylabel: str, title: str) -> Figure:
    """Sorted per-dimension values (`key`) of every model and seed on a log axis, one panel per latent size."""
    colors = _variant_colors(results)
    every = np.concatenate([r.vector(key) for m in results for r in m.replicates])
    floor = log_floor(every, threshold)
    fig, axes = panel_grid(kind, len(_sizes(results)), sharey=True)
    for ax, size in zip(axes, _sizes(results), strict=True):
        for model in _of_size(results, size):
            for replicate in model.replicates:
                profile = np.sort(replicate.vector(key))[::-1]  # (D,) largest first
                ax.plot(np.arange(1, size + 1), np.maximum(profile, floor), color=colors[model.key.variant],
                        marker="o", markersize=3, linewidth=1, alpha=0.8, gid=replicate.replicate.name)
        ax.axhline(threshold, color="0.3", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set_ylim(bottom=floor)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("dimension, sorted")
        ax.set_title(f"D = {size}", fontsize=10)
    axes[0].set_ylabel(ylabel)
    threshold_handle = Line2D([], [], color="0.3", linestyle="--", label=f"threshold {threshold:g}")
    _variant_legend(fig, results, [threshold_handle])
    fig.suptitle(f"{dataset_label(_dataset(results))}: {title}", fontsize=11)
    return fig


def activity_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    return _profile_figure(results, context, kind="activity", key="latent.activity",
                           threshold=context.au_threshold, ylabel="A_u = Var_x(E_q[z_u | x])",
                           title="sorted activity profiles, every seed")


def _mean_counts(results: list[ModelResults], key: str) -> str:
    return ", ".join(f"{model_label(m.key)} {np.mean(_known(m.values(key))):.1f}" for m in results)


def activity_caption(results: list[ModelResults], context: CompareContext) -> str:
    return (f"A_u, the variance over the test set of each dimension's posterior mean, sorted from most to least "
            f"active, for every model and each of the {len(context.seeds)} seeds (one line each) on "
            f"{dataset_label(_dataset(results))}; one panel per latent size, log scale, dimensions with A_u = 0 on "
            f"the bottom edge. The dashed line is the active-unit threshold {context.au_threshold:g}. Active "
            f"units, mean over seeds: {_mean_counts(results, 'latent.active_units')}.")


def au_thresholds(context: CompareContext) -> np.ndarray:
    """The AU(delta) grid: `default_thresholds()` plus the configured threshold, so the curve passes through it."""
    return np.union1d(default_thresholds(), [context.au_threshold])  # sorted, an exact grid point counted once


def active_units_curve_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    colors = _variant_colors(results)
    variants = _variants(results)
    thresholds = au_thresholds(context)
    fig, axes = panel_grid("active_units_curve", len(_sizes(results)))
    for ax, size in zip(axes, _sizes(results), strict=True):
        for model in _of_size(results, size):
            # Earlier variants drawn wider, so a curve that coincides with a later one still shows around it.
            width = 1.0 + 0.8 * (len(variants) - 1 - variants.index(model.key.variant))
            for replicate in model.replicates:
                counts = active_units_curve(replicate.vector("latent.activity"), thresholds)
                ax.plot(thresholds, counts, color=colors[model.key.variant], linewidth=width, marker="o",
                        markersize=2.5, alpha=0.75, gid=replicate.replicate.name)
        ax.axvline(context.au_threshold, color="0.3", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_ylim(-0.04 * size, 1.04 * size)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("threshold δ on A_u")
        ax.set_title(f"D = {size}", fontsize=10)
    axes[0].set_ylabel("active units AU(δ) = #{u: A_u > δ}")
    threshold_handle = Line2D([], [], color="0.3", linestyle="--", label=f"configured δ = {context.au_threshold:g}")
    _variant_legend(fig, results, [threshold_handle])
    fig.suptitle(f"{dataset_label(_dataset(results))}: active units against the threshold, every seed",
                 fontsize=11)
    return fig


def active_units_curve_caption(results: list[ModelResults], context: CompareContext) -> str:
    thresholds = au_thresholds(context)
    at_threshold = ", ".join(
        f"{model_label(m.key)} {_spread(_known(m.values('latent.active_units')))}" for m in results
    )
    return (f"AU(δ), the number of dimensions whose activity A_u exceeds δ, at {len(thresholds)} thresholds from "
            f"{thresholds[0]:g} to {thresholds[-1]:g} (log grid), for every model and each of the "
            f"{len(context.seeds)} seeds on {dataset_label(_dataset(results))}; one panel per latent size. A "
            f"curve that falls late keeps its dimensions at larger scales; A_u is in the latent's units, so a "
            f"shrunken latent falls early without being unused. At the configured δ = {context.au_threshold:g} "
            f"(dashed), range over seeds: {at_threshold}.")


def usage_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    return _profile_figure(results, context, kind="usage", key="latent.usage_share",
                           threshold=context.usage_threshold, ylabel="share of decoder usage",
                           title="sorted decoder usage shares, every seed")


def usage_caption(results: list[ModelResults], context: CompareContext) -> str:
    return (f"Each dimension's share of the decoder's usage (the squared change of the decoded image when the "
            f"dimension's code is swapped with another test image's; scale-free, unlike A_u), sorted, for every "
            f"model and each of the {len(context.seeds)} seeds on {dataset_label(_dataset(results))}; log scale, "
            f"one panel per latent size. The dashed line is the usage threshold {context.usage_threshold:g}. Used "
            f"units, mean over seeds: {_mean_counts(results, 'latent.used_units')}; effective dimensions: "
            f"{_mean_counts(results, 'latent.effective_dims')}.")


# ---------------------------------------------------------------- learning curves


def units_per_epoch(replicate: ReplicateResult, context: CompareContext) -> tuple[np.ndarray, np.ndarray]:
    """(used, active) units at each epoch of the history, on the validation split: (E,) int64 each."""
    usage = replicate.usage_history().to_numpy(dtype=np.float64)  # (E, D)
    used = np.array([np.count_nonzero(usage_shares(row) > context.usage_threshold) for row in usage])
    activity = replicate.activity_history().to_numpy(dtype=np.float64)  # (E, D)
    return used, np.count_nonzero(activity > context.au_threshold, axis=1)


LEARNING_QUANTITIES = ("validation objective", "used units", "active units")


def learning_curves_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    """Per latent size (rows): validation objective, used and active units over epochs; one line per seed."""
    colors = _variant_colors(results)
    sizes = _sizes(results)
    fig, axes = panel_grid("learning_curves", len(LEARNING_QUANTITIES) * len(sizes))
    for row, size in enumerate(sizes):
        panels = axes[row * len(LEARNING_QUANTITIES):(row + 1) * len(LEARNING_QUANTITIES)]
        for model in _of_size(results, size):
            for replicate in model.replicates:
                epochs = replicate.history["epoch"].to_numpy()
                used, active = units_per_epoch(replicate, context)
                curves = (replicate.history["val_loss"].to_numpy(), used, active)
                for ax, quantity, values in zip(panels, LEARNING_QUANTITIES, curves, strict=True):
                    ax.plot(epochs, values, color=colors[model.key.variant], linewidth=1, marker="o",
                            markersize=2, alpha=0.8, gid=f"{replicate.replicate.name}:{quantity}")
        for ax, quantity in zip(panels, LEARNING_QUANTITIES, strict=True):
            ax.set_title(f"D = {size}: {quantity}", fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
        panels[0].set_ylabel("nats/image")
        for ax in panels[1:]:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(-0.04 * size, 1.04 * size)
    _variant_legend(fig, results, [])
    fig.suptitle(f"{dataset_label(_dataset(results))}: learning curves on the validation split, every seed",
                 fontsize=11)
    return fig


def learning_curves_caption(results: list[ModelResults], context: CompareContext) -> str:
    last = []
    for model in results:
        finals = [float(r.history["val_loss"].iloc[-1]) for r in model.replicates]
        counts = [units_per_epoch(r, context) for r in model.replicates]
        passed = len(model.replicates) - len(model.unconverged_seeds)
        last.append(f"{model_label(model.key)} {np.mean(finals):.1f} nats, "
                    f"used {_spread([u[-1] for u, _ in counts])}, active {_spread([a[-1] for _, a in counts])}, "
                    f"{passed}/{len(model.replicates)} converged")
    return (f"Over the epochs of training, on the validation split, for every model and each of the "
            f"{len(context.seeds)} seeds (one line each) on {dataset_label(_dataset(results))}: the validation "
            f"objective (each variant's own loss: the -ELBO for the VAE, reconstruction for the AE, the EM-AE's "
            f"loss for the EM-AE; nats per image), the used units (decoder-usage share > "
            f"{context.usage_threshold:g}) and the active units (A_u > {context.au_threshold:g}); one row per latent "
            f"size. The convergence test reads these curves' last epochs. At the last epoch (objective mean over "
            f"seeds, unit counts' range): {'; '.join(last)}.")


# ---------------------------------------------------------------- the emae article's figure


def _mu_line_models(results: list[ModelResults]) -> list[ModelResults]:
    """The stochastic models at the largest latent size: the emae article's 30-D VAE and EM-AE."""
    return [m for m in _of_size(results, _sizes(results)[-1]) if m.stochastic]


def emae_mu_lines_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    models = _mu_line_models(results)
    fig, axes = panel_grid("emae_mu_lines", max(len(models), 1), sharey=True)  # one y axis: the scales compare
    if not models:
        _no_model_panel(axes[0], "no stochastic variant")
    for ax, model in zip(axes, models, strict=False):
        mu = model.first.latent.mu[: context.activity_images]  # (N, D)
        active = model.first.vector("latent.activity") > context.au_threshold
        mu_lines(ax, mu, active, widths=(0.9, 0.7))
        ax.set_title(f"{model_label(model.key)}: {int(active.sum())} of {len(active)} active", fontsize=10)
    axes[0].set_ylabel("posterior mean E_q[z_u | x]")
    fig.legend(handles=activity_handles(f"active (A_u > {context.au_threshold:g})", "inactive"),
               loc="outside lower center", ncols=2, fontsize=8)
    seed = models[0].first.seed if models else context.seeds[0]
    fig.suptitle(f"{dataset_label(_dataset(results))}: posterior mean of every dimension, seed {seed}", fontsize=11)
    return fig


def emae_mu_lines_caption(results: list[ModelResults], context: CompareContext) -> str:
    models = _mu_line_models(results)
    if not models:
        return f"No stochastic variant on {dataset_label(_dataset(results))}: nothing to draw."
    parts = []
    for model in models:
        activity = model.first.vector("latent.activity")
        parts.append(f"{model_label(model.key)} {int((activity > context.au_threshold).sum())} of "
                     f"{len(activity)} active, A_u {activity.min():.2g} to {activity.max():.2g}")
    images = min(context.activity_images, len(models[0].first.latent.mu))
    return (f"As the emae article draws it: the posterior mean of each of the {_sizes(results)[-1]} dimensions (one "
            f"line each) across the first {images} test images of {dataset_label(_dataset(results))}, seed "
            f"{models[0].first.seed}, the stochastic variants side by side on one y axis. Coloured: active "
            f"dimensions (A_u > {context.au_threshold:g}); grey: inactive. {'; '.join(parts)}.")


# ---------------------------------------------------------------- rate-distortion


def isoline_levels(rates: np.ndarray, distortions: np.ndarray) -> list[float]:
    """Round values c of -ELBO = D + R, about ISOLINE_BINS steps across the points' totals.

    Only levels whose line crosses the points' bounding box are kept, so every
    level is visible whatever margins the axes add.
    """
    totals = rates + distortions
    ticks = MaxNLocator(nbins=ISOLINE_BINS, steps=[1, 2, 2.5, 5, 10]).tick_values(totals.min(), totals.max())
    low, high = rates.min() + distortions.min(), rates.max() + distortions.max()
    levels = [float(c) for c in ticks if low <= c <= high]
    return levels or [float(totals.mean())]  # a single point: the line through it


def draw_isolines(ax: Axes, rates: np.ndarray, distortions: np.ndarray) -> list[float]:
    """Dashed lines D + R = c (Alemi et al. 2018) across the current view, labelled; returns the levels."""
    ax.autoscale_view()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    levels = isoline_levels(rates, distortions)
    for level in levels:
        xs = np.array([max(x0, level - y1), min(x1, level - y0)])  # the segment inside the view
        ax.plot(xs, level - xs, color="0.55", linestyle="--", linewidth=0.9, zorder=0, gid=f"isoline {level:g}")
        x = xs[0] + 0.12 * (xs[1] - xs[0])  # near the upper-left end, clear of the axes' edge
        # Along the line (its slope is -1 in data units) on a white box, as contour labels are.
        ax.text(x, level - x, f"−ELBO = {level:g}", fontsize=7, color="0.35", rotation=-45, rotation_mode="anchor",
                transform_rotates_text=True, ha="center", va="center", zorder=1,
                bbox=LABEL_BOX)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    return levels


def _rate_distortion_points(results: list[ModelResults]) -> pd.DataFrame:
    """One row per stochastic model and seed: variant, latent_dim, seed, rate, distortion."""
    rows = [
        {"variant": m.key.variant, "latent_dim": m.key.latent_dim, "seed": r.seed,
         "rate": r.value("test.rate"), "distortion": r.value("test.distortion")}
        for m in results if m.stochastic for r in m.replicates
    ]
    return pd.DataFrame(rows, columns=["variant", "latent_dim", "seed", "rate", "distortion"])


def rate_distortion_figure(results: list[ModelResults], context: CompareContext) -> Figure:
    points = _rate_distortion_points(results)
    colors, sizes = _variant_colors(results), _sizes(results)
    markers = dict(zip(sizes, SIZE_MARKERS, strict=False))
    fig, (ax,) = panel_grid("rate_distortion", 1)
    fig.suptitle(f"{dataset_label(_dataset(results))}: rate against distortion, every seed", fontsize=11)
    if points.empty:
        _no_model_panel(ax, "no stochastic variant: no rate")
        return fig
    for (variant, size), group in points.groupby(["variant", "latent_dim"], sort=False):
        ax.scatter(group["rate"], group["distortion"], color=colors[variant], marker=markers[size], s=36,
                   edgecolors="white", linewidths=0.5, zorder=3, gid=f"{variant}-{size}")
    draw_isolines(ax, points["rate"].to_numpy(float), points["distortion"].to_numpy(float))
    ax.set_xlabel("rate R = mean KL(q(z|x) || N(0, I)) (nats/image)")
    ax.set_ylabel("distortion D = mean E_q[-log p(x|z)] (nats/image)")
    stochastic = [v for v in colors if v in set(points["variant"])]
    handles = [Line2D([], [], color=colors[v], marker="o", linestyle="", label=variant_label(v)) for v in stochastic]
    handles += [Line2D([], [], color="0.3", marker=markers[s], linestyle="", label=f"D = {s}") for s in sizes]
    handles.append(Line2D([], [], color="0.55", linestyle="--", label="−ELBO = D + R"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    return fig


def rate_distortion_caption(results: list[ModelResults], context: CompareContext) -> str:
    points = _rate_distortion_points(results)
    deterministic = list(dict.fromkeys(variant_label(m.key.variant) for m in results if not m.stochastic))
    absent = (f" {joined(deterministic)} {'is' if len(deterministic) == 1 else 'are'} absent: {DETERMINISTIC_NOTE}."
              if deterministic else "")
    if points.empty:
        return f"No stochastic variant on {dataset_label(_dataset(results))}.{absent}"
    levels = isoline_levels(points["rate"].to_numpy(float), points["distortion"].to_numpy(float))
    means = ", ".join(
        f"{model_label(m.key)} R {np.mean(_known(m.values('test.rate'))):.1f}, "
        f"D {np.mean(_known(m.values('test.distortion'))):.1f}" for m in results if m.stochastic
    )
    return (f"Rate R (the mean KL(q(z|x) || N(0, I))) against distortion D (the mean E_q[-log p(x|z)]) on the "
            f"{dataset_label(_dataset(results))} test set, nats per image: one point per stochastic model and seed "
            f"(colour: variant, marker: latent size). Dashed: -ELBO = D + R = {', '.join(f'{c:g}' for c in levels)} "
            f"(Alemi et al. 2018); models on one line have the same ELBO at different rates. Means over seeds: "
            f"{means}.{absent}")


# ---------------------------------------------------------------- the registry


# In report order; caption and draw take (one dataset's models, the context).
COMPARE_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("metrics", "Metrics side by side", metrics_caption, metrics_figure),
        FigureSpec("activity", "Sorted activity profiles", activity_caption, activity_figure),
        FigureSpec("active_units_curve", "Active units against the threshold", active_units_curve_caption,
                      active_units_curve_figure),
        FigureSpec("usage", "Decoder usage shares", usage_caption, usage_figure),
        FigureSpec("emae_mu_lines", "Posterior mean per dimension", emae_mu_lines_caption, emae_mu_lines_figure),
        FigureSpec("rate_distortion", "Rate-distortion plane", rate_distortion_caption, rate_distortion_figure),
        FigureSpec("learning_curves", "Learning curves", learning_curves_caption, learning_curves_figure),
    )
}


def draw_comparison_figures(
    results: list[ModelResults], *, context: CompareContext, out_dir: str | Path
) -> dict[str, list[tuple[FigureSpec, Path]]]:
    """Write every figure of COMPARE_FIGURES for every dataset; dataset -> [(spec, path)] in registry order."""
    for model in results:  # the captions say "every seed": a model with other replicates would make them wrong
        if tuple(model.seeds) != tuple(context.seeds):
            raise ValueError(f"{model.key.name}: seeds {model.seeds}, the context says {list(context.seeds)}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)  # also when there is no model
    return {dataset: save_figures(COMPARE_FIGURES.values(), out_dir, [m for m in results if m.key.dataset == dataset],
                                  context, prefix=f"{dataset}-")
            for dataset in dict.fromkeys(model.key.dataset for model in results)}
