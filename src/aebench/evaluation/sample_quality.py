"""Sample quality: what the per-dataset classifier makes of decoded samples.

Images decoded from some distribution of codes (the prior N(0, I), or an
ex-post density fitted on the training means) are classified and embedded in
the classifier's penultimate features. Reported (keys of METRIC_DOCS under
`samples.<source>`):

- diversity of classes: the histogram of predicted classes, its normalised
  entropy and the share of the most frequent class;
- confidence: the mean top-class probability;
- fidelity and coverage: improved precision and recall (Kynkäänniemi et al.
  2019) against real test images, and the Fréchet distance, which mixes both.

Which of these rank controlled degradations of real images in the right order
is checked by the classifier stage (`validate_sample_metrics`); the report
quotes only those that do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from aebench.common.errors import ConfigError

from aebench.evaluation.classifier import CLASSES, SampleClassifier, classify
from aebench.evaluation.frechet import feature_frechet_distance
from aebench.evaluation.geometry import normalised_class_entropy, top_class_share
from aebench.evaluation.precision_recall import knn_squared_radii, precision_recall


@torch.inference_mode()
def prior_codes(count: int, latent_dim: int, *, generator: torch.Generator) -> torch.Tensor:
    """count codes z ~ N(0, I): (count, latent_dim) on the generator's device."""
    return torch.randn((count, latent_dim), generator=generator, device=generator.device)


@dataclass(frozen=True)
class Reference:
    """The real test images as the classifier sees them, computed once per dataset."""

    features: np.ndarray  # (M, F) float64
    mean_confidence: float
    _radii: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def squared_radii(self, *, k: int, images: int) -> np.ndarray:
        """The k-NN balls of the first `images` real features (squared radii), computed once: every
        sample source of a model, and every model of a job, is judged against the same balls."""
        if (k, images) not in self._radii:
            self._radii[(k, images)] = knn_squared_radii(self.features[:images], k=k)
        return self._radii[(k, images)]


def reference(classifier: SampleClassifier, images: torch.Tensor, *, device: torch.device | str = "cpu") -> Reference:
    probabilities, features = classify(classifier, images, device=device)
    return Reference(features=features.double().numpy(), mean_confidence=float(probabilities.max(-1).values.mean()))


def judge_samples(
    classifier: SampleClassifier,
    samples: torch.Tensor,
    real: Reference,
    *,
    precision_recall_k: int,
    precision_recall_images: int,
    device: torch.device | str = "cpu",
) -> dict[str, object]:
    """Every sample metric of `samples` (N, 1, 28, 28) in [0, 1]: the `samples.<source>` section."""
    probabilities, features = classify(classifier, samples, device=device)
    if probabilities.shape[-1] != CLASSES:
        raise ValueError(f"expected {CLASSES} classes, the classifier gives {probabilities.shape[-1]}")
    histogram = torch.bincount(probabilities.argmax(-1), minlength=CLASSES).tolist()
    features = features.double().numpy()
    fidelity = precision_recall(
        real.features[:precision_recall_images], features[:precision_recall_images], k=precision_recall_k,
        real_sq_radii=real.squared_radii(k=precision_recall_k, images=precision_recall_images),
    )
    return {
        "count": len(samples),
        "class_histogram": histogram,
        "class_entropy": normalised_class_entropy(histogram),
        "top_class_share": top_class_share(histogram),
        "mean_confidence": float(probabilities.max(-1).values.double().mean()),
        "frechet_distance": feature_frechet_distance(features, real.features),
        "precision": fidelity.precision,
        "recall": fidelity.recall,
    }


# The sample metrics that claim to measure quality, each with its direction (higher is better);
# `validate_sample_metrics` checks them against controlled degradations of real images.
QUALITY_METRICS: dict[str, bool] = {
    "frechet_distance": False,
    "precision": True,
    "recall": True,
    "mean_confidence": True,
}


def check_precision_recall_k(k: int, **compared: int) -> None:
    """k-NN balls need more than k images on each side: ConfigError before any work otherwise.

    `compared` names what bounds the images compared, e.g. (precision_recall_images=5000,
    test_images=10000); the fewest of them are compared.
    """
    images = min(compared.values())
    if k >= images:
        bounds = ", ".join(f"{name} {count}" for name, count in compared.items())
        raise ConfigError(f"evaluate.precision_recall_k: must be < {images}, the images compared (the fewest of "
                          f"{bounds}), got {k}")


def validate_sample_metrics(
    classifier: SampleClassifier,
    held_out: torch.Tensor,
    real: Reference,
    *,
    precision_recall_k: int,
    precision_recall_images: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, object]]:
    """Score real held-out images and controlled degradations of them, whose order is known.

    Real images must score better than the same images blurred, which must
    score better than them with 20% salt-and-pepper noise, which must score
    better than them with their pixels shuffled. Returns, per quality metric,
    its value on each set (best expected first) and whether it ranks them in
    that order (`passes`); the report quotes only the metrics that pass.
    """
    from aebench.evaluation.degradations import DEGRADATIONS

    judged = {
        name: judge_samples(
            classifier, degrade(held_out, generator=generator), real, precision_recall_k=precision_recall_k,
            precision_recall_images=precision_recall_images, device=device,
        )
        for name, degrade in DEGRADATIONS.items()
    }
    validation = {}
    for metric, higher_is_better in QUALITY_METRICS.items():
        values = [float(judged[name][metric]) for name in DEGRADATIONS]
        ordered = values if higher_is_better else [-v for v in values]
        passes = all(better > worse for better, worse in zip(ordered, ordered[1:]))
        validation[metric] = {"values": dict(zip(DEGRADATIONS, values)), "passes": passes}
    return validation
