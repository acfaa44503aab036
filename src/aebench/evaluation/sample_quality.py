"""Sample quality: what the per-dataset classifier makes of decoded samples.

Images decoded from some distribution of codes (the prior N(0, I), or an
ex-post density fitted on the training means) are classified and embedded in
the classifier's penultimate features. Reported (keys of METRIC_DOCS under
`samples.<source>`):

- diversity of classes: the histogram of predicted classes, its normalised
  entropy and the share of the most frequent class;
- confidence: the mean top-class probability, and the share of samples the
  judge labels with a top-class probability of at least CONFIDENT (0.9): one
  judge's opinion of samples it never saw the like of;
- recognisability, by two judges (`agreed_share`, in the judge's section when
  it is given a `partner`): the share of samples that both judges, of
  different architectures, name as the same class with probability at least
  CONFIDENT. Each network is confident on some inputs unlike its training
  data (the CNN on shuffled garments, the MLP on saturated silhouettes), and
  two different networks seldom share such a quirk, while on real images they
  agree (MNIST ~0.9 of the test images, Fashion-MNIST ~0.65);
- fidelity and coverage: improved precision and recall (Kynkäänniemi et al.
  2019) and density and coverage (Naeem et al. 2020) against real test
  images, and the Fréchet distance, which mixes both.

The evaluation judges every source twice, by the judge (`samples`) and by the
second judge (`samples_mlp_judge`): the same function, another classifier.

Which of these rank the validation ladder (`degradations.DEGRADATIONS`) in
the required order (`degradations.LADDER_ORDER`) is checked by the
classifier stage (`validate_sample_metrics`); the report decides which samples
are better only with those that do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from aebench.common.errors import ConfigError

from aebench.data.official import CLASSES
from aebench.evaluation.classifier import SampleClassifier, classify
from aebench.evaluation.degradations import DEGRADATIONS, misorderings
from aebench.evaluation.density_coverage import density_coverage
from aebench.evaluation.frechet import feature_frechet_distance
from aebench.evaluation.geometry import normalised_class_entropy, top_class_share
from aebench.evaluation.precision_recall import knn_squared_radii, precision_recall


# Recognisable: the judge names one class with at least this probability. A person calls an image a digit
# when it is plainly one digit; the mean confidence averages such images with ambiguous ones, while this
# share counts how many samples are plainly something (the judge's real test images: ~0.97 on MNIST).
CONFIDENT = 0.9


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
    density_coverage_k: int,
    partner: SampleClassifier | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, object]:
    """Every sample metric of `samples` (N, 1, 28, 28) in [0, 1]: the `samples.<source>` section.

    Precision, recall, density and coverage compare the first `precision_recall_images`
    samples with as many real test images. With a `partner` judge, also `agreed_share`."""
    probabilities, features = classify(classifier, samples, device=device)
    if probabilities.shape[-1] != CLASSES:
        raise ValueError(f"expected {CLASSES} classes, the classifier gives {probabilities.shape[-1]}")
    histogram = torch.bincount(probabilities.argmax(-1), minlength=CLASSES).tolist()
    features = features.double().numpy()
    confidence = probabilities.max(-1).values.double()
    compared_real, compared = real.features[:precision_recall_images], features[:precision_recall_images]
    fidelity = precision_recall(
        compared_real, compared, k=precision_recall_k,
        real_sq_radii=real.squared_radii(k=precision_recall_k, images=precision_recall_images),
    )
    naeem = density_coverage(
        compared_real, compared, k=density_coverage_k,
        real_sq_radii=real.squared_radii(k=density_coverage_k, images=precision_recall_images),
    )
    agreement = {} if partner is None else {
        "agreed_share": agreed_share(probabilities, classify(partner, samples, device=device)[0])}
    return {
        "count": len(samples),
        "class_histogram": histogram,
        "class_entropy": normalised_class_entropy(histogram),
        "top_class_share": top_class_share(histogram),
        "mean_confidence": float(confidence.mean()),
        "confident_share": float((confidence >= CONFIDENT).double().mean()),
        "frechet_distance": feature_frechet_distance(features, real.features),
        "precision": fidelity.precision,
        "recall": fidelity.recall,
        "density": naeem.density,
        "coverage": naeem.coverage,
        **agreement,
    }


def agreed_share(first: torch.Tensor, second: torch.Tensor) -> float:
    """The share of images that two judges' probabilities (N, classes) each give the same top class, each with
    probability at least CONFIDENT."""
    first_confidence, first_class = first.max(-1)
    second_confidence, second_class = second.max(-1)
    agreed = (first_class == second_class) & (first_confidence >= CONFIDENT) & (second_confidence >= CONFIDENT)
    return float(agreed.double().mean())


# The sample metrics that claim to measure quality, each with its direction (higher is better).
# `validate_sample_metrics` checks each against the ladder's order (degradations.LADDER_ORDER), for the
# same reason whatever it measures: fidelity ("a person would call it a digit or a garment": precision,
# density, confidence, recognisability), coverage (the real images reproduced by some sample: a blurred
# copy reproduces its image, a patchwork none: recall, coverage), or both (the Fréchet distance).
QUALITY_METRICS: dict[str, bool] = {
    "frechet_distance": False,
    "precision": True,
    "recall": True,
    "density": True,
    "coverage": True,
    "mean_confidence": True,
    "confident_share": True,
    "agreed_share": True,  # only where a partner judge is given
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
    density_coverage_k: int,
    generator: torch.Generator,
    partner: SampleClassifier | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, object]]:
    """Score real held-out images and each rung of the validation ladder made from them.

    Returns, per quality metric, its value on each rung (`values`), the pairs of
    the required order it ranks the wrong way or ties (`misordered`, as
    [better, worse]) and whether there are none (`passes`); the report decides
    which samples are better only with the metrics that pass.
    """
    judged = {
        name: judge_samples(
            classifier, degrade(held_out, generator=generator), real, precision_recall_k=precision_recall_k,
            precision_recall_images=precision_recall_images, density_coverage_k=density_coverage_k, partner=partner,
            device=device,
        )
        for name, degrade in DEGRADATIONS.items()
    }
    validation = {}
    for metric, higher_is_better in QUALITY_METRICS.items():
        if metric not in judged["real"]:
            continue  # agreed_share without a partner
        values = {name: float(judged[name][metric]) for name in DEGRADATIONS}
        wrong = misorderings(values, higher_is_better=higher_is_better)
        validation[metric] = {"values": values, "higher_is_better": higher_is_better,
                              "misordered": [list(pair) for pair in wrong], "passes": not wrong}
    return validation
