"""From four verified IDX files to the prepared splits and their info record.

The validation split is carved from the official training split with a fixed
seed; the official test split is kept whole and untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from aebench.common.errors import ConfigError, DataError
from aebench.common.files import atomic_path, write_json
from aebench.data.official import CLASSES
from aebench.data.prepared import SPLITS, PreparedData, save_prepared
from aebench.data.sources import ObtainedDataset


def official_split(obtained: ObtainedDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels int64 (N,)) of the official `train` or `test` split."""
    spec = obtained.spec
    images_file = obtained.files[spec.file(split, "images").name]
    labels_file = obtained.files[spec.file(split, "labels").name]
    images, labels = images_file.array, labels_file.array.astype(np.int64)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_file.path}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise DataError(f"{images_file.path}: {len(images)} images but {labels_file.path} has {len(labels)} labels")
    if labels.size and labels.max() >= CLASSES:
        raise DataError(f"{labels_file.path}: label {labels.max()} outside 0..{CLASSES - 1}")
    return images, labels


def carve_validation(
    images: np.ndarray, labels: np.ndarray, *, val_size: int, seed: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Split (images, labels) into (train, val): `val_size` items drawn with `seed`.

    Both parts keep the original order, so the same seed always gives the same
    files whatever NumPy does with the permutation's tail.
    """
    n = len(images)
    if val_size >= n:
        raise ConfigError(f"data.val_size: must be < the {n} official training images, got {val_size}")
    chosen = np.random.default_rng(seed).permutation(n)[:val_size]
    is_val = np.zeros(n, dtype=bool)
    is_val[chosen] = True
    return (images[~is_val], labels[~is_val]), (images[is_val], labels[is_val])


def prepare_splits(
    obtained: ObtainedDataset, *, val_size: int, seed: int, subset: int | None = None
) -> PreparedData:
    """The three splits; `subset` keeps only the first N images of each (quick smoke runs)."""
    train_x, train_y = official_split(obtained, "train")
    test_x, test_y = official_split(obtained, "test")
    (train_x, train_y), (val_x, val_y) = carve_validation(train_x, train_y, val_size=val_size, seed=seed)
    return PreparedData(
        images={"train": train_x[:subset], "val": val_x[:subset], "test": test_x[:subset]},
        labels={"train": train_y[:subset], "val": val_y[:subset], "test": test_y[:subset]},
    )


def data_info(
    obtained: ObtainedDataset, prepared: PreparedData, *, split_seed: int, subset: int | None = None
) -> dict[str, Any]:
    """The info JSON of CONTRIBUTING.md: checksums, split sizes, label counts, how the split was drawn.

    Where the files came from (a cache, a mirror, a package) is a fact of the
    machine, not of the data: it goes to the run-info record, so this file has
    the same bytes wherever the verified files came from.
    """
    return {
        "dataset": obtained.spec.name,
        "files": {
            name: {"bytes": len(verified.content), "md5": verified.md5, "sha256": verified.sha256}
            for name, verified in obtained.files.items()
        },
        "splits": {split: int(len(prepared.labels[split])) for split in SPLITS},
        "label_counts": {
            split: np.bincount(prepared.labels[split], minlength=CLASSES).tolist() for split in SPLITS
        },
        "split_seed": split_seed,
        "subset": subset,
    }


def write_prepared(out: str | Path, info_path: str | Path, prepared: PreparedData, info: dict[str, Any]) -> None:
    """Write the npz and its info JSON together: both land, or neither does."""
    with atomic_path(out) as npz_tmp, atomic_path(info_path) as json_tmp:
        save_prepared(npz_tmp, prepared)
        write_json(json_tmp, info)
