"""Sample quality: what the per-dataset classifier makes of images decoded from the prior.

N codes z ~ N(0, I) (a fixed seed, the same for every model, the AE included:
whether an AE's decoder draws digits from the prior is part of the question)
are decoded to images in [0, 1] (Bernoulli means, not binary draws) and
classified. Reported:

- the histogram of predicted classes and its normalised entropy
  H(p) / log(10): 1 when every class is drawn equally often, 0 when one is;
- the mean top-class probability: how confidently the samples look like some class;
- the Fréchet distance between the classifier's penultimate features of the
  samples and of the real test images (FID's recipe with a domain classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aebench.evaluation.classifier import CLASSES, SampleClassifier, classify
from aebench.evaluation.frechet import feature_frechet_distance
from aebench.evaluation.reconstruction import decoded_images


@torch.inference_mode()
def prior_samples(
    model,
    count: int,
    *,
    likelihood: str,
    generator: torch.Generator,
    batch_size: int = 1000,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Images (count, 1, 28, 28) in [0, 1] decoded from z ~ N(0, I); `generator` lives on `device`."""
    images = []
    for start in range(0, count, batch_size):
        z = torch.randn((min(batch_size, count - start), model.latent_dim), generator=generator, device=device)
        images.append(decoded_images(model.decode(z), likelihood).float().cpu())
    return torch.cat(images)


def class_statistics(probabilities: torch.Tensor) -> tuple[list[int], float, float]:
    """(histogram of argmax classes, normalised entropy of that histogram, mean top probability).

    probabilities (N, C) -> a list of C counts, a value in [0, 1], a value in [1/C, 1].
    """
    classes = probabilities.shape[-1]
    counts = torch.bincount(probabilities.argmax(-1), minlength=classes)
    frequencies = counts.double() / counts.sum()
    nonzero = frequencies[frequencies > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(classes))
    confidence = float(probabilities.max(-1).values.double().mean())
    return [int(c) for c in counts], entropy, confidence


@dataclass(frozen=True)
class SampleQuality:
    count: int
    class_histogram: list[int]
    class_entropy: float
    mean_confidence: float
    frechet_distance: float


def sample_quality(
    classifier: SampleClassifier,
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    device: torch.device | str = "cpu",
) -> SampleQuality:
    """Judge `samples` (N, 1, 28, 28) against real `reference` images (M, 1, 28, 28), both in [0, 1]."""
    probabilities, sample_features = classify(classifier, samples, device=device)
    if probabilities.shape[-1] != CLASSES:
        raise ValueError(f"expected {CLASSES} classes, the classifier gives {probabilities.shape[-1]}")
    _, reference_features = classify(classifier, reference, device=device)
    histogram, entropy, confidence = class_statistics(probabilities)
    distance = feature_frechet_distance(sample_features.double().numpy(), reference_features.double().numpy())
    return SampleQuality(
        count=len(samples),
        class_histogram=histogram,
        class_entropy=entropy,
        mean_confidence=confidence,
        frechet_distance=distance,
    )

