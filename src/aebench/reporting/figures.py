"""The per-model figures: `MODEL_FIGURES`, one `FigureSpec` per figure, in report order.

A caption quotes the numbers it rests on, read from the model's results
(every seed's metrics, history and latent arrays) or params. A drawer reads
`FigureInputs`, which adds the pixels the evaluation decoded for the first
seed's figures: no torch, the figures and report stages only read files.
Every figure shows the first seed unless its caption names more. Pixel sizes
are fixed (mosaics by `params.figures`, charts by `CHART_PX`), and random
draws come from generators seeded by (first seed, purpose), so a rerun
writes the same PNG bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from aebench.common.config import Params
from aebench.common.errors import AebenchError
from aebench.common.files import read_npz
from aebench.common.layout import FIGURE_PIXELS_SUFFIX, ModelKey
from aebench.evaluation.metrics import SAMPLE_SOURCES
from aebench.reporting.labels import class_names, joined, model_label, variant_label
from aebench.reporting.plotting import (INACTIVE_COLOR, PALETTE, PIXEL_SCALE, TILE_GAP, FigureSpec, activity_handles,
                                        log_floor, mosaic, mosaic_figure, mu_lines, new_figure, palette_colors,
                                        save_figures)
from aebench.reporting.results import ModelResults, ReplicateResult, ReportInputError, Roots, loss_terms

IMAGE_SIDE = 28  # pixels of an MNIST image
CHART_PX = {  # (width, height) of each chart; mosaics are sized by their images
    "loss_curves": (1250, 340),  # one panel per loss term, up to five side by side
    "activity_lines": (900, 400),
    "activity_bars": (1150, 400),  # A_u beside the usage shares
    "activity_heatmap": (900, 560),
    "unit_death": (1150, 480),  # one panel per seed
    "latent_map": (760, 560),
    "tsne_map": (760, 560),
}
FRAME_LABEL_ROWS = 14  # image pixels of white above an interpolation strip: two lines of label per tile
OTHER_CLASS_COLOR = "#c0392b"  # an interpolation frame read as neither end's class
LABEL_JITTER = 0.3  # a 1-D latent is drawn against its label, spread by up to this much so points do not overlap
TSNE_POINTS = 500  # t-SNE of 500 x 30 takes ~3 s on one core; evaluate.latent_images stores 500
TSNE_PERPLEXITY = 30.0  # scikit-learn's default
# data.binarize -> what the figures' test images are: the first seed's evaluation view of the test split.
TEST_VIEWS = {
    "dynamic": "binarized once with seed {seed}, as the evaluation scored them",
    "none": "grey levels, as stored",
}


class FigureInputError(AebenchError):
    """The inputs of a figure do not fit together (too few pixels, frames or epochs recorded)."""


@dataclass(frozen=True)
class FigureInputs:
    results: ModelResults  # every seed's metrics, history and latent arrays
    params: Params
    pixels: dict[str, np.ndarray]  # the first seed's figure pixels (`figure_inputs`)

    @property
    def key(self) -> ModelKey:
        return self.results.key


# ---------------------------------------------------------------- shared pieces


def _heading(inputs: FigureInputs, what: str) -> str:
    return f"{model_label(inputs.key, on_dataset=True)}, seed {inputs.results.first.seed}: {what}"


def _seeds(seeds: list[int]) -> str:
    """"seed 0", "seeds 1 and 2"."""
    return f"seed{'s' if len(seeds) > 1 else ''} {joined(seeds)}"


def _per_seed(results: ModelResults, values: list, digits: int | None = None) -> str:
    """"282.80, 277.67 and 279.20 for seeds 0, 1 and 2", or "282.80 for seed 0"."""
    shown = [f"{v:,.{digits}f}" if digits is not None else str(v) for v in values]
    return f"{joined(shown)} for {_seeds(results.seeds)}"


def _pct(fraction: float) -> str:
    return f"{100 * float(fraction):.1f}%"


def _code_name(results: ModelResults) -> str:
    """What plays the posterior mean's role: a deterministic encoder has a code, no q(z|x)."""
    return "posterior mean" if results.stochastic else "code"


def _test_view(params: Params) -> str:
    return TEST_VIEWS[params.data.binarize].format(seed=params.seeds[0])


def _threshold(replicate: ReplicateResult, key: str) -> float:
    return float(replicate.value(key))


def _chart(name: str) -> Figure:
    return new_figure(*CHART_PX[name])


def _dimension_ticks(count: int, most: int = 32) -> np.ndarray:
    """Every dimension's index when they fit, else every k-th."""
    return np.arange(0, count, max(1, math.ceil(count / most)))


# ---------------------------------------------------------------- loss curves (every seed)


def loss_curves_caption(results: ModelResults, params: Params) -> str:
    first, others = results.first, results.seeds[1:]
    history = first.history
    last = int(history["epoch"].iloc[-1])
    finals = [float(r.history["val_loss"].iloc[-1]) for r in results.replicates]
    drawn = f"seed {first.seed} bold" + (f", {_seeds(others)} thin" if others else "")
    return (f"Each term of the {variant_label(results.key.variant)} objective ({first.value('objective')}; terms "
            f"{joined(loss_terms(history))}) per epoch, in nats/image: training (mean over the epoch's batches) and "
            f"validation (after the epoch); {drawn}, so the spread over seeds shows. Validation loss at epoch "
            f"{last}: {_per_seed(results, finals, 2)}.")


def draw_loss_curves(inputs: FigureInputs) -> Figure:
    results = inputs.results
    terms = loss_terms(results.first.history)
    colors = dict(zip(("train", "val"), palette_colors(PALETTE, 2), strict=True))
    fig = _chart("loss_curves")
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    for ax, term in zip(axes, terms, strict=True):
        for replicate in reversed(results.replicates):  # the first seed last: on top
            bold = replicate is results.first
            for split, color in colors.items():
                column = f"{split}_{term}"
                if column in replicate.history:
                    ax.plot(replicate.history["epoch"], replicate.history[column], color=color,
                            linewidth=2.0 if bold else 0.8, alpha=1.0 if bold else 0.6,
                            marker="o" if bold else None, markersize=3, gid=f"{split} seed {replicate.seed}")
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("nats/image")
    handles = [Line2D([], [], color=colors["train"], linewidth=2, label="train"),
               Line2D([], [], color=colors["val"], linewidth=2, label="validation")]
    if len(results.replicates) > 1:
        handles.append(Line2D([], [], color="0.4", linewidth=0.8, label=_seeds(results.seeds[1:])))
    axes[-1].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle(f"{model_label(inputs.key, on_dataset=True)}: loss terms per epoch, {_seeds(results.seeds)} "
                 f"(seed {results.first.seed} bold)", fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- reconstructions


def code_side(latent_dim: int) -> int | None:
    """s when the code can be drawn as an s x s image (D = s^2 >= 4, s <= 28, as plain-ae's 6x6), else None."""
    side = math.isqrt(latent_dim)
    return side if latent_dim >= 4 and side * side == latent_dim and side <= IMAGE_SIDE else None


def code_tiles(codes: np.ndarray, side: int) -> np.ndarray:
    """codes (N, s^2) -> (N, 28, 28): each code as an s x s grey image, centred on white.

    One linear scale for the whole row (black = its smallest value, white =
    its largest), so the tiles compare with each other.
    """
    low, high = float(codes.min()), float(codes.max())
    scaled = (codes - low) / (high - low) if high > low else np.full_like(codes, 0.5)
    cell = IMAGE_SIDE // side  # image pixels per code value
    margin = (IMAGE_SIDE - side * cell) // 2
    tiles = np.ones((len(codes), IMAGE_SIDE, IMAGE_SIDE))
    for tile, code in zip(tiles, scaled, strict=True):
        block = np.kron(code.reshape(side, side), np.ones((cell, cell)))  # (s*cell, s*cell)
        tile[margin : margin + len(block), margin : margin + len(block)] = block
    return tiles


def reconstructions_caption(results: ModelResults, params: Params) -> str:
    first, count, dims = results.first, params.figures.recon_images, results.key.latent_dim
    name = _code_name(results)
    side = code_side(dims)
    middle = (f" Middle row: each image's {name} (D = {dims}) as a {side}x{side} grey image, as the plain-ae article "
              f"draws its 36-D code; black is the row's smallest value, white its largest." if side else "")
    return (f"Top row: the first {count} test images ({_test_view(params)}); bottom row: their reconstructions "
            f"decoded at z = {name}, as pixel means (seed {first.seed}).{middle} On the whole test split the "
            f"reconstruction costs {first.value('test.recon_bce'):,.2f} nats/image (binary cross-entropy of the "
            f"pixel means) and {first.value('test.recon_mse'):,.2f} squared pixels/image.")


def draw_reconstructions(inputs: FigureInputs) -> Figure:
    pixels, count = inputs.pixels, inputs.params.figures.recon_images
    rows, labels = [pixels["recon_test"]], ["test"]
    side = code_side(inputs.key.latent_dim)
    if side:
        rows.append(code_tiles(pixels["recon_codes"], side))
        labels.append(f"code {side}x{side}")
    rows.append(pixels["recon_decoded"])
    labels.append("recon")
    canvas = mosaic(np.concatenate(rows), rows=len(rows), cols=count)
    return mosaic_figure(canvas, title=_heading(inputs, "test images and reconstructions"), row_labels=labels)


# ---------------------------------------------------------------- samples (prior and ex post)


def _samples_caption(results: ModelResults, params: Params, source: str) -> str:
    first, grid = results.first, params.figures.samples_grid
    drawn = ("drawn for this figure" if source == "prior"
             else f"the first {grid * grid} of those the evaluation drew and stored")
    judged = {name: first.value(f"samples.{source}.{name}") for name in
              ("count", "class_histogram", "top_class_share", "class_entropy", "precision", "recall")}
    top = class_names(results.key.dataset)[int(np.argmax(judged["class_histogram"]))]
    what = SAMPLE_SOURCES[source].replace("evaluate.expost_components", str(params.evaluate.expost_components))
    return (f"{grid}x{grid} images decoded as pixel means, seed {first.seed}. Codes: {what}; {drawn}. The "
            f"evaluation judged {judged['count']:,} such samples: the classifier puts "
            f"{_pct(judged['top_class_share'])} of them in its most frequent class ({top}), class entropy "
            f"{max(0.0, judged['class_entropy']):.2f} (1 = every class equally often); precision "
            f"{_pct(judged['precision'])} and recall {_pct(judged['recall'])} against the test images "
            f"(Kynkäänniemi et al. 2019).")


# figure name -> (the codes' source, its figure title, its mosaic's heading)
SAMPLE_FIGURES = {
    "samples": ("prior", "Samples from the prior", "z ~ N(0, I)"),
    "samples_gaussian": ("gaussian", "Samples from the ex-post Gaussian", "z from the ex-post Gaussian"),
    "samples_gmm": ("gmm", "Samples from the ex-post mixture", "z from the ex-post mixture"),
}


def _samples_figure(name: str) -> FigureSpec:
    source, title, heading = SAMPLE_FIGURES[name]

    def draw(inputs: FigureInputs) -> Figure:
        grid = inputs.params.figures.samples_grid
        canvas = mosaic(inputs.pixels[f"samples_{source}"], rows=grid, cols=grid)
        return mosaic_figure(canvas, title=_heading(inputs, heading))

    return FigureSpec(name, title, lambda results, params: _samples_caption(results, params, source), draw)


# ---------------------------------------------------------------- activity: lines, bars, heat map


def _activity_batch(results: ModelResults, params: Params) -> np.ndarray:
    return results.first.latent.mu[: params.figures.activity_images]  # (B, D)


def _active(replicate: ReplicateResult) -> np.ndarray:
    """(D,) bool: A_u > au_threshold, as the metrics count active units."""
    return replicate.vector("latent.activity") > _threshold(replicate, "latent.au_threshold")


def _counts(results: ModelResults) -> str:
    """"13 of 30 active at A_u > 0.01; 12 used (usage share > 0.01)"."""
    first = results.first
    return (f"{first.value('latent.active_units')} of {results.key.latent_dim} active at A_u > "
            f"{_threshold(first, 'latent.au_threshold'):g}; {first.value('latent.used_units')} used (usage share > "
            f"{_threshold(first, 'latent.usage_threshold'):g})")


def activity_lines_caption(results: ModelResults, params: Params) -> str:
    name, images = _code_name(results), len(_activity_batch(results, params))
    return (f"The {name} of each of the {results.key.latent_dim} dimensions (one line each, latent units) across "
            f"the first {images} test images, seed {results.first.seed}, as the emae article plots it. Coloured: "
            f"active dimensions, grey: inactive, by A_u, the variance of the {name} over the whole test split: "
            f"{_counts(results)}.")


def draw_activity_lines(inputs: FigureInputs) -> Figure:
    first = inputs.results.first
    mu = _activity_batch(inputs.results, inputs.params)  # (B, D)
    active = _active(first)
    fig = _chart("activity_lines")
    ax = fig.subplots()
    mu_lines(ax, mu, active, widths=(1.0, 0.8))
    ax.legend(handles=activity_handles(f"active ({int(active.sum())})", f"inactive ({int((~active).sum())})"),
              loc="upper right", fontsize=8)
    ax.set_ylabel(f"{_code_name(inputs.results)} of dimension u")
    ax.set_title(_heading(inputs, f"{_code_name(inputs.results)} of each dimension across {len(mu)} test images"),
                 fontsize=11)
    fig.tight_layout()
    return fig


def activity_bars_caption(results: ModelResults, params: Params) -> str:
    first = results.first
    return (f"Left: A_u, the variance over the test split of each dimension's {_code_name(results)} (latent units "
            f"squared), log scale, dashed line at the threshold {_threshold(first, 'latent.au_threshold'):g}. Right: "
            f"each dimension's share of the decoder's usage (squared change of the decoded image when the "
            f"dimension's code is swapped with another test image's; scale-free, unlike A_u), log scale, dashed "
            f"line at {_threshold(first, 'latent.usage_threshold'):g}. Zeros sit on the bottom edge. Seed "
            f"{first.seed}: {_counts(results)}; {first.value('latent.effective_dims'):.1f} effective dimensions "
            f"(exp of the entropy of the shares).")


def _bars(ax, values: np.ndarray, threshold: float, used: np.ndarray, color) -> None:
    floor = log_floor(values, threshold)
    dims = np.arange(len(values))
    ax.bar(dims, np.maximum(values, floor), color=[color if u else INACTIVE_COLOR for u in used], width=0.8)
    ax.axhline(threshold, color="0.25", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(_dimension_ticks(len(values)))
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("dimension u")
    ax.legend(loc="upper right", fontsize=8)


def draw_activity_bars(inputs: FigureInputs) -> Figure:
    first = inputs.results.first
    activity, shares = first.vector("latent.activity"), first.vector("latent.usage_share")
    au, ut = _threshold(first, "latent.au_threshold"), _threshold(first, "latent.usage_threshold")
    palette = palette_colors(PALETTE)
    fig = _chart("activity_bars")
    left, right = fig.subplots(1, 2)
    _bars(left, activity, au, activity > au, palette[0])
    left.set_ylabel("A_u (latent units squared)")
    left.set_title(f"activity: {int((activity > au).sum())} of {len(activity)} active", fontsize=10)
    _bars(right, shares, ut, shares > ut, palette[2])
    right.set_ylabel("share of decoder usage")
    right.set_title(f"decoder usage: {int((shares > ut).sum())} of {len(shares)} used", fontsize=10)
    fig.suptitle(_heading(inputs, "activity and decoder usage per dimension"), fontsize=11)
    fig.tight_layout()
    return fig


def activity_heatmap_caption(results: ModelResults, params: Params) -> str:
    mu = _activity_batch(results, params)
    return (f"The {_code_name(results)}s of the first {len(mu)} test images (rows) in each of the "
            f"{results.key.latent_dim} dimensions (columns), seed {results.first.seed}, in latent units on a "
            f"diverging scale centred on 0 (±{float(np.abs(mu).max()):.2f}, the largest magnitude shown); an "
            f"inactive dimension (grey label) is a column of one colour. {_counts(results)}.")


def draw_activity_heatmap(inputs: FigureInputs) -> Figure:
    mu = _activity_batch(inputs.results, inputs.params)  # (B, D)
    active = _active(inputs.results.first)
    limit = float(np.abs(mu).max()) or 1.0
    fig = _chart("activity_heatmap")
    ax = fig.subplots()
    image = ax.imshow(mu, cmap="vlag", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    fig.colorbar(image, ax=ax, label=f"{_code_name(inputs.results)} (latent units)")
    ticks = _dimension_ticks(mu.shape[1])
    ax.set_xticks(ticks, [str(t) for t in ticks])
    for label, dim in zip(ax.get_xticklabels(), ticks, strict=True):
        label.set_color("black" if active[dim] else INACTIVE_COLOR)
    ax.tick_params(axis="both", labelsize=7)
    ax.grid(False)
    ax.set_xlabel("dimension u (grey label: inactive)")
    ax.set_ylabel("test image")
    ax.set_title(_heading(inputs, f"{len(mu)} test images x {mu.shape[1]} dimensions"), fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- unit death over training (every seed)


def _alive_at_end(replicate: ReplicateResult) -> np.ndarray:
    """(D,) bool: validation activity above the active-unit threshold after the last epoch."""
    return replicate.activity_history().iloc[-1].to_numpy() > _threshold(replicate, "latent.au_threshold")


def unit_death_caption(results: ModelResults, params: Params) -> str:
    first = results.first
    epochs = int(first.history["epoch"].iloc[-1])
    alive = [int(_alive_at_end(r).sum()) for r in results.replicates]
    return (f"A_u on the validation split (variance of the {_code_name(results)} over the validation images) of each "
            f"of the {results.key.latent_dim} dimensions (rows) after each epoch (columns), log10 colour scale "
            f"shared by the panels; one panel per seed ({joined(results.seeds)}). A row that fades is a dimension whose "
            f"activity dies during training. Triangles mark the dimensions above the threshold "
            f"{_threshold(first, 'latent.au_threshold'):g} after the last epoch ({epochs}): "
            f"{_per_seed(results, alive)}. Active units on the test split, as the metrics count them: "
            f"{_per_seed(results, results.values('latent.active_units'))}.")


def draw_unit_death(inputs: FigureInputs) -> Figure:
    results = inputs.results
    histories = [r.activity_history() for r in results.replicates]  # each (epochs, D)
    threshold = _threshold(results.first, "latent.au_threshold")
    every = np.concatenate([h.to_numpy().ravel() for h in histories])
    floor = log_floor(every, threshold)
    low, high = math.log10(floor), math.log10(max(float(every.max()), floor * 10))
    fig = _chart("unit_death")
    fig.set_layout_engine("constrained")  # room for the shared colour bar, which tight_layout does not make
    axes = fig.subplots(1, len(histories), squeeze=False, sharey=True)[0]
    for ax, replicate, history in zip(axes, results.replicates, histories, strict=True):
        epochs = history.index.to_numpy()
        values = np.log10(np.maximum(history.to_numpy().T, floor))  # (D, epochs)
        dims = len(values)
        image = ax.imshow(values, cmap="viridis", vmin=low, vmax=high, aspect="auto", interpolation="nearest",
                          extent=(epochs[0] - 0.5, epochs[-1] + 0.5, dims - 0.5, -0.5))
        alive = np.flatnonzero(_alive_at_end(replicate))
        # Markers just right of the last epoch, outside the data, so they never hide a cell.
        ax.scatter(np.full(len(alive), epochs[-1] + 0.5), alive, marker="<", s=18, color="black", clip_on=False,
                   zorder=3)
        ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
        ax.set_yticks(_dimension_ticks(dims))
        ax.tick_params(labelsize=7)
        ax.grid(False)
        ax.set_xlabel("epoch")
        ax.set_title(f"seed {replicate.seed}: {len(alive)} of {dims} above {threshold:g} at the end", fontsize=9)
    axes[0].set_ylabel("dimension u")
    bar = fig.colorbar(image, ax=list(axes), fraction=0.04, pad=0.02)
    bar.set_label("log10 validation A_u")
    bar.ax.axhline(math.log10(threshold) if threshold > 0 else low, color="white", linewidth=1.5)
    fig.suptitle(f"{model_label(inputs.key, on_dataset=True)}: validation activity per dimension over training",
                 fontsize=11)
    return fig


# ---------------------------------------------------------------- latent map and t-SNE


def principal_components(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mu (N, D) -> its coordinates on the first two principal components (N, 2) and their variance shares (2,).

    Each component's sign is fixed (its largest loading positive), so the
    picture does not flip between linear-algebra builds.
    """
    centred = mu - mu.mean(axis=0)
    _, singular, components = np.linalg.svd(centred, full_matrices=False)  # components (min(N, D), D)
    top = components[:2]  # (2, D)
    top = top * np.sign(top[np.arange(2), np.argmax(np.abs(top), axis=1)])[:, None]
    shares = singular[:2] ** 2 / max(float((singular**2).sum()), 1e-300)
    return centred @ top.T, shares


def latent_coordinates(mu: np.ndarray, labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, tuple[str, str]]:
    """(N, 2) coordinates to scatter, and the two axis names.

    2-D latents as they are; larger ones on their first two principal
    components; a 1-D latent against the label (with a fixed jitter).
    """
    dims = mu.shape[1]
    if dims == 2:
        return mu, ("z_1", "z_2")
    if dims == 1:
        from aebench.common.runtime import derived_seed

        rng = np.random.default_rng(derived_seed(seed, "figure-jitter"))
        jitter = rng.uniform(-LABEL_JITTER, LABEL_JITTER, size=len(mu))
        return np.stack([mu[:, 0], labels + jitter], axis=1), ("z_1", "label (jittered)")
    coords, shares = principal_components(mu)
    return coords, (f"PC 1 ({_pct(shares[0])} of the variance)", f"PC 2 ({_pct(shares[1])} of the variance)")


def _label_map(inputs: FigureInputs, chart: str, coords: np.ndarray, labels: np.ndarray, axes: tuple[str, str],
               what: str) -> Figure:
    """Points (N, 2) coloured by their class label, named on the axes and in the title."""
    names = class_names(inputs.key.dataset)
    colors = palette_colors("tab10", len(names))
    fig = _chart(chart)
    ax = fig.subplots()
    for label in sorted(set(labels.tolist())):
        chosen = labels == label
        ax.scatter(coords[chosen, 0], coords[chosen, 1], s=12, color=colors[label], linewidths=0, alpha=0.85,
                   label=names[label])
    ax.legend(title="label", fontsize=8, title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5),
              markerscale=1.5)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(_heading(inputs, what), fontsize=11)
    fig.tight_layout()
    return fig


def _separation(results: ModelResults) -> str:
    first = results.first
    return (f"How well the latent keeps classes apart, on the whole test split: k-NN accuracy "
            f"{_pct(first.value('latent.knn_accuracy'))}, linear probe {_pct(first.value('probe.accuracy'))}.")


def latent_map_caption(results: ModelResults, params: Params) -> str:
    mu = results.first.latent.mu
    dims = results.key.latent_dim
    if dims == 2:
        projection = "the latent itself, which is 2-D"
    elif dims == 1:
        projection = f"the single latent dimension against the label (jittered by up to ±{LABEL_JITTER:g})"
    else:
        shares = principal_components(mu)[1]
        projection = (f"projected on their first two principal components, which hold {_pct(shares[0])} and "
                      f"{_pct(shares[1])} of the variance of the {dims}-D {_code_name(results)}s")
    return (f"The {_code_name(results)}s of the first {len(mu)} test images, seed {results.first.seed}, coloured by "
            f"label; {projection}. {_separation(results)}")


def draw_latent_map(inputs: FigureInputs) -> Figure:
    latent = inputs.results.first.latent
    coords, axes = latent_coordinates(latent.mu, latent.labels, seed=inputs.results.first.seed)
    return _label_map(inputs, "latent_map", coords, latent.labels, axes,
                      f"{_code_name(inputs.results)}s of {len(coords)} test images")


def _tsne_size(results: ModelResults) -> tuple[int, float]:
    """The points t-SNE maps, and its perplexity: scikit-learn needs it < points; ~3x is the usual margin."""
    points = min(TSNE_POINTS, len(results.first.latent.mu))
    return points, min(TSNE_PERPLEXITY, (points - 1) / 3)


def tsne_caption(results: ModelResults, params: Params) -> str:
    points, perplexity = _tsne_size(results)
    return (f"t-SNE (scikit-learn, perplexity {perplexity:g}, PCA initialisation, fixed seed) of the "
            f"{_code_name(results)}s of the first {points} test images in the {results.key.latent_dim}-D latent, "
            f"seed {results.first.seed}, coloured by label, as the vae-explained article shows its 20-D latent. "
            f"t-SNE keeps neighbourhoods, not distances or cluster sizes. {_separation(results)}")


def draw_tsne_map(inputs: FigureInputs) -> Figure:
    from sklearn.manifold import TSNE

    from aebench.common.runtime import derived_seed

    latent = inputs.results.first.latent
    points, perplexity = _tsne_size(inputs.results)
    # One job: with several, scikit-learn's neighbour search is slower here and the result could depend on the cores.
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", n_jobs=1,
                random_state=derived_seed(inputs.results.first.seed, "figure-tsne"))
    coords = tsne.fit_transform(latent.mu[:points])  # (points, 2)
    return _label_map(inputs, "tsne_map", coords, latent.labels[:points], ("t-SNE 1", "t-SNE 2"),
                      f"t-SNE of {points} test {_code_name(inputs.results)}s")


# ---------------------------------------------------------------- decoded manifold (2-D latents)


def manifold_caption(results: ModelResults, params: Params) -> str:
    first, steps, extent = results.first, params.figures.manifold_steps, params.figures.manifold_range
    return (f"Images decoded from a {steps}x{steps} grid of z over [-{extent:g}, {extent:g}]^2 (z_1 left to right, "
            f"z_2 bottom to top), as pixel means, seed {first.seed}: the grid the metrics score. Roughness (mean "
            f"distance between neighbouring images / mean distance between random test-image pairs; small = "
            f"smooth) {first.value('manifold.roughness'):.3f}; the classifier's mean confidence "
            f"{first.value('manifold.mean_confidence'):.3f} over the grid and "
            f"{first.value('manifold.corner_confidence'):.3f} at its four corners.")


def draw_manifold(inputs: FigureInputs) -> Figure:
    steps, extent = inputs.params.figures.manifold_steps, inputs.params.figures.manifold_range
    images = inputs.pixels["manifold"]  # (steps^2, 28, 28), row 0 = largest z_2
    title = _heading(inputs, f"decoded grid, z_1 → and z_2 ↑ over [-{extent:g}, {extent:g}]")
    return mosaic_figure(mosaic(images, rows=steps, cols=steps), title=title)


# ---------------------------------------------------------------- interpolation


def interpolation_caption(results: ModelResults, params: Params) -> str:
    first, names = results.first, class_names(results.key.dataset)
    start, end = first.value("interpolation.start_label"), first.value("interpolation.end_label")
    frames = first.value("interpolation.frame_labels")
    between = first.value("interpolation.classes_between")
    return (f"Left and right: the test images the metrics interpolate between (the first {names[start]} and the "
            f"first {names[end]} of the test split, {_test_view(params)}); between them, {len(frames)} images "
            f"decoded at evenly spaced points on the straight line between their {_code_name(results)}s, seed "
            f"{first.seed}. Above each, the class the sample classifier reads: {', '.join(names[f] for f in frames)}; "
            f"in red where it is neither end's class ({between} such class{'es' if between != 1 else ''}).")


def draw_interpolation(inputs: FigureInputs) -> Figure:
    first = inputs.results.first
    found = (first.value("interpolation.start_label"), first.value("interpolation.end_label"))
    strip = inputs.pixels["interpolation"]  # (k + 2, 28, 28): a test image, k decoded frames, a test image
    canvas = mosaic(strip, rows=1, cols=len(strip))
    band = np.ones((FRAME_LABEL_ROWS, canvas.shape[1]))  # white room above the tiles for their labels
    fig = mosaic_figure(np.concatenate([band, canvas]), title=_heading(inputs, "interpolation"))
    names = class_names(inputs.key.dataset)
    frames = first.value("interpolation.frame_labels")
    # Class names such as "T-shirt/top" fill a tile's width: the ends say "test" on a line of its own.
    labels = [(f"test\n{names[found[0]]}", "black")]
    labels += [(names[f], "black" if f in found else OTHER_CLASS_COLOR) for f in frames]
    labels += [(f"test\n{names[found[1]]}", "black")]
    width_px, height_px = fig.get_size_inches() * fig.dpi
    centre_y = (len(canvas) + FRAME_LABEL_ROWS / 2) * PIXEL_SCALE  # pixels from the bottom
    for column, (text, color) in enumerate(labels):
        centre_x = (column * (IMAGE_SIDE + TILE_GAP) + IMAGE_SIDE / 2) * PIXEL_SCALE
        fig.text(centre_x / width_px, centre_y / height_px, text, ha="center", va="center", fontsize=7, color=color,
                 linespacing=1.1)
    return fig


# ---------------------------------------------------------------- the registry

# In report order.
MODEL_FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec("loss_curves", "Loss curves", loss_curves_caption, draw_loss_curves),
    FigureSpec("reconstructions", "Reconstructions", reconstructions_caption, draw_reconstructions),
    *(_samples_figure(name) for name in SAMPLE_FIGURES),
    FigureSpec("activity_lines", "Posterior mean per dimension", activity_lines_caption, draw_activity_lines),
    FigureSpec("activity_bars", "Activity and decoder usage per dimension", activity_bars_caption,
                draw_activity_bars),
    FigureSpec("activity_heatmap", "Posterior means, images x dimensions", activity_heatmap_caption,
                draw_activity_heatmap),
    FigureSpec("unit_death", "Unit death over training", unit_death_caption, draw_unit_death),
    FigureSpec("latent_map", "Latent map", latent_map_caption, draw_latent_map),
    FigureSpec("tsne_map", "t-SNE of the latent", tsne_caption, draw_tsne_map,
                lambda key: key.latent_dim > 2),
    FigureSpec("manifold", "Decoded manifold", manifold_caption, draw_manifold, lambda key: key.latent_dim == 2),
    FigureSpec("interpolation", "Interpolation", interpolation_caption, draw_interpolation),
)


def figure_named(name: str) -> FigureSpec:
    (figure,) = [figure for figure in MODEL_FIGURES if figure.name == name]
    return figure


def figures_for(key: ModelKey) -> list[FigureSpec]:
    """The figures drawn for this model, in report order."""
    return [figure for figure in MODEL_FIGURES if figure.applies(key)]


def figure_path(root: str | Path, key: ModelKey, figure: FigureSpec) -> Path:
    """`<root>/<dataset>/<variant>/latent-<D>/<name>.png`."""
    return key.folder(root) / figure.filename


def draw_model_figures(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    """Write every figure that applies to the model as `<out_dir>/<name>.png`; return their paths."""
    return [path for _, path in save_figures(figures_for(inputs.key), out_dir, inputs)]


# ---------------------------------------------------------------- reading and checks before any drawing


def pixel_shapes(key: ModelKey, params: Params) -> dict[str, tuple[int, ...]]:
    """The arrays of the figure pixels the model's figures draw, and the shapes params give them."""
    figures, image = params.figures, (IMAGE_SIDE, IMAGE_SIDE)
    count, grid = figures.recon_images, figures.samples_grid * figures.samples_grid
    needs = {
        "reconstructions": {"recon_test": (count, *image), "recon_codes": (count, key.latent_dim),
                            "recon_decoded": (count, *image)},
        **{name: {f"samples_{source}": (grid, *image)} for name, (source, _, _) in SAMPLE_FIGURES.items()},
        "manifold": {"manifold": (figures.manifold_steps ** 2, *image)},
        "interpolation": {"interpolation": (figures.interpolation_steps + 2, *image)},
    }
    return {name: shape for figure in figures_for(key) for name, shape in needs.get(figure.name, {}).items()}


def figure_inputs(results: ModelResults, params: Params, roots: Roots) -> FigureInputs:
    """The model's results with the first seed's figure pixels (`seed-<s>.figures.npz` beside its latent arrays);
    refused, naming the file, when the results cannot give every figure (too few frames or activity columns) or
    an array of the pixels is missing or has another shape than params give it (other figures params)."""
    first = results.first
    frames = len(first.value("interpolation.frame_labels"))
    if frames != params.figures.interpolation_steps:
        raise FigureInputError(f"{first.replicate.path(roots.metrics, '.json')}: records {frames} interpolation "
                               f"frames, figures.interpolation_steps is {params.figures.interpolation_steps} "
                               f"(rerun evaluate)")
    for replicate in results.replicates:
        dims = list(replicate.activity_history().columns)
        if dims != list(range(results.key.latent_dim)):
            raise FigureInputError(f"{replicate.replicate.path(roots.history, '.csv')}: expected validation activity "
                                   f"columns for {results.key.latent_dim} dimensions, found {len(dims)}")
    path = first.replicate.path(roots.latent, FIGURE_PIXELS_SUFFIX)
    arrays = read_npz(path, error=ReportInputError, missing="figure pixels not found (rerun evaluate)",
                      unreadable="unreadable figure pixels")
    for name, shape in pixel_shapes(results.key, params).items():
        if name not in arrays:
            raise FigureInputError(f"{path}: missing array {name} (rerun evaluate)")
        if arrays[name].shape != shape:
            raise FigureInputError(f"{path}: {name} has shape {arrays[name].shape}, the figures params give "
                                   f"{shape} (rerun evaluate)")
    return FigureInputs(results=results, params=params, pixels=arrays)
