"""Obtaining, verifying, splitting and loading MNIST and Fashion-MNIST."""

from aebench.data.prepared import SPLITS, PreparedData, load_prepared, save_prepared

__all__ = ["SPLITS", "PreparedData", "load_prepared", "save_prepared"]
