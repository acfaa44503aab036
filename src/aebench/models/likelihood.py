"""The pixel likelihood p(x | z): the one place that knows what a decoder's output means.

A decoder outputs one number per pixel: Bernoulli logits, or the mean of a
Gaussian with a fixed standard deviation. Training, evaluation and figures all
ask this module for what they need, so a new likelihood is one class here:

- `nll(output, x)`: -log p(x | z) per image, summed over the 784 pixels, in nats;
- `log_prob_rows(output, target)`: the same, negated, for the importance-weighted
  estimate's (B, K, P) samples against (B, P) targets, without (B, K, P) temporaries;
- `pixel_means(output)`: the image the decoder draws, in [0, 1];
- `bce(output, x)`: the binary cross-entropy of `pixel_means` against x per image
  (the reconstruction error reported for every model, whatever its likelihood).

The Gaussian's density is normalised (it is the MSE over 2 std^2 plus a
constant), so its numbers stay in nats. The Bernoulli likelihood is a proper
density only for binary pixels (`data.binarize: dynamic`).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


class PixelLikelihood(Protocol):
    name: str

    def nll(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...
    def log_prob_rows(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...
    def pixel_means(self, output: torch.Tensor) -> torch.Tensor: ...
    def bce(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...


def _per_image(per_pixel: torch.Tensor) -> torch.Tensor:
    """(..., 1, 28, 28) -> (...,): summed over the pixels of each image."""
    return per_pixel.flatten(-3).sum(-1)


class Bernoulli:
    """Each pixel is Bernoulli(sigmoid(logit)); the decoder outputs logits."""

    name = "bernoulli"

    def nll(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """logits (..., 1, 28, 28) and targets broadcastable to them -> (...,) nats."""
        return _per_image(F.binary_cross_entropy_with_logits(output, x.expand_as(output), reduction="none"))

    def log_prob_rows(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """logits (B, K, P), binary targets (B, P) -> log p (B, K).

        log p(x|l) = sum_j [x_j l_j - softplus(l_j)], with softplus(l) = max(l, 0) + log(1 + exp(-|l|)).
        The agreement term is one bmm, and softplus is written with exp and log because
        PyTorch's softplus and log1p are not vectorised on the CPU (3x slower there);
        log(1 + u) for u in (0, 1] loses at most ~1e-7 nats per pixel against log1p.
        """
        agreement = torch.bmm(output, target.unsqueeze(-1)).squeeze(-1)  # (B, K)
        softplus = output.abs().neg_().exp_().add_(1).log_().sum(-1) + output.clamp(min=0).sum(-1)
        return agreement - softplus

    def pixel_means(self, output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(output)

    def bce(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.nll(output, x)  # from the logits: exact even where the sigmoid saturates


class Gaussian:
    """Each pixel is N(mean, std^2) with a fixed std; the decoder outputs the mean."""

    name = "gaussian"

    def __init__(self, std: float) -> None:
        self.std = std

    def nll(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        per_pixel = 0.5 * ((x - output) / self.std) ** 2 + math.log(self.std) + 0.5 * LOG_2PI
        return _per_image(per_pixel)

    def log_prob_rows(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pixels = target.shape[-1]
        squared = (output - target.unsqueeze(1)).pow_(2).sum(-1)  # (B, K)
        return -0.5 * squared / self.std**2 - pixels * (math.log(self.std) + 0.5 * LOG_2PI)

    def pixel_means(self, output: torch.Tensor) -> torch.Tensor:
        return output.clamp(0.0, 1.0)

    def bce(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # F.binary_cross_entropy clips log(0) at -100, so a clipped mean of exactly 0 or 1 stays finite.
        return _per_image(F.binary_cross_entropy(self.pixel_means(output), x, reduction="none"))


LIKELIHOODS = {"bernoulli": lambda std: Bernoulli(), "gaussian": Gaussian}


def pixel_likelihood(name: str, gaussian_std: float) -> PixelLikelihood:
    """The likelihood called `name` (params `likelihood.name`); `gaussian_std` is used by `gaussian` only."""
    return LIKELIHOODS[name](gaussian_std)
