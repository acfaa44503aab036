"""How much of the latent a model uses, measured so that rescaling the latent cannot fool it.

Activity A_u (`latent.activity`) is a variance in the latent's own units. The
EM-AE's 0.5 * ||mu||^2 penalty shrinks its whole latent (A_u of 0.04-0.09 on
every dimension) while the AE's A_u are 4-10, so a fixed threshold on A_u
compares scales, not use (`activity.active_units_curve` shows the count at
every threshold). The scale-free measure chosen here is decoder usage. For
codes z = mu(x) (N, D) and a decoder f to pixel means in [0, 1]:

    usage_u = mean_i || f(z_i) - f(z_i with z_iu replaced by z_pi(i),u) ||^2

with pi a fixed random pairing in which no image is paired with itself. The
substituted value is drawn from dimension u's own empirical distribution, so
any z_u -> a * z_u + b that the decoder absorbs leaves usage unchanged; a
dimension the decoder ignores scores exactly 0; and only posterior means are
used, so the AE, VAE and EM-AE are measured alike. For a linear decoder,
usage_u = 2 * ||w_u||^2 * Var(z_u) in expectation. Why this rather than the
posterior signal-to-noise Var_x(mu_u) / E_x[sigma_u^2]: the AE has no sigma,
and the EM-AE, free to shrink sigma, would score every dimension as highly
informative whether or not its decoder uses it.

How the use is split over the dimensions (shares, effective dimensions, used
units) is `usage_split`'s, torch-free so that the report reads it.

Caveat: swapping one coordinate gives codes that may lie off the joint code
distribution when dimensions are correlated, so the decoder is probed a
little outside what it was trained on. Usage is not additive over
dimensions; its shares say how the use is split, not how much each adds.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch


# Codes decoded per call: small enough for any decoder here on a CPU, large enough to keep a GPU busy.
DEFAULT_BATCH = 1000


def _partners(n: int, *, generator: torch.Generator) -> torch.Tensor:
    """(n,) indices: image i takes its substituted value from image partners[i] != i.

    A random cyclic order: order[k] is paired with order[k + 1], the last with
    the first. Every image gives and takes exactly once, and never from itself
    (a self-pair would add a zero and bias usage down by 1/n).
    """
    order = torch.randperm(n, generator=generator, device=generator.device)  # (n,)
    partners = torch.empty_like(order)
    partners[order] = order.roll(-1)
    return partners


@torch.inference_mode()
def decoder_usage(
    decode: Callable[[torch.Tensor], torch.Tensor],
    codes: torch.Tensor,
    *,
    generator: torch.Generator,
    batch: int = DEFAULT_BATCH,
) -> np.ndarray:
    """usage_u per dimension: float64 (D,), squared pixel distance per image.

    `decode` maps codes (M, D) to pixel means (M, ...) in [0, 1] (for a model,
    e.g. `lambda z: decoded_images(model.decode(z), likelihood)`); `codes`
    (N, D) are posterior means on the decoder's device; `generator` draws the
    pairing (on any device). N * (D + 1) codes are decoded, `batch` at a time.
    """
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"decoder_usage needs codes of shape (N >= 2, D), got {tuple(codes.shape)}")
    n, dims = codes.shape
    donors = codes[_partners(n, generator=generator).to(codes.device)]  # (N, D): each image's partner's code
    totals = torch.zeros(dims, dtype=torch.float64)
    for start in range(0, n, batch):
        z = codes[start : start + batch]  # (B, D)
        base = decode(z).flatten(1).double()  # (B, P)
        for u in range(dims):
            swapped = z.clone()
            swapped[:, u] = donors[start : start + batch, u]
            change = decode(swapped).flatten(1).double() - base  # (B, P)
            totals[u] += change.pow(2).sum().cpu()
    return (totals / n).numpy()
