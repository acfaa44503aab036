"""Obtaining, verifying, splitting and loading MNIST and Fashion-MNIST."""

from aebench.data.binarize import BINARIZATIONS, binarize, fixed_targets
from aebench.data.idx import load_verified, parse_idx
from aebench.data.official import DATASETS, dataset_spec
from aebench.data.prepared import SPLITS, PreparedData, load_prepared, save_prepared
from aebench.data.sources import SOURCES, obtain_dataset, source_request
from aebench.data.splits import carve_validation, data_info, prepare_splits, write_prepared

__all__ = [
    "BINARIZATIONS",
    "DATASETS",
    "SOURCES",
    "SPLITS",
    "PreparedData",
    "binarize",
    "carve_validation",
    "data_info",
    "dataset_spec",
    "fixed_targets",
    "load_prepared",
    "load_verified",
    "obtain_dataset",
    "parse_idx",
    "prepare_splits",
    "save_prepared",
    "source_request",
    "write_prepared",
]
