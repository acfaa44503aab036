"""Test-set likelihoods of a model with a Gaussian q(z|x): the ELBO and the
importance-weighted (IW) estimate of log p(x) (Burda et al. 2015).

For each image x, K samples z_k = mu + sigma * eps_k from q(z|x) give the log
weights

    log w_k = log p(x | z_k) + log p(z_k) - log q(z_k | x)

and

    log p(x) >= IW_K(x) = logsumexp_k(log w_k) - log K          (tightens as K grows)
    ELBO(x)  = E_q[log p(x | z)] - KL(q(z|x) || N(0, I))        (= E[IW_1])

The ELBO's expectation uses the same K samples (the KL is exact), so one pass
gives both. Everything is in nats per image; per-image results have shape (N,).

Precision: IW_K(x) is the log of a mean of K weights, so to first order (the
delta method) its Monte-Carlo variance is Var_k(w) / (K mean_k(w)^2) =
(K sum_k w~_k^2 - 1) / (K - 1) with the normalised weights w~_k = w_k / sum w;
1 / sum w~^2 is the effective sample size. `nll_iw_mc_var` is that per image,
from the same K weights (no extra decoder pass).

Speed: the decoder pass over N * K rows dominates (K = 1000 over 10 000
images: ~80 s on 2 CPU cores, `benchmarks/iw_speed.py`). The samples of an
image sit side by side, (B, K, ...), and a pass decodes at most about
`max_rows` rows (a few thousand keep the logits in the CPU cache; a GPU prefers
more); the likelihood's `log_prob_rows` scores all of an image's samples at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aebench.models.likelihood import LOG_2PI
from aebench.models.objectives import gaussian_kl


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I): (..., D) -> (...,)."""
    return -0.5 * (z.pow(2).sum(-1) + z.shape[-1] * LOG_2PI)


@dataclass(frozen=True)
class LikelihoodEstimates:
    """Per-image estimates, each (N,), in nats."""

    expected_nll: torch.Tensor  # E_q[-log p(x|z)], Monte Carlo over the K samples
    kl: torch.Tensor  # KL(q(z|x) || N(0, I)), exact
    nll_iw: torch.Tensor  # -IW_K(x)
    nll_iw_mc_var: torch.Tensor  # the delta-method Monte-Carlo variance of nll_iw (NaN when K = 1)
    samples: int

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.expected_nll + self.kl

    def nll_iw_se(self) -> float | None:
        """Standard error of the mean of nll_iw over the images (their spread, Monte-Carlo noise included);
        None for fewer than 2 images."""
        return float(self.nll_iw.std() / math.sqrt(len(self.nll_iw))) if len(self.nll_iw) > 1 else None

    def nll_iw_mc_se(self) -> float | None:
        """Monte-Carlo standard error of the mean of nll_iw over these images: how much another K draws per
        image would move it (delta method); None when K = 1."""
        if self.samples < 2:
            return None
        return float(self.nll_iw_mc_var.sum().sqrt() / len(self.nll_iw_mc_var))


def chunk_plan(samples: int, batch_images: int, max_rows: int) -> tuple[int, int]:
    """(images per batch, samples per decoder pass): at most about `max_rows` decoder rows a pass.

    K is split into several passes when `batch_images * K` rows would exceed
    `max_rows`; the batch itself shrinks only when one sample per image would.
    """
    images = max(1, min(batch_images, max_rows))
    per_pass = max(1, min(samples, max_rows // images))
    return images, per_pass


@torch.inference_mode()
def estimate_likelihood(
    model,
    targets: torch.Tensor,
    *,
    samples: int,
    batch_images: int,
    max_rows: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> LikelihoodEstimates:
    """ELBO and IW estimates for every image of `targets` (N, ...) under `model`.

    The model encodes `targets` itself (what it was trained to see) and must
    have a Gaussian q: `encode(x) -> (mu, logvar)` (B, D) each, and
    `decode(z (..., D)) -> (..., *image)`. `generator` lives on `device`.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    images_per_batch, samples_per_pass = chunk_plan(samples, batch_images, max_rows)
    expected_nll, kl, nll_iw, nll_iw_mc_var = [], [], [], []
    for start in range(0, len(targets), images_per_batch):
        x = targets[start : start + images_per_batch].to(device)  # (B, ...)
        flat_x = x.flatten(1)  # (B, P)
        mu, logvar = model.encode(x)  # (B, D) each
        if logvar is None:
            raise ValueError("the model has no q(z|x) variance (an AE): no ELBO or IW estimate")
        std = (0.5 * logvar).exp()
        log_weights, log_px = [], []
        for done in range(0, samples, samples_per_pass):
            k = min(samples_per_pass, samples - done)
            # Samples of one image side by side, (B, k, ...), so the Bernoulli term is one bmm without copies.
            eps = torch.randn((len(x), k, mu.shape[-1]), generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu.unsqueeze(1) + std.unsqueeze(1) * eps  # (B, k, D)
            output = model.decode(z).flatten(2)  # (B, k, P)
            log_px_z = model.likelihood.log_prob_rows(output, flat_x)  # (B, k)
            # log q from eps directly: stable even when sigma is tiny (the EM-AE's).
            log_qz = -0.5 * (eps.pow(2) + logvar.unsqueeze(1) + LOG_2PI).sum(-1)  # (B, k)
            log_weights.append(log_px_z + standard_normal_log_density(z) - log_qz)
            log_px.append(log_px_z)
        log_w = torch.cat(log_weights, dim=1).double()  # (B, K)
        log_sum = torch.logsumexp(log_w, dim=1)  # (B,)
        nll_iw.append(-(log_sum - math.log(samples)).cpu())
        squares = torch.logsumexp(2 * log_w, dim=1).sub(2 * log_sum).exp()  # sum_k w~_k^2 >= 1 / K, (B,)
        mc_var = (samples * squares - 1).clamp(min=0) / (samples - 1) if samples > 1 else squares * math.nan
        nll_iw_mc_var.append(mc_var.cpu())
        expected_nll.append(-torch.cat(log_px, dim=1).double().mean(1).cpu())
        kl.append(gaussian_kl(mu, logvar).double().sum(-1).cpu())
    return LikelihoodEstimates(
        expected_nll=torch.cat(expected_nll),
        kl=torch.cat(kl),
        nll_iw=torch.cat(nll_iw),
        nll_iw_mc_var=torch.cat(nll_iw_mc_var),
        samples=samples,
    )
