"""How datasets, variants and classes are called in figures and reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aebench.common.layout import ModelKey

DATASET_LABELS = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
# The study's own variants read better in capitals; any other variant keeps its params name.
VARIANT_LABELS = {"ae": "AE", "vae": "VAE", "emae": "EM-AE"}
CLASS_NAMES = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
}


def dataset_label(dataset: str) -> str:
    return DATASET_LABELS.get(dataset, dataset)


def variant_label(variant: str) -> str:
    return VARIANT_LABELS.get(variant, variant)


def model_label(key: ModelKey, *, on_dataset: bool = False) -> str:
    """`VAE-30`, or `VAE-30 on MNIST`: how every table, figure and claim names a model."""
    label = f"{variant_label(key.variant)}-{key.latent_dim}"
    return f"{label} on {dataset_label(key.dataset)}" if on_dataset else label


def joined(items) -> str:
    """Items as prose: "0", "0 and 1", "AE, VAE and EM-AE"."""
    words = [str(item) for item in items]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def class_names(dataset: str) -> list[str]:
    return CLASS_NAMES.get(dataset, [str(c) for c in range(10)])
