"""Per-model charts drawn from files alone (history CSV, latent npz): no model, no torch.

Each function returns a Figure of a fixed pixel size (see `SIZES_PX`); the
figures stage saves it. `name` below is the prefix of every title, e.g.
"VAE-30 on MNIST".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA

from aebench.reporting.inputs import loss_terms
from aebench.reporting.plotting import PALETTE, new_figure

LOSS_PANEL_PX = (360, 340)  # one panel per loss term, side by side
SIZES_PX = {
    "activity_lines": (900, 380),
    "activity_bars": (900, 380),
    "activity_heatmap": (900, 560),
    "latent_map": (720, 560),
}
INACTIVE_COLOR = "0.72"


def loss_curves_size_px(terms: int) -> tuple[int, int]:
    return LOSS_PANEL_PX[0] * terms, LOSS_PANEL_PX[1]


def loss_curves(history: pd.DataFrame, *, name: str) -> Figure:
    """One panel per loss term, training and validation per epoch, nats per image."""
    terms = loss_terms(history)
    fig = new_figure(*loss_curves_size_px(len(terms)))
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    for ax, term in zip(axes, terms, strict=True):
        long = pd.concat(
            [
                pd.DataFrame({"epoch": history["epoch"], "value": history[f"{split}_{term}"], "split": label})
                for split, label in (("train", "train"), ("val", "validation"))
                if f"{split}_{term}" in history
            ]
        )
        sns.lineplot(data=long, x="epoch", y="value", hue="split", style="split", markers=True, dashes=False,
                     palette=PALETTE, ax=ax)
        ax.set_title(term)
        ax.set_ylabel("nats per image" if ax is axes[0] else "")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(title=None, fontsize=8)
    fig.suptitle(f"{name}: loss terms per epoch", fontsize=11)
    fig.tight_layout()
    return fig


def active_mask(activity: np.ndarray, threshold: float) -> np.ndarray:
    """(D,) bool: Burda et al.'s active units, A_u > threshold (as the metrics count them)."""
    return activity > threshold


def activity_lines(mu: np.ndarray, activity: np.ndarray, *, threshold: float, name: str) -> Figure:
    """Seed 004's plot: each dimension's posterior mean (B, D) across B test images, one line each."""
    active = active_mask(activity, threshold)
    fig = new_figure(*SIZES_PX["activity_lines"])
    ax = fig.subplots()
    images = np.arange(len(mu))
    colors = sns.color_palette("husl", int(active.sum()))
    active_dims = iter(colors)
    # Inactive lines first, so the active ones are drawn on top of them.
    for dim in sorted(range(mu.shape[1]), key=lambda d: active[d]):
        if active[dim]:
            ax.plot(images, mu[:, dim], color=next(active_dims), linewidth=1.0)
        else:
            ax.plot(images, mu[:, dim], color=INACTIVE_COLOR, linewidth=0.8)
    ax.legend(
        handles=[
            Line2D([], [], color=colors[0] if len(colors) else "C0", label=f"active ({int(active.sum())})"),
            Line2D([], [], color=INACTIVE_COLOR, label=f"inactive ({int((~active).sum())})"),
        ],
        loc="upper right",
        fontsize=8,
    )
    ax.set_xlim(0, max(len(mu) - 1, 1))
    ax.set_xlabel("test image")
    ax.set_ylabel("posterior mean E_q[z_u | x]")
    ax.set_title(f"{name}: posterior mean of each dimension across {len(mu)} test images")
    fig.tight_layout()
    return fig


def log_floor(activity: np.ndarray, threshold: float) -> float:
    """Lower end of a log axis for activities: a decade under the smallest positive value shown."""
    positives = np.concatenate([activity[activity > 0], [threshold] if threshold > 0 else []])
    if positives.size == 0:
        return 1e-12
    return 10.0 ** (math.floor(math.log10(positives.min())) - 1)


def activity_bars(activity: np.ndarray, *, threshold: float, name: str) -> Figure:
    """A_u per dimension on a log scale, the threshold as a line, the active count in the title."""
    active = active_mask(activity, threshold)
    floor = log_floor(activity, threshold)
    fig = new_figure(*SIZES_PX["activity_bars"])
    ax = fig.subplots()
    palette = sns.color_palette(PALETTE)
    colors = [palette[0] if is_active else INACTIVE_COLOR for is_active in active]
    dims = np.arange(len(activity))
    # A zero activity (a dimension that never moves) is drawn at the floor of the log axis.
    ax.bar(dims, np.maximum(activity, floor), color=colors, width=0.8, bottom=0)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    if threshold > 0:
        ax.axhline(threshold, color=palette[3], linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xticks(dims if len(dims) <= 40 else dims[:: math.ceil(len(dims) / 40)])
    ax.set_xlim(-0.6, len(dims) - 0.4)
    ax.set_xlabel("dimension u")
    ax.set_ylabel("A_u = Var_x(E_q[z_u | x])")
    ax.set_title(f"{name}: {int(active.sum())} of {len(activity)} dimensions active (A_u > {threshold:g})")
    fig.tight_layout()
    return fig


def activity_heatmap(mu: np.ndarray, activity: np.ndarray, *, threshold: float, name: str) -> Figure:
    """Posterior means as an images x dimensions heat map, centred on 0; inactive dims' labels grey."""
    active = active_mask(activity, threshold)
    fig = new_figure(*SIZES_PX["activity_heatmap"])
    ax = fig.subplots()
    limit = float(np.abs(mu).max()) or 1.0
    sns.heatmap(
        mu, cmap="vlag", center=0.0, vmin=-limit, vmax=limit, ax=ax,
        xticklabels=1 if mu.shape[1] <= 40 else "auto", yticklabels=max(1, len(mu) // 8),
        cbar_kws={"label": "posterior mean"},
    )
    for label in ax.get_xticklabels():
        if not active[int(label.get_text())]:
            label.set_color(INACTIVE_COLOR)
    ax.tick_params(axis="x", labelsize=7, rotation=0)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("dimension u (grey label: inactive)")
    ax.set_ylabel("test image")
    ax.set_title(f"{name}: posterior means, {len(mu)} test images x {mu.shape[1]} dimensions")
    fig.tight_layout()
    return fig


def latent_coordinates(mu: np.ndarray, labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, tuple[str, str]]:
    """(N, 2) coordinates to scatter and the names of the two axes.

    2-D latents are shown as they are; larger ones by their first two principal
    components; a 1-D latent against its label (with a little fixed jitter).
    """
    dims = mu.shape[1]
    if dims == 2:
        return mu, ("z_1", "z_2")
    if dims == 1:
        jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, size=len(mu))
        return np.stack([mu[:, 0], labels + jitter], axis=1), ("z_1", "label (jittered)")
    pca = PCA(n_components=2, svd_solver="full").fit(mu)
    shares = pca.explained_variance_ratio_ * 100
    return pca.transform(mu), (f"PC 1 of the means ({shares[0]:.1f}% of variance)",
                               f"PC 2 of the means ({shares[1]:.1f}% of variance)")


def latent_map(mu: np.ndarray, labels: np.ndarray, *, class_names: list[str], seed: int, name: str) -> Figure:
    """Test posterior means in 2-D, coloured by label."""
    coords, (x_name, y_name) = latent_coordinates(mu, labels, seed=seed)
    fig = new_figure(*SIZES_PX["latent_map"])
    ax = fig.subplots()
    names = np.array(class_names, dtype=object)[labels]
    order = [class_names[c] for c in sorted(set(labels.tolist()))]
    sns.scatterplot(x=coords[:, 0], y=coords[:, 1], hue=names, hue_order=order, palette="tab10",
                    s=14, linewidth=0, alpha=0.85, ax=ax)
    ax.legend(title="label", fontsize=8, title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(f"{name}: posterior means of {len(mu)} test images")
    fig.tight_layout()
    return fig
