"""Ex-post density estimation (Ghosh et al. 2020, "From variational to deterministic autoencoders").

A deterministic autoencoder has no prior to sample from, and a VAE's codes often
do not fill N(0, I) (holes between classes, collapsed dimensions), so decoding
draws from N(0, I) judges that mismatch as much as the decoder. Ex post: after
training, fit a density to the training set's codes (posterior means, (N, D))
and decode draws from it instead. Both densities are mixtures of full-covariance
Gaussians, sampled by one method:

- "gaussian": one component, the codes' mean and maximum-likelihood covariance
  (closed form; the same density EM finds with one component);
- "gmm": `components` components fitted by EM (scikit-learn's GaussianMixture,
  k-means initialisation from `seed`), the paper's choice with 10 components.

Every covariance has REG_COVAR added to its diagonal, so a constant dimension (a
collapsed VAE unit, whose posterior mean ignores the input) gives a valid, nearly
flat density along it instead of a singular matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

DEFAULT_COMPONENTS = 10  # the paper's GMM
REG_COVAR = 1e-6  # scikit-learn's default; on O(1) codes a constant dimension is drawn with std 1e-3
MAX_ITER = 1000  # EM stops at scikit-learn's tolerance (1e-3 on the mean log-likelihood) long before this


@dataclass(frozen=True, eq=False)
class ExpostDensity:
    """A mixture of K full-covariance Gaussians over D-dimensional codes."""

    kind: str
    weights: np.ndarray  # (K,), sums to 1
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D), REG_COVAR included

    def sample(self, count: int, *, seed: int) -> np.ndarray:
        """`count` codes (count, D) float32; the same seed gives the same bytes."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=count, p=self.weights)  # (count,)
        noise = rng.standard_normal((count, self.means.shape[1]))  # (count, D)
        factors = np.linalg.cholesky(self.covariances)  # (K, D, D), lower: factor @ factor.T = covariance
        codes = np.empty_like(noise)
        for index, (mean, factor) in enumerate(zip(self.means, factors)):
            chosen = component == index
            codes[chosen] = mean + noise[chosen] @ factor.T
        return codes.astype(np.float32)


def _fit_gaussian(codes: np.ndarray, *, components: int, seed: int) -> ExpostDensity:
    del components, seed  # one component, in closed form
    mean = codes.mean(axis=0)  # (D,)
    centred = codes - mean
    covariance = centred.T @ centred / len(codes) + REG_COVAR * np.eye(codes.shape[1])  # (D, D)
    return ExpostDensity(kind="gaussian", weights=np.ones(1), means=mean[None], covariances=covariance[None])


def _fit_gmm(codes: np.ndarray, *, components: int, seed: int) -> ExpostDensity:
    if components > len(codes):
        raise ValueError(f"a {components}-component mixture needs at least {components} codes, got {len(codes)}")
    from sklearn.mixture import GaussianMixture  # here, not at the top: see the probe's import

    mixture = GaussianMixture(
        n_components=components, covariance_type="full", reg_covar=REG_COVAR, max_iter=MAX_ITER, random_state=seed
    ).fit(codes)
    return ExpostDensity(kind="gmm", weights=mixture.weights_, means=mixture.means_, covariances=mixture.covariances_)


EXPOST_DENSITIES: dict[str, Callable[..., ExpostDensity]] = {"gaussian": _fit_gaussian, "gmm": _fit_gmm}


def fit_expost(
    codes: np.ndarray, *, kind: str, components: int = DEFAULT_COMPONENTS, seed: int
) -> ExpostDensity:
    """Fit the `kind` density to codes (N, D); `components` and `seed` matter to "gmm" only."""
    if kind not in EXPOST_DENSITIES:
        raise ValueError(f"unknown ex-post density {kind!r}; known: {sorted(EXPOST_DENSITIES)}")
    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) < 2 or codes.shape[1] == 0:
        raise ValueError(f"need codes of shape (N >= 2, D >= 1), got {codes.shape}")
    if not np.isfinite(codes).all():
        raise ValueError("codes contain NaN or infinity")
    if isinstance(components, bool) or not isinstance(components, (int, np.integer)) or components < 1:
        raise ValueError(f"components must be an integer >= 1, got {components!r}")
    return EXPOST_DENSITIES[kind](codes, components=components, seed=seed)
