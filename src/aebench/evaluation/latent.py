"""How much of the latent space a model uses.

Activity (Burda et al. 2015): A_u = Var_x(E_q[z_u | x]), the variance over the
test set of dimension u's posterior mean (for the AE, of its code). A dimension
whose mean ignores the input carries no information about it, whatever its
sampled noise does; it is counted active when A_u exceeds a threshold (0.01).
"""

from __future__ import annotations

import numpy as np
import torch

from aebench.models.objectives import gaussian_kl


def activity(mu: torch.Tensor | np.ndarray) -> np.ndarray:
    """A_u per dimension: mu (N, D) -> float64 (D,), the unbiased variance over the N images."""
    means = np.asarray(mu, dtype=np.float64)
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(f"activity needs posterior means of shape (N >= 2, D), got {means.shape}")
    return means.var(axis=0, ddof=1)


def active_units(activities: np.ndarray, threshold: float) -> int:
    """How many dimensions have A_u > threshold."""
    return int(np.count_nonzero(np.asarray(activities) > threshold))


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> np.ndarray:
    """KL(q(z_u|x) || N(0, 1)) averaged over the images, per dimension: (N, D) -> float64 (D,), nats."""
    return gaussian_kl(mu.double(), logvar.double()).mean(0).numpy()
