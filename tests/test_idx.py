"""IDX parsing and verification on small synthetic files."""

from __future__ import annotations

import gzip
import hashlib
import numpy as np
import pytest

from aebench.common.errors import DataError
from aebench.data.idx import load_verified, parse_idx, read_uncompressed
from aebench.data.official import DATASETS, IdxFile


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: magic 0x000008<ndim>, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def spec_for(content: bytes, *, kind: str, name: str = "train-images-idx3-ubyte") -> IdxFile:
    """The checksum record a file with exactly `content` would have."""
    return IdxFile(
        name=name,
        split="train",
        kind=kind,
        size=len(content),
        md5=hashlib.md5(content).hexdigest(),
        sha256=hashlib.sha256(content).hexdigest(),
    )


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 28, 28), dtype=np.uint8)


def test_raw_file_is_parsed_and_verified(tmp_path, images):
    content = idx_bytes(images)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(content)
    verified = load_verified(path, spec_for(content, kind="images"))
    np.testing.assert_array_equal(verified.array, images)
    assert verified.content == content
    assert verified.sha256 == hashlib.sha256(content).hexdigest()
    assert verified.md5 == hashlib.md5(content).hexdigest()


def test_gzip_file_is_detected_by_magic_and_verified_on_uncompressed_bytes(tmp_path, images):
    content = idx_bytes(images)
    path = tmp_path / "no-telling-suffix"  # the magic bytes decide, not the name
    path.write_bytes(gzip.compress(content))
    verified = load_verified(path, spec_for(content, kind="images"))
    np.testing.assert_array_equal(verified.array, images)
    assert verified.content == content


def test_labels_parse_to_one_dimension():
    labels = np.arange(10, dtype=np.uint8)
    parsed = parse_idx(idx_bytes(labels), kind="labels", name="labels-file")
    np.testing.assert_array_equal(parsed, labels)
    assert parsed.shape == (10,)


def test_truncated_raw_file_is_refused_with_its_name(tmp_path, images):
    content = idx_bytes(images)
    path = tmp_path / "cut-images-idx3-ubyte"
    path.write_bytes(content[:-100])
    with pytest.raises(DataError, match=r"cut-images-idx3-ubyte: truncated IDX file"):
        load_verified(path, spec_for(content, kind="images"))


def test_truncated_header_is_refused_with_its_name():
    with pytest.raises(DataError, match=r"^short-file: truncated"):
        parse_idx(bytes([0, 0, 8, 3, 0, 0]), kind="images", name="short-file")


def test_truncated_gzip_is_refused_with_its_name(tmp_path, images):
    content = idx_bytes(images)
    packed = gzip.compress(content)
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_uncompressed(path)


def test_trailing_bytes_are_refused(tmp_path, images):
    path = tmp_path / "long-file"
    path.write_bytes(idx_bytes(images) + b"\0")
    with pytest.raises(DataError, match=r"long-file: trailing bytes"):
        load_verified(path, spec_for(path.read_bytes(), kind="images"))


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (bytes([0, 0, 8, 1]), "images"),  # a labels file where images are expected
        (bytes([0, 0, 8, 3]), "labels"),  # and the other way round
        (bytes([0, 0, 0x0D, 3]), "images"),  # float data, not unsigned bytes
        (b"PK\x03\x04", "images"),  # not IDX at all (a zip)
    ],
)
def test_wrong_magic_is_refused_with_its_name(tmp_path, images, header, kind):
    content = header + idx_bytes(images)[4:]
    path = tmp_path / "odd-file"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"odd-file: wrong magic number"):
        load_verified(path, spec_for(content, kind=kind))


def test_checksum_mismatch_is_refused_with_its_name(tmp_path, images):
    content = idx_bytes(images)
    tampered = bytearray(content)
    tampered[-1] ^= 0xFF  # same length, a valid IDX file, one pixel changed
    path = tmp_path / "tampered-images"
    path.write_bytes(bytes(tampered))
    with pytest.raises(DataError, match=r"tampered-images: checksum mismatch for train-images-idx3-ubyte"):
        load_verified(path, spec_for(content, kind="images"))


def test_gzip_with_wrong_content_is_refused_with_its_name(tmp_path, images):
    expected = idx_bytes(images)
    other = idx_bytes(images[::-1].copy())
    path = tmp_path / "other.gz"
    path.write_bytes(gzip.compress(other))
    with pytest.raises(DataError, match=r"other\.gz: checksum mismatch"):
        load_verified(path, spec_for(expected, kind="images"))


def test_wrong_size_is_refused_with_its_name(tmp_path, images):
    path = tmp_path / "small-images"
    path.write_bytes(idx_bytes(images[:2]))
    with pytest.raises(DataError, match=r"small-images: .* bytes uncompressed, the official .* has"):
        load_verified(path, spec_for(idx_bytes(images), kind="images"))


def test_missing_file_is_refused_with_its_name(tmp_path, images):
    path = tmp_path / "absent"
    with pytest.raises(DataError, match=r"absent: cannot read"):
        load_verified(path, spec_for(idx_bytes(images), kind="images"))


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_official_sizes_match_the_idx_layout(dataset):
    # 60 000 / 10 000 items: images 16 + N*28*28 bytes, labels 8 + N bytes.
    items = {"train": 60_000, "test": 10_000}
    for f in DATASETS[dataset].files:
        n = items[f.split]
        assert f.size == (16 + n * 784 if f.kind == "images" else 8 + n), f.name
        assert len(f.md5) == 32 and len(f.sha256) == 64, f.name
    assert {(f.split, f.kind) for f in DATASETS[dataset].files} == {
        ("train", "images"),
        ("train", "labels"),
        ("test", "images"),
        ("test", "labels"),
    }

