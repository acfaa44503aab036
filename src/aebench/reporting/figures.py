"""Every per-model figure: images decoded by the trained model, plus the charts of `plots`.

`draw_model_figures` writes one PNG per entry of `catalog.figures_for(D)` into
a folder. Decoded images are pixel means: sigmoid of the Bernoulli logits, or
the Gaussian mean clipped to [0, 1]. All randomness (the prior samples) comes
from a generator seeded with params' `seed`, so a rerun draws the same PNGs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from aebench.common.errors import AebenchError
from aebench.reporting import plots
from aebench.reporting.catalog import CLASS_NAMES, dataset_label, figures_for, model_label
from aebench.reporting.inputs import LatentMeans
from aebench.reporting.plotting import mosaic, mosaic_figure, save_png, theme

# Decoder output -> displayable pixel means in [0, 1], per likelihood.
PIXEL_MEANS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "bernoulli": torch.sigmoid,
    "gaussian": lambda mean: mean.clamp(0.0, 1.0),
}


class FigureInputError(AebenchError):
    """The inputs of the figures stage do not fit together (e.g. too few test images)."""


@dataclass(frozen=True)
class FigureInputs:
    model: Any  # an aebench Autoencoder in eval mode: encode, decode, latent_dim, likelihood, kind
    dataset: str
    test_images: torch.Tensor  # (N, 1, 28, 28) in [0, 1]: what the model encodes and is scored on
    test_labels: torch.Tensor  # (N,)
    history: pd.DataFrame
    latent: LatentMeans
    figure_params: Any  # params.figures
    au_threshold: float
    seed: int

    @property
    def name(self) -> str:
        return f"{model_label(self.model.kind)}-{self.model.latent_dim} on {dataset_label(self.dataset)}"


@torch.no_grad()
def decoded_pixels(model, z: torch.Tensor) -> np.ndarray:
    """z (N, D) -> (N, 28, 28) pixel means in [0, 1]."""
    return PIXEL_MEANS[model.likelihood](model.decode(z))[:, 0].numpy()


@torch.no_grad()
def posterior_means(model, images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) -> (N, D): z = mu (the code itself for the AE)."""
    mu, _ = model.encode(images)
    return mu


def reconstructions(inputs: FigureInputs) -> Figure:
    count = inputs.figure_params.recon_images
    if len(inputs.test_images) < count:
        raise FigureInputError(f"figures.recon_images: {count} requested, only {len(inputs.test_images)} test images")
    originals = inputs.test_images[:count]
    recon = decoded_pixels(inputs.model, posterior_means(inputs.model, originals))
    canvas = mosaic(np.concatenate([originals[:, 0].numpy(), recon]), rows=2, cols=count)
    return mosaic_figure(canvas, title=f"{inputs.name}: reconstructions", row_labels=["test", "recon"])


def samples(inputs: FigureInputs) -> Figure:
    grid = inputs.figure_params.samples_grid
    generator = torch.Generator().manual_seed(inputs.seed)
    z = torch.randn(grid * grid, inputs.model.latent_dim, generator=generator)  # (grid^2, D) ~ N(0, I)
    canvas = mosaic(decoded_pixels(inputs.model, z), rows=grid, cols=grid)
    return mosaic_figure(canvas, title=f"{inputs.name}: z ~ N(0, I)")


def manifold(inputs: FigureInputs) -> Figure:
    steps, extent = inputs.figure_params.manifold_steps, inputs.figure_params.manifold_range
    axis = torch.linspace(-extent, extent, steps)
    # Row 0 at the top holds the largest z_2, as on a plot's vertical axis.
    z2, z1 = torch.meshgrid(axis.flip(0), axis, indexing="ij")  # (steps, steps) each
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)  # (steps^2, 2)
    canvas = mosaic(decoded_pixels(inputs.model, z), rows=steps, cols=steps)
    return mosaic_figure(canvas, title=f"{inputs.name}: z over [-{extent:g}, {extent:g}]^2")


def interpolation_pair(labels: torch.Tensor) -> tuple[int, int]:
    """The first test image and the first one after it of another class."""
    different = torch.nonzero(labels != labels[0]).flatten()
    if len(different) == 0:
        raise FigureInputError("interpolation: the test images loaded hold a single class")
    return 0, int(different[0])


def interpolation(inputs: FigureInputs) -> Figure:
    steps = inputs.figure_params.interpolation_steps
    start, end = interpolation_pair(inputs.test_labels)
    ends = inputs.test_images[[start, end]]  # (2, 1, 28, 28)
    mu = posterior_means(inputs.model, ends)  # (2, D)
    weights = torch.linspace(0.0, 1.0, steps).unsqueeze(1)  # (steps, 1)
    path = (1 - weights) * mu[0] + weights * mu[1]  # (steps, D)
    strip = np.concatenate([ends[:1, 0].numpy(), decoded_pixels(inputs.model, path), ends[1:, 0].numpy()])
    names = CLASS_NAMES.get(inputs.dataset, [str(c) for c in range(10)])
    first, last = names[int(inputs.test_labels[start])], names[int(inputs.test_labels[end])]
    canvas = mosaic(strip, rows=1, cols=steps + 2)
    return mosaic_figure(canvas, title=f"{inputs.name}: {first} to {last}")


def loss_curves(inputs: FigureInputs) -> Figure:
    return plots.loss_curves(inputs.history, name=inputs.name)


def _activity_batch(inputs: FigureInputs) -> np.ndarray:
    return inputs.latent.mu[: inputs.figure_params.activity_images]  # (B, D)


def activity_lines(inputs: FigureInputs) -> Figure:
    return plots.activity_lines(
        _activity_batch(inputs), inputs.latent.activity, threshold=inputs.au_threshold, name=inputs.name
    )


def activity_bars(inputs: FigureInputs) -> Figure:
    return plots.activity_bars(inputs.latent.activity, threshold=inputs.au_threshold, name=inputs.name)


def activity_heatmap(inputs: FigureInputs) -> Figure:
    return plots.activity_heatmap(
        _activity_batch(inputs), inputs.latent.activity, threshold=inputs.au_threshold, name=inputs.name
    )


def latent_map(inputs: FigureInputs) -> Figure:
    class_names = CLASS_NAMES.get(inputs.dataset, [str(c) for c in range(10)])
    return plots.latent_map(
        inputs.latent.mu, inputs.latent.labels, class_names=class_names, seed=inputs.seed, name=inputs.name
    )


# catalog name -> drawing function; `draw_model_figures` checks the two agree.
DRAWERS: dict[str, Callable[[FigureInputs], Figure]] = {
    "loss_curves": loss_curves,
    "reconstructions": reconstructions,
    "samples": samples,
    "activity_lines": activity_lines,
    "activity_bars": activity_bars,
    "activity_heatmap": activity_heatmap,
    "latent_map": latent_map,
    "manifold": manifold,
    "interpolation": interpolation,
}


def draw_model_figures(inputs: FigureInputs, out_dir: str | Path) -> list[Path]:
    """Write every figure that applies to this model as `<out_dir>/<name>.png`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with theme():
        for spec in figures_for(inputs.model.latent_dim):
            fig = DRAWERS[spec.name](inputs)
            path = out_dir / spec.filename
            save_png(fig, path)
            written.append(path)
    return written
