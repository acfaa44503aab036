"""The prepared-data file that `prepare` writes and every later stage reads.

One `.npz` per dataset: uint8 images (N, 28, 28) and int64 labels (N,) for the
train, val and test splits. Images become float tensors (N, 1, 28, 28) in
[0, 1] only when a stage asks for them, so the file stays small (~55 MB).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aebench.common.errors import DataError
from aebench.common.files import read_npz, write_npz

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class PreparedData:
    images: dict[str, np.ndarray]  # split -> uint8 (N, 28, 28)
    labels: dict[str, np.ndarray]  # split -> int64 (N,)

    def split(self, name: str, *, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,)) of one split."""
        import torch  # here: the prepare stage writes these files without torch (~3 s less start-up)

        images = self.images[name][:limit]
        labels = self.labels[name][:limit]
        x = torch.from_numpy(images).unsqueeze(1).float().div_(255.0)
        return x, torch.from_numpy(labels.astype(np.int64))


def save_prepared(path: str | Path, data: PreparedData) -> None:
    arrays = {}
    for split in SPLITS:
        arrays[f"{split}_x"] = np.ascontiguousarray(data.images[split], dtype=np.uint8)
        arrays[f"{split}_y"] = np.ascontiguousarray(data.labels[split], dtype=np.int64)
    write_npz(path, **arrays)


def load_prepared(path: str | Path) -> PreparedData:
    """Read a prepared file; a missing, truncated or malformed one is a DataError."""
    path = Path(path)
    arrays = read_npz(
        path, error=DataError, missing="prepared data not found (run `dvc repro prepare`)",
        unreadable="unreadable prepared data",
    )
    images, labels = {}, {}
    for split in SPLITS:
        x, y = arrays.get(f"{split}_x"), arrays.get(f"{split}_y")
        if x is None or y is None:
            raise DataError(f"{path}: missing the {split} split")
        if x.dtype != np.uint8 or x.shape[1:] != IMAGE_SHAPE or len(x) != len(y):
            raise DataError(f"{path}: {split} split has images {x.dtype}{x.shape} and labels {y.shape}")
        images[split], labels[split] = x, y
    return PreparedData(images=images, labels=labels)
