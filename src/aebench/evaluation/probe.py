"""Linear probe: how much label information the posterior means keep.

A multinomial logistic regression (scikit-learn, L-BFGS, default L2 strength)
on standardized train-split means, scored on the test-split means. Linear on
purpose: it asks whether the classes are laid out separably in the latent
space (the label-coloured clusters that ae-vs-vae-2d and vae-explained draw), not whether a flexible classifier can
undo any warping. Standardizing makes the AE's unbounded codes and the VAE's
unit-scale means equally easy for the solver.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

PROBE_METHOD = "logistic_regression"
# L-BFGS iterations: enough for 30-D means of 10 classes to converge (it stops earlier when they do).
MAX_ITERATIONS = 500


@dataclass(frozen=True)
class ProbeResult:
    method: str
    accuracy: float  # fraction of test images classified correctly
    train_images: int


def linear_probe(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
) -> ProbeResult:
    """Fit on the train features (N, D) with labels (N,); score on the test ones.

    All 55 000 train-split means are used: L-BFGS on 30-D features takes a few
    seconds, so no subsampling is needed.
    """
    # Imported here, as in expost and geometry: the evaluate stage's own process loads this module only to
    # check its inputs, and scikit-learn costs it 2 s of start-up; its workers import it once, at their first probe.
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITERATIONS))
    with warnings.catch_warnings():
        # A probe that stops at MAX_ITERATIONS still gives a usable accuracy.
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(np.asarray(train_features, dtype=np.float64), np.asarray(train_labels))
    predicted = probe.predict(np.asarray(test_features, dtype=np.float64))
    accuracy = float(np.mean(predicted == np.asarray(test_labels)))
    return ProbeResult(method=PROBE_METHOD, accuracy=accuracy, train_images=len(train_features))
