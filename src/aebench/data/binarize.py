"""How pixel intensities become the targets of the likelihood.

With `data.binarize: dynamic` every pass over the training set draws fresh
binary pixels x ~ Bernoulli(intensity), which makes the Bernoulli likelihood a
proper density and the numbers comparable with the literature (Burda et al.).
Validation and test images are binarized once per replicate seed, so every
epoch, and every variant trained with that seed, is scored on the same binary
images (paired comparisons).
"""

from __future__ import annotations

import torch

from aebench.common.runtime import generator

BINARIZATIONS = ("none", "dynamic")


def binarize(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """Sample binary pixels: images (N, 1, 28, 28) in [0, 1] -> {0., 1.} same shape."""
    return torch.bernoulli(images, generator=generator)


def fixed_targets(images: torch.Tensor, mode: str, *, seed: int, split: str) -> torch.Tensor:
    """The evaluation view of a split for replicate `seed`: binarized once, or left grey-level."""
    if mode == "none":
        return images
    return binarize(images, generator=generator(seed, f"binarize-{split}"))
