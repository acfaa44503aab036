"""One deterministic pass over a split: posterior moments and reconstructions at z = mu.

The reconstruction is the decoder's image at the posterior mean (the code
itself for the AE), so all three models are judged on the same footing. Its
errors are summed over the pixels and reported per image:

- BCE: -sum_j [x_j log p_j + (1 - x_j) log(1 - p_j)], computed from the logits
  for a Bernoulli decoder (exact even where the sigmoid saturates);
- squared error: sum_j (x_j - p_j)^2, with p the image in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

# Decoder output -> the image it draws, in [0, 1]: Bernoulli means, or Gaussian means clipped.
PIXEL_IMAGES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "bernoulli": torch.sigmoid,
    "gaussian": lambda mean: mean.clamp(0.0, 1.0),
}

# Decoder output, target -> per-pixel binary cross-entropy.
_PIXEL_BCE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bernoulli": lambda logits, x: F.binary_cross_entropy_with_logits(logits, x, reduction="none"),
    # F.binary_cross_entropy clips log(0) at -100, so a clipped mean of exactly 0 or 1 stays finite.
    "gaussian": lambda mean, x: F.binary_cross_entropy(mean.clamp(0.0, 1.0), x, reduction="none"),
}


def decoded_images(output: torch.Tensor, likelihood: str) -> torch.Tensor:
    """Decoder output -> images in [0, 1], same shape."""
    return PIXEL_IMAGES[likelihood](output)


@dataclass(frozen=True)
class PosteriorPass:
    """What one pass over N images gives (CPU tensors)."""

    mu: torch.Tensor  # (N, D): posterior means (the AE's codes)
    logvar: torch.Tensor | None  # (N, D), None for the AE
    recon_bce: torch.Tensor  # (N,) nats per image
    recon_mse: torch.Tensor  # (N,) summed squared pixel error per image


@torch.inference_mode()
def posterior_pass(
    model,
    targets: torch.Tensor,
    *,
    likelihood: str,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> PosteriorPass:
    """Encode `targets` (N, 1, 28, 28) and reconstruct them from z = mu."""
    mus, logvars, bce, mse = [], [], [], []
    for start in range(0, len(targets), batch_size):
        x = targets[start : start + batch_size].to(device)  # (B, 1, 28, 28)
        mu, logvar = model.encode(x)  # (B, D), (B, D) or None
        output = model.decode(mu)  # (B, 1, 28, 28)
        bce.append(_PIXEL_BCE[likelihood](output, x).flatten(1).sum(-1).double().cpu())
        mse.append((decoded_images(output, likelihood) - x).pow(2).flatten(1).sum(-1).double().cpu())
        mus.append(mu.float().cpu())
        if logvar is not None:
            logvars.append(logvar.float().cpu())
    return PosteriorPass(
        mu=torch.cat(mus),
        logvar=torch.cat(logvars) if logvars else None,
        recon_bce=torch.cat(bce),
        recon_mse=torch.cat(mse),
    )


@torch.inference_mode()
def posterior_means(model, images: torch.Tensor, *, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """mu (N, D) of `images` (N, 1, 28, 28), without decoding (for the probe's training split)."""
    chunks = [model.encode(images[i : i + batch_size].to(device))[0].float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)
