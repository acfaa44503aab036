"""The official IDX files of each dataset, with the checksums that identify them.

Checksums are of the *uncompressed* files: mirrors re-gzip them (Debian's
package does), so only the raw bytes are the same everywhere. They live here,
in the code, so that no source (not even a user's folder) can vouch for itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aebench.common.errors import ConfigError

CLASSES = 10  # both datasets: ten digits, ten kinds of garment; labels are 0..9

IdxKind = Literal["images", "labels"]
OfficialSplit = Literal["train", "test"]


@dataclass(frozen=True, kw_only=True)
class IdxFile:
    name: str  # the official uncompressed file name, e.g. "train-images-idx3-ubyte"
    split: OfficialSplit
    kind: IdxKind
    size: int  # bytes of the uncompressed file
    md5: str
    sha256: str


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    name: str  # as in params.yaml: "mnist", "fashion_mnist"
    title: str  # for messages: "MNIST", "Fashion-MNIST"
    torchvision_class: str  # the torchvision.datasets class that downloads it
    files: tuple[IdxFile, ...]

    def file(self, split: OfficialSplit, kind: IdxKind) -> IdxFile:
        (match,) = [f for f in self.files if f.split == split and f.kind == kind]
        return match


def _four_files(checksums: dict[str, tuple[int, str, str]]) -> tuple[IdxFile, ...]:
    """{name: (bytes, md5, sha256)} -> IdxFile records; split and kind read off the name."""
    files = []
    for name, (size, md5, sha256) in checksums.items():
        split: OfficialSplit = "train" if name.startswith("train-") else "test"
        kind: IdxKind = "images" if "-images-" in name else "labels"
        files.append(IdxFile(name=name, split=split, kind=kind, size=size, md5=md5, sha256=sha256))
    return tuple(files)


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST",
        torchvision_class="MNIST",
        files=_four_files(
            {
                "train-images-idx3-ubyte": (
                    47040016,
                    "6bbc9ace898e44ae57da46a324031adb",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                "train-labels-idx1-ubyte": (
                    60008,
                    "a25bea736e30d166cdddb491f175f624",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                "t10k-images-idx3-ubyte": (
                    7840016,
                    "2646ac647ad5339dbf082846283269ea",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                "t10k-labels-idx1-ubyte": (
                    10008,
                    "27ae3e4e09519cfbb04c329615203637",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
            }
        ),
    ),
    "fashion_mnist": DatasetSpec(
        name="fashion_mnist",
        title="Fashion-MNIST",
        torchvision_class="FashionMNIST",
        files=_four_files(
            {
                "train-images-idx3-ubyte": (
                    47040016,
                    "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                "train-labels-idx1-ubyte": (
                    60008,
                    "9018921c3c673c538a1fc5bad174d6f9",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                "t10k-images-idx3-ubyte": (
                    7840016,
                    "8181f5470baa50b63fa0f6fddb340f0a",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                "t10k-labels-idx1-ubyte": (
                    10008,
                    "15d484375f8d13e6eb1aabb0c3f46965",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
            }
        ),
    ),
}


def dataset_spec(name: str) -> DatasetSpec:
    """The spec of a dataset by its params name; an unknown name is a ConfigError."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"dataset {name!r}: unknown (expected one of {', '.join(DATASETS)})") from None
