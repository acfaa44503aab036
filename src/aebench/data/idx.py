"""Reading and verifying IDX files, the format MNIST and Fashion-MNIST ship in.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number
of dimensions), one big-endian uint32 per dimension, then the data. Both
datasets use unsigned bytes (type 0x08): images are 3-D (N, 28, 28), labels
1-D (N,). Files may arrive gzipped or not; the gzip magic bytes decide.

Every failure is a DataError whose one-line message starts with the file path.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aebench.common.errors import DataError
from aebench.data.official import IdxFile, IdxKind

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
NDIM = {"images": 3, "labels": 1}  # the magic numbers 0x00000803 and 0x00000801


@dataclass(frozen=True, kw_only=True)
class VerifiedIdx:
    """One official file, checked against its checksums and parsed."""

    spec: IdxFile
    path: Path  # where it was read from (maybe a .gz)
    content: bytes  # the uncompressed bytes, for the cache
    array: np.ndarray  # uint8, images (N, 28, 28) or labels (N,)
    md5: str
    sha256: str


def read_uncompressed(path: Path) -> bytes:
    """The file's bytes, gunzipped first when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated gzip data ({err})") from None


def parse_idx(content: bytes, *, kind: IdxKind, name: str | Path) -> np.ndarray:
    """Parse uint8 IDX bytes into an array; `name` is the file named in errors.

    Checks the magic number, that the kind has the right number of dimensions,
    and that the length is exactly header + product(dims).
    """
    ndim = NDIM[kind]
    expected_magic = (UBYTE << 8) | ndim
    if len(content) < 4:
        raise DataError(f"{name}: truncated IDX file ({len(content)} bytes, not even a magic number)")
    magic = int.from_bytes(content[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{name}: wrong magic number 0x{magic:08x} for IDX {kind} (expected 0x{expected_magic:08x})")
    header = 4 + 4 * ndim
    if len(content) < header:
        raise DataError(f"{name}: truncated IDX header ({len(content)} bytes, needs {header})")
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected_length = header + int(np.prod(dims, dtype=np.int64))
    if len(content) != expected_length:
        problem = "truncated" if len(content) < expected_length else "trailing bytes in"
        raise DataError(
            f"{name}: {problem} IDX file: dims {dims} need {expected_length} bytes, file has {len(content)}"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header).reshape(dims)


def verify_checksum(content: bytes, spec: IdxFile, *, name: str | Path) -> tuple[str, str]:
    """Check size and sha256 of the uncompressed bytes; return (md5, sha256)."""
    if len(content) != spec.size:
        raise DataError(f"{name}: {len(content)} bytes uncompressed, the official {spec.name} has {spec.size}")
    sha256 = hashlib.sha256(content).hexdigest()
    if sha256 != spec.sha256:
        raise DataError(f"{name}: checksum mismatch for {spec.name} (sha256 {sha256}, expected {spec.sha256})")
    md5 = hashlib.md5(content).hexdigest()
    if md5 != spec.md5:  # cannot differ when sha256 matches, unless the table itself is wrong
        raise DataError(f"{name}: checksum mismatch for {spec.name} (md5 {md5}, expected {spec.md5})")
    return md5, sha256


def load_verified(path: Path, spec: IdxFile) -> VerifiedIdx:
    """Read `path` (.gz or not), parse it as `spec.kind`, verify it is `spec`.

    Structure is checked before the checksum so that a truncated or wrong-magic
    file gets the more telling message.
    """
    content = read_uncompressed(path)
    array = parse_idx(content, kind=spec.kind, name=path)
    md5, sha256 = verify_checksum(content, spec, name=path)
    return VerifiedIdx(spec=spec, path=path, content=content, array=array, md5=md5, sha256=sha256)
