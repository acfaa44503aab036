"""Controlled degradations of real images, to check that a sample-quality metric ranks them.

Copies of the same held-out images, from best to worst (`DEGRADATIONS`, in order):

- "real": the images themselves;
- "blur": a Gaussian blur with sigma = 1 pixel (strokes soften, shapes stay);
- "salt_and_pepper": 20% of each image's pixels set to 0 or 1 (shapes stay, texture breaks);
- "shuffled": each image's pixels permuted (intensities stay, every shape is gone).

A metric worth reporting must score them in that order (`validate_metric`);
one that cannot tell a blurred digit from a shuffled one says nothing about samples.
Images are float tensors (N, C, H, W) in [0, 1]; every degradation keeps shape,
dtype and range, and draws its randomness from the `generator` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

BLUR_SIGMA = 1.0  # pixels: enough to soften 28 x 28 strokes visibly, not to erase them
BLUR_TRUNCATE = 4.0  # kernel radius in sigmas, as scipy.ndimage.gaussian_filter: < 1e-4 of the mass lies beyond
NOISE_FRACTION = 0.2  # of each image's pixels


def gaussian_blur(images: torch.Tensor, *, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """Blur (N, C, H, W) with a separable Gaussian kernel of radius round(4 sigma), normalised to sum 1.

    Reflect padding (mirrored about the edge pixel, which is not repeated:
    d c b | a b c d): a constant image stays constant, where zero padding would
    darken the border of any image whose content reaches it, as a Fashion-MNIST
    garment's often does, and so degrade it by more than a blur. Away from the
    border (further than the radius) an image's sum is kept exactly. Equal to
    scipy.ndimage.gaussian_filter(mode="mirror", truncate=4.0) on each image.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    radius = int(BLUR_TRUNCATE * sigma + 0.5)
    if radius >= min(images.shape[-2:]):
        size = tuple(images.shape[-2:])
        raise ValueError(f"a blur of sigma {sigma} (radius {radius}) needs images larger than {size}")
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)  # (2r + 1,)
    count, channels, height, width = images.shape
    planes = images.reshape(count * channels, 1, height, width)  # each channel blurred on its own
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode="reflect"), kernel.view(1, 1, -1, 1))
    # A convex combination of values in [0, 1] stays there but for round-off.
    return planes.reshape(images.shape).clamp_(0.0, 1.0)


def _uniform_keys(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random sort keys (N, H * W), one per pixel position; float64 makes ties practically impossible."""
    count, _, height, width = images.shape
    return torch.rand((count, height * width), generator=generator, dtype=torch.float64, device=images.device)


def salt_and_pepper(
    images: torch.Tensor, *, fraction: float = NOISE_FRACTION, generator: torch.Generator
) -> torch.Tensor:
    """Set round(fraction * H * W) pixel positions of each image, chosen at random, to 0 or 1 with equal odds.

    An exact count per image (not a coin per pixel), so that every image is degraded
    by the same amount; all channels of a chosen position get the same value.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    count, channels, height, width = images.shape
    hits = round(fraction * height * width)
    positions = _uniform_keys(images, generator).argsort(dim=1, stable=True)[:, :hits]  # (N, hits)
    values = torch.randint(0, 2, (count, hits), generator=generator, device=images.device).to(images.dtype)
    noisy = images.reshape(count, channels, height * width).clone()
    noisy.scatter_(2, positions[:, None, :].expand(-1, channels, -1), values[:, None, :].expand(-1, channels, -1))
    return noisy.reshape(images.shape)


def shuffle_pixels(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Permute the pixel positions of each image (N, C, H, W), one random permutation per image."""
    count, channels, height, width = images.shape
    permutation = _uniform_keys(images, generator).argsort(dim=1, stable=True)  # (N, H * W)
    flat = images.reshape(count, channels, height * width)
    return flat.gather(2, permutation[:, None, :].expand(-1, channels, -1)).reshape(images.shape)


# From best to worst; each takes (images, *, generator) and returns a degraded copy.
DEGRADATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "real": lambda images, *, generator: images.clone(),
    "blur": lambda images, *, generator: gaussian_blur(images),
    "salt_and_pepper": lambda images, *, generator: salt_and_pepper(images, generator=generator),
    "shuffled": lambda images, *, generator: shuffle_pixels(images, generator=generator),
}


@dataclass(frozen=True)
class MetricValidation:
    scores: dict[str, float]  # degradation name -> score, from best to worst (DEGRADATIONS' order)
    higher_is_better: bool
    passes: bool  # the scores are strictly ordered from best to worst


def validate_metric(
    score: Callable[[torch.Tensor], float],
    *,
    higher_is_better: bool,
    images: torch.Tensor,
    generator: torch.Generator,
) -> MetricValidation:
    """Score each degraded copy of `images` (N, C, H, W) in [0, 1]; pass when the order is the known one."""
    scores = {name: float(score(degrade(images, generator=generator))) for name, degrade in DEGRADATIONS.items()}
    values = list(scores.values())
    if not higher_is_better:
        values = [-value for value in values]
    # Strict, and False when any score is NaN: a tie does not tell the inputs apart.
    passes = all(better > worse for better, worse in zip(values, values[1:]))
    return MetricValidation(scores=scores, higher_is_better=higher_is_better, passes=passes)
