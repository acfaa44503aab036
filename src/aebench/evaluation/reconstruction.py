"""One deterministic pass over a split: posterior moments and reconstructions at z = mu.

The reconstruction is the decoder's output at the posterior mean (the code
itself for the AE), so every model is judged on the same footing. Its errors
are summed over the pixels and reported per image, each from the model's
pixel likelihood (`aebench.models.likelihood`):

- the model's own -log p(x | z = mu);
- the BCE of the pixel means against x (comparable across likelihoods);
- the squared error of the pixel means.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PosteriorPass:
    """What one pass over N images gives (CPU tensors)."""

    mu: torch.Tensor  # (N, D): posterior means (the AE's codes)
    logvar: torch.Tensor | None  # (N, D), None for a deterministic code
    recon_nll: torch.Tensor  # (N,) nats per image
    recon_bce: torch.Tensor  # (N,) nats per image
    recon_mse: torch.Tensor  # (N,) summed squared pixel error per image


@torch.inference_mode()
def posterior_pass(model, targets: torch.Tensor, *, batch_size: int, device: torch.device | str = "cpu") -> PosteriorPass:
    """Encode `targets` (N, 1, 28, 28) and reconstruct them from z = mu."""
    likelihood = model.likelihood
    mus, logvars, nll, bce, mse = [], [], [], [], []
    for start in range(0, len(targets), batch_size):
        x = targets[start : start + batch_size].to(device)  # (B, 1, 28, 28)
        mu, logvar = model.encode(x)  # (B, D), (B, D) or None
        output = model.decode(mu)  # (B, 1, 28, 28)
        nll.append(likelihood.nll(output, x).double().cpu())
        bce.append(likelihood.bce(output, x).double().cpu())
        mse.append((likelihood.pixel_means(output) - x).pow(2).flatten(1).sum(-1).double().cpu())
        mus.append(mu.float().cpu())
        if logvar is not None:
            logvars.append(logvar.float().cpu())
    return PosteriorPass(
        mu=torch.cat(mus),
        logvar=torch.cat(logvars) if logvars else None,
        recon_nll=torch.cat(nll),
        recon_bce=torch.cat(bce),
        recon_mse=torch.cat(mse),
    )


@torch.inference_mode()
def posterior_means(model, images: torch.Tensor, *, batch_size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """mu (N, D) of `images` (N, 1, 28, 28), without decoding (for the probe's training split)."""
    chunks = [model.encode(images[i : i + batch_size].to(device))[0].float().cpu() for i in range(0, len(images), batch_size)]
    return torch.cat(chunks)


@torch.inference_mode()
def decoded_images(model, z: torch.Tensor, *, batch_size: int = 1000, device: torch.device | str = "cpu") -> torch.Tensor:
    """Pixel means (N, 1, 28, 28) in [0, 1] of codes z (N, D), decoded in batches, on the CPU."""
    chunks = [model.decode_images(z[i : i + batch_size].to(device)).float().cpu() for i in range(0, len(z), batch_size)]
    return torch.cat(chunks)
