"""`make verify`: re-run the committed pipeline in a scratch workspace and compare every output.

A study is reproducible when a rerun gives the same bytes. This clones the
workspace's committed state (params, code, dvc.lock) into a scratch folder,
runs `dvc repro` there from nothing (its own empty DVC cache, so nothing is
restored from a cache, and its own MLflow store), and compares the hash of
every output with the one the committed dvc.lock records. It prints each
output that differs and, for a metrics file, the largest absolute
difference per key (read from this workspace's DVC cache, which holds the
committed outputs after `make study` or `dvc pull`). Exit code 0 when every
output is identical.

Before the rerun it also hashes what this workspace holds against the lock
(`tampered`): every output present in the workspace (a folder file by file,
against its listing in the cache) and every cache object the lock refers to
(an object's name is its md5). A changed output or a damaged cache object,
which `dvc checkout` would restore or hand on silently, is named and fails
the check too.

Float kernels differ between CPU models (AVX2 and AVX-512 sum in different
orders), so identical bytes are expected on the same machine type and
library versions; across machine types, the per-key differences say how far
apart the numbers are.

    python -m aebench.verify [--workspace .] [--scratch DIR] [--keep] [--targets dvc.yaml ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML



@dataclass(frozen=True)
class Output:
    stage: str
    path: str
    md5: str  # ends in ".dir" for a folder


def lock_outputs(lock_file: Path) -> dict[str, Output]:
    """path -> Output for every out, metric and plot of a dvc.lock."""
    lock = YAML(typ="safe", pure=True).load(lock_file.read_text()) or {}
    outputs = {}
    for stage, entry in (lock.get("stages") or {}).items():
        for out in entry.get("outs", []):
            outputs[out["path"]] = Output(stage=stage, path=out["path"], md5=out["md5"])
    return outputs


def cache_file(cache: Path, md5: str) -> Path:
    """Where DVC 3 keeps content with this hash."""
    return cache / "files" / "md5" / md5[:2] / md5[2:]


def cached_files(cache: Path, output: Output) -> dict[str, Path] | None:
    """relative path -> cached file of an output (a folder lists its files); None when not in the cache."""
    entry = cache_file(cache, output.md5)
    if not entry.is_file():
        return None
    if not output.md5.endswith(".dir"):
        return {"": entry}
    listing = json.loads(entry.read_text())
    files = {item["relpath"]: cache_file(cache, item["md5"]) for item in listing}
    return files if all(path.is_file() for path in files.values()) else None


def md5_of(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 - DVC's content hash, not a security measure
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_hash(files: dict[str, Path]) -> str:
    """DVC 3's hash of a folder output: the md5 of its listing, [{"md5", "relpath"}] sorted by relpath as sorted-key
    JSON, with ".dir" appended. For an output kept out of the cache (`cache: false`), whose listing DVC does not
    store, it is the only way to check the folder against the lock."""
    listing = [{"md5": md5_of(files[relpath]), "relpath": relpath} for relpath in sorted(files)]
    return hashlib.md5(json.dumps(listing, sort_keys=True).encode()).hexdigest() + ".dir"  # noqa: S324 - DVC's hash


def tampered(workspace: Path, lock_name: str) -> list[str]:
    """Lines naming each workspace output and cache object whose md5 differs from what the lock records."""
    cache = workspace / ".dvc" / "cache"
    ignored = dvc_ignored(workspace)
    lines = []
    for path, output in lock_outputs(workspace / lock_name).items():
        where = workspace / path
        if not output.md5.endswith(".dir"):
            expected = {"": output.md5}
            present = {"": where} if where.is_file() else {}
        else:
            listing = cache_file(cache, output.md5)
            present = ({file.relative_to(where).as_posix(): file for file in where.rglob("*")
                        if file.is_file() and not ignored.match_file(file.relative_to(workspace).as_posix())}
                       if where.is_dir() else {})
            if not listing.is_file():  # an output committed to Git (`cache: false`), or one not pulled
                if present and (found := folder_hash(present)) != output.md5:
                    lines.append(f"{path} ({output.stage}): the workspace folder hashes to {found}, {lock_name} "
                                 f"records {output.md5} (its listing is not in the DVC cache to name the file)")
                continue
            expected = {item["relpath"]: item["md5"] for item in json.loads(listing.read_text())}
        for relpath, md5 in expected.items():
            name = f"{path}/{relpath}" if relpath else path
            if relpath in present and (found := md5_of(present[relpath])) != md5:
                lines.append(f"{name} ({output.stage}): the workspace file has md5 {found}, {lock_name} records {md5}")
            elif present and relpath not in present:
                lines.append(f"{name} ({output.stage}): missing from the workspace folder")
            stored = cache_file(cache, md5)
            if stored.is_file() and (found := md5_of(stored)) != md5:
                lines.append(f"{name} ({output.stage}): the DVC cache object {stored.relative_to(workspace)} "
                             f"has md5 {found}, not its name")
        lines += [f"{path}/{relpath} ({output.stage}): in the workspace folder, not in {lock_name}"
                  for relpath in sorted(set(present) - set(expected))]
    return lines


def dvc_ignored(workspace: Path):
    """What the workspace's .dvcignore hides from DVC's folder hashes, as a pathspec (DVC's own matcher)."""
    import pathspec

    patterns = workspace / ".dvcignore"
    lines = patterns.read_text().splitlines() if patterns.is_file() else []
    return pathspec.PathSpec.from_lines("gitwildmatch", lines)


def numeric_leaves(payload: Any, prefix: str = "") -> Iterator[tuple[str, float]]:
    """(dotted key, number) for every number of a JSON document; list items share their list's key."""
    if isinstance(payload, dict):
        for key, value in payload.items():
            yield from numeric_leaves(value, f"{prefix}{key}.")
    elif isinstance(payload, list):
        for value in payload:
            yield from numeric_leaves(value, prefix)
    elif isinstance(payload, (int, float)) and not isinstance(payload, bool):
        yield prefix.rstrip("."), float(payload)


def largest_differences(before: Any, after: Any) -> dict[str, float]:
    """Per dotted key, the largest absolute difference between two JSON documents of the same shape."""
    differences: dict[str, float] = {}
    for (key, a), (_, b) in zip(numeric_leaves(before), numeric_leaves(after)):
        differences[key] = max(differences.get(key, 0.0), abs(a - b))
    return {key: value for key, value in differences.items() if value > 0}


def run(command: list[str], cwd: Path, *, env: dict[str, str] | None = None) -> None:
    print(f"$ {' '.join(command)}", flush=True)
    subprocess.run(command, cwd=cwd, env=env, check=True)


def scratch_workspace(workspace: Path, scratch: Path, lock_name: str) -> None:
    """A clone of the committed state without its dvc.lock, sharing only the verified raw data files.

    Without the lock (and with an empty DVC cache) every stage of the targets
    runs, and the new lock records exactly the stages that ran.
    """
    run(["git", "clone", "--quiet", "--no-hardlinks", str(workspace), str(scratch)], workspace)
    (scratch / lock_name).unlink()
    raw = workspace / ".cache" / "raw"
    if raw.is_dir():
        (scratch / ".cache").mkdir(exist_ok=True)
        (scratch / ".cache" / "raw").symlink_to(raw.resolve())


def compare(workspace: Path, scratch: Path, lock_name: str, *, partial: bool) -> list[str]:
    """Lines describing every output whose hash differs; empty when all are identical.

    `partial`: the rerun reproduced some targets only, so the outputs it did not make are not compared.
    """
    committed, rerun = lock_outputs(workspace / lock_name), lock_outputs(scratch / lock_name)
    cache = workspace / ".dvc" / "cache"
    rerun_stages = {output.stage for output in rerun.values()}
    lines = []
    for path, output in committed.items():
        again = rerun.get(path)
        if again is None:
            if partial:
                continue
            if output.stage not in rerun_stages:  # DVC keeps a lock entry after its stage leaves dvc.yaml
                lines.append(f"{path}: its stage {output.stage} is in {lock_name} but not in the pipeline "
                             "(a stale entry: delete it from the lock)")
            else:
                lines.append(f"{path}: not produced by the rerun")
            continue
        if again.md5 == output.md5:
            continue
        lines.append(f"{path} ({output.stage}): {output.md5} committed, {again.md5} rerun")
        lines += [f"    {line}" for line in metric_differences(output, again, cache, scratch / ".dvc" / "cache")]
    return lines


def metric_differences(committed: Output, rerun: Output, cache: Path, scratch_cache: Path) -> list[str]:
    """For JSON outputs: which files differ and the largest absolute difference per key."""
    before, after = cached_files(cache, committed), cached_files(scratch_cache, rerun)
    if before is None:
        return ["committed content not in this workspace's DVC cache (`dvc pull` it to compare values)"]
    if after is None:
        return []
    lines = []
    for relpath in sorted(set(before) | set(after)):
        if not relpath.endswith(".json") and relpath != "":
            continue
        if relpath not in before or relpath not in after:
            lines.append(f"{relpath or committed.path}: only in {'the rerun' if relpath in after else 'the commit'}")
            continue
        try:
            a, b = json.loads(before[relpath].read_text()), json.loads(after[relpath].read_text())
        except (ValueError, UnicodeDecodeError):
            continue
        for key, value in sorted(largest_differences(a, b).items(), key=lambda item: -item[1]):
            lines.append(f"{relpath or committed.path}: {key} differs by up to {value:.3g}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--scratch", type=Path, help="where to rerun (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch workspace afterwards")
    parser.add_argument("--lock", default="dvc.lock", help="which dvc.lock to verify (relative to the workspace)")
    parser.add_argument("targets", nargs="*", help="what `dvc repro` runs (default: the study's dvc.yaml)")
    args = parser.parse_args(argv)
    workspace = args.workspace.resolve()
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="aebench-verify-"))).resolve()
    if scratch.exists() and any(scratch.iterdir()):
        print(f"error: {scratch}: scratch folder is not empty", file=sys.stderr)
        return 2
    if scratch.exists():
        scratch.rmdir()  # git clone creates it
    if not (workspace / args.lock).is_file():
        print(f"error: {workspace / args.lock}: no committed dvc.lock to verify against", file=sys.stderr)
        return 2
    damaged = tampered(workspace, args.lock)
    if damaged:
        print(f"verify: {len(damaged)} workspace outputs or cache objects differ from {args.lock}:")
        print("\n".join(damaged), flush=True)
    try:
        scratch_workspace(workspace, scratch, args.lock)
        env = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
        dvc = str(Path(sys.executable).parent / "dvc")
        run([dvc, "repro", *args.targets], scratch, env=env)
        compared = lock_outputs(scratch / args.lock)
        differences = compare(workspace, scratch, args.lock, partial=bool(args.targets))
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    outputs = len(compared)
    if differences:
        print(f"verify: {len([d for d in differences if not d.startswith(' ')])} of {outputs} outputs differ "
              f"from {args.lock}:")
        print("\n".join(differences))
        return 1
    print(f"verify: all {outputs} outputs of {args.lock} reproduced byte for byte")
    if damaged:
        print(f"verify: but this workspace or its DVC cache holds other bytes than {args.lock} (listed above)")
        return 1
    print("verify: the workspace's outputs and its DVC cache match it too")
    return 0


if __name__ == "__main__":
    sys.exit(main())
