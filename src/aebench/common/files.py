"""Atomic outputs: a stage either writes a complete file or leaves nothing.

Everything is written to a temporary name in the destination folder and renamed
at the end (rename is atomic on POSIX), so neither DVC nor a later stage can
mistake a half-written file for a good one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `destination`; rename it there on success.

    On any exception (Ctrl-C included) the temporary file or folder is removed
    and `destination` is left as it was.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()  # callers create a file or a folder of their own under this name
    try:
        yield tmp
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, keys in insertion order, NaN refused (not valid JSON)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def read_npz(path: str | Path, *, error: type[Exception], missing: str, unreadable: str) -> dict[str, np.ndarray]:
    """Every array of an .npz file, loaded; a missing or corrupt file raises `error` naming it.

    `missing` and `unreadable` complete the one-line messages
    ("<path>: <missing>", "<path>: <unreadable> (<reason>)").
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {missing}")
    try:
        with np.load(path) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise error(f"{path}: {unreadable} ({err})") from None
