"""The pixels the per-model figures draw, decoded once by the evaluation (of each model's first seed).

The figures stage only draws: it reads these arrays instead of loading the
checkpoint and decoding again. Every image is a float32 pixel mean in
[0, 1], (N, 28, 28); the test images are the evaluation's view of the test
split (binarized with the replicate's seed under `data.binarize: dynamic`).

- `recon_test` (n, 28, 28), `recon_codes` (n, D), `recon_decoded` (n, 28, 28):
  the first n = figures.recon_images test images, their posterior means, and
  their reconstructions decoded at those means;
- `samples_<source>` (g^2, 28, 28) for each source of `SAMPLE_SOURCES`, g =
  figures.samples_grid: decoded from prior codes drawn for the figure
  (stream "figure-samples"), or from the first g^2 ex-post codes the
  evaluation drew (the latent arrays' `expost_<source>`);
- `manifold` (s^2, 28, 28), only at D = 2: the decoded `manifold_grid`;
- `interpolation` (k + 2, 28, 28), k = figures.interpolation_steps: the two
  test images the metrics interpolate between at either end, the k decoded
  path frames between them.
"""

from __future__ import annotations

import numpy as np
import torch

from aebench.common.config import FigureParams
from aebench.common.errors import ConfigError
from aebench.common.runtime import generator
from aebench.evaluation.geometry import interpolation_ends, interpolation_path, manifold_grid
from aebench.evaluation.metrics import SAMPLE_SOURCES
from aebench.evaluation.reconstruction import decoded_images, posterior_means
from aebench.evaluation.sample_quality import prior_codes


def check_figures_fit_data(figures: FigureParams, test_images: int) -> None:
    """figures.recon_images larger than the test split: a ConfigError naming the key, before any work."""
    if figures.recon_images > test_images:
        raise ConfigError(f"figures.recon_images: must be <= {test_images}, the test images, "
                          f"got {figures.recon_images}")


def _pixels(model, codes: torch.Tensor, device) -> np.ndarray:
    """codes (N, D) -> float32 (N, 28, 28) pixel means."""
    return decoded_images(model, codes, device=device)[:, 0].numpy()


def figure_pixels(model, targets: torch.Tensor, labels: torch.Tensor, figures: FigureParams,
                  expost: dict[str, np.ndarray], *, seed: int,
                  device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """The arrays of the module docstring for `model` (on `device`, eval mode), seed `seed`.

    `targets` (N, 1, 28, 28) and `labels` (N,) are the test split as the
    evaluation scored it; `expost` holds the evaluation's `expost_<source>`
    codes (M, D).
    """
    count, grid = figures.recon_images, figures.samples_grid
    originals = targets[:count]  # (n, 1, 28, 28)
    codes = posterior_means(model, originals, batch_size=count, device=device)  # (n, D)
    arrays = {"recon_test": originals[:, 0].numpy(), "recon_codes": codes.numpy(),
              "recon_decoded": _pixels(model, codes, device)}
    for source in SAMPLE_SOURCES:
        if source == "prior":  # a CPU stream, so the grid is the same on every device
            drawn = prior_codes(grid * grid, model.latent_dim, generator=generator(seed, "figure-samples"))
        else:
            drawn = torch.as_tensor(np.asarray(expost[f"expost_{source}"][: grid * grid], dtype=np.float32))
        arrays[f"samples_{source}"] = _pixels(model, drawn, device)  # (g^2, 28, 28)
    if model.latent_dim == 2:
        arrays["manifold"] = _pixels(model, manifold_grid(figures.manifold_steps, figures.manifold_range), device)
    start, end = interpolation_ends(labels)
    ends = targets[[start, end]]  # (2, 1, 28, 28)
    path = interpolation_path(model, ends, figures.interpolation_steps, device=device)  # (k, D)
    arrays["interpolation"] = np.concatenate([ends[:1, 0].numpy(), _pixels(model, path, device), ends[1:, 0].numpy()])
    return {name: array.astype(np.float32) for name, array in arrays.items()}
