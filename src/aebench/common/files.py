"""Atomic outputs: a stage either writes a complete file or leaves nothing.

Everything is written to a temporary name and renamed into place at the end
(rename is atomic on POSIX), so neither DVC nor a later stage can mistake a
half-written file for a good one. Inside a DVC workspace the temporary files
live in `<workspace>/.cache/tmp`, away from every folder DVC hashes or `dvc
plots` reads, so even a kill -9 leaves no stray file among the outputs
(`remove_stale_temporaries` clears what a killed stage left there).

`check_writable` lets a stage find out, before any work, that an output
cannot be written, instead of failing after an hour of training.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from aebench.common.errors import AebenchError

TEMP_SUFFIX = ".tmp"


class OutputError(AebenchError):
    """An output location cannot be created or written."""


@lru_cache(maxsize=None)
def workspace_root(folder: Path) -> Path | None:
    """The DVC workspace holding `folder` (the nearest ancestor with a `.dvc` directory), or None."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".dvc").is_dir():
            return candidate
    return None


def workspace_of(params_file: str | Path) -> Path:
    """The workspace a params file belongs to: the DVC workspace holding it, else its folder.

    Relative locations in params (the MLflow store) are relative to it, whatever
    the current directory, and whichever params file (a profile's too) is used.
    """
    folder = Path(params_file).resolve().parent
    return workspace_root(folder) or folder


def temporary_folder(destination: Path) -> Path:
    """Where temporaries for `destination` go: the workspace's `.cache/tmp`, else beside it."""
    root = workspace_root(destination.parent.resolve())
    folder = root / ".cache" / "tmp" if root is not None else destination.parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextlib.contextmanager
def atomic_path(destination: str | Path) -> Iterator[Path]:
    """Yield a temporary path; rename it to `destination` on success.

    On any exception (Ctrl-C included) the temporary file or folder is removed
    and `destination` is left as it was. The temporary name carries the
    process id, so `remove_stale_temporaries` can tell a dead stage's leftovers.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=temporary_folder(destination), prefix=f".{destination.name}.{os.getpid()}.", suffix=TEMP_SUFFIX
    )
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


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically, keys in insertion order, NaN refused (not valid JSON)."""
    write_text(path, json.dumps(payload, indent=2, allow_nan=False) + "\n")


# np.savez stamps each member with the current time: two saves of the same arrays differ.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """An uncompressed .npz that `np.load` reads, written atomically, with bytes fixed by the arrays alone."""
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_TIME)
            with archive.open(member, "w", force_zip64=True) as handle:
                np.lib.format.write_array(handle, np.asanyarray(array), allow_pickle=False)


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


def check_writable(paths: Iterable[str | Path]) -> None:
    """Create the folders that will hold `paths` and prove a file can be written in each.

    Raises OutputError naming the first location that cannot be written: run
    before the work, it turns a late traceback into an early one-line error.
    """
    folders: dict[Path, None] = {}
    for path in paths:
        destination = Path(path)
        folders[destination.parent] = None
        folders[temporary_folder_or_parent(destination)] = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".aebench-write-probe.", suffix=TEMP_SUFFIX)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            reason = err.strerror or errno.errorcode.get(err.errno or 0, str(err))
            raise OutputError(f"{folder}: cannot write outputs here ({reason})") from None


def temporary_folder_or_parent(destination: Path) -> Path:
    """Like `temporary_folder`, without creating anything (a missing parent resolves as far as it exists)."""
    existing = destination.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    root = workspace_root(existing.resolve())
    return root / ".cache" / "tmp" if root is not None else destination.parent


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporaries in `folder` whose writing process is gone (a kill -9); return them."""
    removed = []
    for path in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        parts = path.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 4 and parts[-3].isdigit() else None
        if pid is None or _alive(pid):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
