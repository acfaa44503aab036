"""The KL to the prior, dimension by dimension (for the per-dimension plots and the rate)."""

from __future__ import annotations

import numpy as np
import torch

from aebench.models.objectives import gaussian_kl


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> np.ndarray:
    """KL(q(z_u|x) || N(0, 1)) averaged over the images, per dimension: (N, D) -> float64 (D,), nats."""
    return gaussian_kl(mu.double(), logvar.double()).mean(0).numpy()
