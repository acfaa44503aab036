"""The validation ladder: controlled copies of real images, to check that a sample-quality metric ranks them.

Copies of the same held-out images (`DEGRADATIONS`):

- "real": the images themselves;
- "blur": a Gaussian blur with sigma = 1 pixel (strokes soften, the digit or garment stays): the VAE's
  failure;
- "patchwork": each image's four quadrants taken from four other images (`patchwork`): every pixel is a
  real one at its own position, so strokes keep their sharpness, width and grey levels, but the whole
  is no digit or garment: the EM-AE's failure, sharp scribbles, at the sharpness of real data;
- "salt_and_pepper": 20% of each image's pixels set to 0 or 1 (the shape stays under the noise);
- "shuffled": each image's pixels permuted (intensities stay, every shape is gone);
- "binarized": each pixel set to 0 or 1 at the threshold 0.5 (`binarize`): a full-contrast silhouette
  of the same digit or garment, its grey levels gone;
- "binarized_patchwork": a patchwork, binarized: full-contrast fragments of four images, the EM-AE's
  failure as its Fashion-MNIST samples show it (saturated, and no one garment).

What a person sees decides the order a metric must reproduce (`LADDER_ORDER`): a blurred digit, a
noisy one and a silhouette are still digits, a patchwork (binarized or not) and a shuffled image are
not, and a patchwork still has strokes. So real > blur > patchwork > shuffled, real > salt_and_pepper
> patchwork, blur > binarized_patchwork > shuffled and binarized > binarized_patchwork. Pairs whose
order is a matter of taste are left unordered: blur against salt and pepper (which of two damaged
digits is "more of a digit"), and the binarized rungs against real and against their grey twins (a
silhouette of a digit is as much a digit, and a coverage metric may fairly prefer grey levels). The
contrast that matters is blur > patchwork, at the sharpness of real data and at full contrast: a
metric that rates sharp or saturated non-digits above blurred digits rewards sharpness or contrast,
not being a digit, and would call the EM-AE's scribbles better samples than the VAE's soft digits.

Images are float tensors (N, C, H, W) in [0, 1]; every degradation keeps shape, dtype and range, and
draws its randomness from the `generator` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

BLUR_SIGMA = 1.0  # pixels: enough to soften 28 x 28 strokes visibly, not to erase them
BINARIZE_THRESHOLD = 0.5  # the middle grey: pixels at or above it become 1, the rest 0
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


def binarize(images: torch.Tensor) -> torch.Tensor:
    """Each pixel 1 where it is at least BINARIZE_THRESHOLD, else 0, in the images' dtype."""
    return (images >= BINARIZE_THRESHOLD).to(images.dtype)


PATCHWORK_SOURCES = 4  # one image per quadrant


def patchwork(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Each image's quadrants (split at H // 2, W // 2) copied from four other images.

    The images are put in a random cyclic order; image j takes its top-left quadrant from
    the next image in that order, top-right from the one after, then bottom-left, bottom-right.
    So the four sources of an image are four distinct images other than itself, and every
    image lends each quadrant exactly once: the set keeps its pixel statistics per position.
    """
    count, _, height, width = images.shape
    if count <= PATCHWORK_SOURCES:
        raise ValueError(f"a patchwork of {PATCHWORK_SOURCES} other images needs more than "
                         f"{PATCHWORK_SOURCES} images, got {count}")
    order = torch.randperm(count, generator=generator, device=generator.device).to(images.device)  # (N,)
    quadrants = [(top, left) for top in (slice(0, height // 2), slice(height // 2, height))
                 for left in (slice(0, width // 2), slice(width // 2, width))]
    assembled = torch.empty_like(images)
    for shift, (rows, cols) in enumerate(quadrants, start=1):
        sources = torch.empty_like(order)
        sources[order] = order.roll(-shift)  # image order[j] takes from order[j + shift]
        assembled[:, :, rows, cols] = images[sources][:, :, rows, cols]
    return assembled


# The rungs; each takes (images, *, generator) and returns a degraded copy.
DEGRADATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "real": lambda images, *, generator: images.clone(),
    "blur": lambda images, *, generator: gaussian_blur(images),
    "patchwork": lambda images, *, generator: patchwork(images, generator=generator),
    "salt_and_pepper": lambda images, *, generator: salt_and_pepper(images, generator=generator),
    "shuffled": lambda images, *, generator: shuffle_pixels(images, generator=generator),
    # Added after the first five, so that the rungs before them draw the same random numbers as before.
    "binarized": lambda images, *, generator: binarize(images),
    "binarized_patchwork": lambda images, *, generator: binarize(patchwork(images, generator=generator)),
}

# The order a quality metric must reproduce, as chains from best to worst (see the module docstring):
# each chain strictly ordered; rungs in no common chain (blur and salt_and_pepper, binarized and real) need no order.
LADDER_ORDER: tuple[tuple[str, ...], ...] = (
    ("real", "blur", "patchwork", "shuffled"),
    ("real", "salt_and_pepper", "patchwork"),
    ("blur", "binarized_patchwork", "shuffled"),
    ("binarized", "binarized_patchwork"),
)


def misorderings(scores: dict[str, float], *, higher_is_better: bool) -> list[tuple[str, str]]:
    """The pairs (better, worse) of LADDER_ORDER that `scores` (rung -> score) fail to rank strictly.

    Empty when the metric passes. Strict, and a NaN fails: a tie does not tell the rungs apart.
    """
    sign = 1.0 if higher_is_better else -1.0
    pairs = dict.fromkeys(pair for chain in LADDER_ORDER for pair in zip(chain, chain[1:]))
    return [(better, worse) for better, worse in pairs if not sign * scores[better] > sign * scores[worse]]


@dataclass(frozen=True)
class MetricValidation:
    scores: dict[str, float]  # rung -> score, in DEGRADATIONS' order
    higher_is_better: bool
    misordered: list[tuple[str, str]]  # pairs of LADDER_ORDER ranked the wrong way (or tied)

    @property
    def passes(self) -> bool:
        return not self.misordered


def validate_metric(
    score: Callable[[torch.Tensor], float],
    *,
    higher_is_better: bool,
    images: torch.Tensor,
    generator: torch.Generator,
) -> MetricValidation:
    """Score each rung made from `images` (N, C, H, W) in [0, 1]; pass when they follow LADDER_ORDER."""
    scores = {name: float(score(degrade(images, generator=generator))) for name, degrade in DEGRADATIONS.items()}
    return MetricValidation(scores=scores, higher_is_better=higher_is_better,
                            misordered=misorderings(scores, higher_is_better=higher_is_better))
