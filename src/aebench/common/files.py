"""Atomic outputs: a stage either writes a complete file or leaves nothing.

Everything is written to a temporary name and renamed into place at the end
(rename is atomic on POSIX), so neither DVC nor a later stage can mistake a
half-written file for a good one. A rename cannot cross filesystems, so the
temporary lives on the destination's:

- inside a DVC workspace, in `<workspace>/.cache/tmp`, away from every folder
  DVC hashes or `dvc plots` reads, so even a kill -9 leaves no stray file
  among the outputs (`remove_stale_temporaries` clears what a killed stage
  left there);
- when the destination is on another filesystem than that (`models/` linked
  to a larger disk), in a hidden `.aebench-tmp` folder at the top of the
  workspace's part of that filesystem (`models/.aebench-tmp`), which
  `.dvcignore` hides from DVC's hashing and plots; stale temporaries there are
  cleared when a process first writes there.

A disk that fills up (or any error writing a temporary) is an OutputError
naming the file being written, not the temporary.

`check_writable` lets a stage find out, before any work, that an output
cannot be written, instead of failing after an hour of training.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
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
TEMP_FOLDER = ".aebench-tmp"  # temporaries on another filesystem than the workspace's; listed in .dvcignore
# Errors of a write that fills a disk or a quota; they name no file, so the destination is named instead.
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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
    """Where temporaries for `destination` go (created): on its filesystem, never among the outputs."""
    folder = temporary_folder_or_parent(destination)
    folder.mkdir(parents=True, exist_ok=True)
    if folder.name == TEMP_FOLDER and folder not in _CLEARED:
        _CLEARED.add(folder)
        remove_stale_temporaries(folder)
    return folder


_CLEARED: set[Path] = set()  # TEMP_FOLDERs this process cleared of a killed stage's leftovers


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
    _WRITING[tmp] = destination
    try:
        yield tmp
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(tmp, destination)
    except BaseException as err:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, OutputError):
            failed = _failed_output(err)
            if failed is not None:
                raise OutputError(f"{failed}: cannot write ({err.strerror or err})") from None
        raise
    finally:
        _WRITING.pop(tmp, None)


_WRITING: dict[Path, Path] = {}  # temporaries being written in this process -> their destinations


def _failed_output(err: OSError) -> str | None:
    """The output a write error is about: the destination of the temporary it names, or of the
    temporaries being written when it names none (a full disk); None for errors about other files."""
    named = [Path(name) for name in (err.filename, err.filename2) if name is not None]
    for path in named:
        for tmp, destination in _WRITING.items():
            if path == tmp or tmp in path.parents:
                return str(destination)
    if named or err.errno not in NO_SPACE:
        return None
    return " or ".join(str(destination) for destination in reversed(_WRITING.values())) or None


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks: the key that joins a checkpoint, its training run and its
    evaluation, and the fingerprint of the data a training resumes on."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    """Where temporaries for `destination` go, without creating anything.

    Outside a workspace: beside it. Inside: the workspace's `.cache/tmp` when
    that is on the destination's filesystem, else `TEMP_FOLDER` in the
    highest folder of the destination's path, below the workspace, on the
    destination's filesystem (a missing parent counts as far as it exists).
    """
    existing = _nearest_existing(Path(os.path.abspath(destination.parent)))  # links kept: `models/` may be one
    root = workspace_root(existing)
    if root is None:
        return destination.parent
    cache = root / ".cache" / "tmp"
    device = existing.stat().st_dev
    if _nearest_existing(cache).stat().st_dev == device:
        return cache
    top = existing
    for folder in existing.parents:
        if folder == root or folder.stat().st_dev != device:
            break
        top = folder
    return top / TEMP_FOLDER


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


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
