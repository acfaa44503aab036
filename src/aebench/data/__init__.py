"""Obtaining, verifying, splitting and loading MNIST and Fashion-MNIST."""

from aebench.data.binarize import BINARIZATIONS, binarize, fixed_targets
from aebench.data.prepared import SPLITS, PreparedData, load_prepared, save_prepared

__all__ = [
    "BINARIZATIONS",
    "SPLITS",
    "PreparedData",
    "binarize",
    "fixed_targets",
    "load_prepared",
    "save_prepared",
]
