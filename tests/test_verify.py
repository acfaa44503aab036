"""`make verify`'s comparison of a committed dvc.lock with a rerun's, on small hand-written locks."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aebench.verify import compare, tampered


def write_lock(folder: Path, stages: dict[str, dict[str, str]]) -> None:
    """A dvc.lock whose stages each list {path: md5} outs."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = {"schema": "2.0", "stages": {
        name: {"cmd": "python x.py", "outs": [{"path": path, "md5": md5} for path, md5 in outs.items()]}
        for name, outs in stages.items()}}
    (folder / "dvc.lock").write_text(yaml.safe_dump(lock))


def test_identical_hashes_give_no_difference(tmp_path):
    stages = {"train@a": {"models/a": "11.dir"}, "report": {"reports/report.md": "22"}}
    write_lock(tmp_path / "workspace", stages)
    write_lock(tmp_path / "scratch", stages)
    assert compare(tmp_path / "workspace", tmp_path / "scratch", "dvc.lock", partial=False) == []


def test_a_changed_hash_names_the_output_its_stage_and_both_hashes(tmp_path):
    write_lock(tmp_path / "workspace", {"report": {"reports/report.md": "22"}})
    write_lock(tmp_path / "scratch", {"report": {"reports/report.md": "33"}})
    lines = compare(tmp_path / "workspace", tmp_path / "scratch", "dvc.lock", partial=False)
    assert lines[0] == "reports/report.md (report): 22 committed, 33 rerun"


def test_an_entry_of_a_stage_the_pipeline_no_longer_has_is_called_stale(tmp_path):
    write_lock(tmp_path / "workspace", {"train@a": {"models/a": "11.dir"}, "train@a-2": {"models/a-2.pt": "44"}})
    write_lock(tmp_path / "scratch", {"train@a": {"models/a": "11.dir"}})
    lines = compare(tmp_path / "workspace", tmp_path / "scratch", "dvc.lock", partial=False)
    assert lines == ["models/a-2.pt: its stage train@a-2 is in dvc.lock but not in the pipeline "
                     "(a stale entry: delete it from the lock)"]


def test_an_output_a_rerun_stage_no_longer_writes_is_missing_and_a_partial_rerun_skips_the_rest(tmp_path):
    write_lock(tmp_path / "workspace", {"train@a": {"models/a": "11.dir", "history/a": "55.dir"},
                                        "report": {"reports/report.md": "22"}})
    write_lock(tmp_path / "scratch", {"train@a": {"models/a": "11.dir"}})
    full = compare(tmp_path / "workspace", tmp_path / "scratch", "dvc.lock", partial=False)
    assert "history/a: not produced by the rerun" in full
    assert len(full) == 2  # and the report's entry, which the rerun's lock lacks
    assert compare(tmp_path / "workspace", tmp_path / "scratch", "dvc.lock", partial=True) == []


# --- the workspace and the cache against the lock (a real DVC repository) -----------------------


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A DVC repository whose one stage wrote a file and a folder, cached, and a folder kept out of the cache (as
    the study's committed results are), with its dvc.lock."""
    root = tmp_path_factory.mktemp("repo")
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([dvc, "init", "-q"], cwd=root, check=True)
    (root / ".dvcignore").write_text(".aebench-tmp/\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  make:\n    cmd: mkdir -p out && echo 1 > out/a.json && echo 2 > out/b.json && echo r > report.md"
        " && mkdir -p committed/sub && echo 3 > committed/c.json && echo 4 > committed/sub/d.json\n"
        "    outs:\n      - out\n      - report.md\n      - committed:\n          cache: false\n")
    subprocess.run([dvc, "repro", "-q"], cwd=root, check=True, capture_output=True)
    return root


def fresh_copy(repository: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(repository, copy, symlinks=True)
    return copy


def test_an_untouched_workspace_and_cache_match_the_lock(repository, tmp_path):
    root = fresh_copy(repository, tmp_path)
    (root / "out" / ".aebench-tmp").mkdir()  # what .dvcignore hides is not an output
    (root / "out" / ".aebench-tmp" / ".x.1.tmp").write_text("half")
    assert tampered(root, "dvc.lock") == []


def test_a_changed_workspace_output_is_named(repository, tmp_path):
    root = fresh_copy(repository, tmp_path)
    (root / "out" / "a.json").write_text("7\n")  # one digit changed
    (root / "report.md").write_text("s\n")
    (root / "out" / "extra.json").write_text("{}")
    lines = tampered(root, "dvc.lock")
    assert [line.split(": ")[0] for line in lines] == ["out/a.json (make)", "out/extra.json (make)", "report.md (make)"]
    assert lines[0].startswith("out/a.json (make): the workspace file has md5 ") and "dvc.lock records" in lines[0]


def test_a_folder_kept_out_of_the_cache_is_checked_by_its_hash(repository, tmp_path):
    root = fresh_copy(repository, tmp_path)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    recorded = next(out["md5"] for out in lock["stages"]["make"]["outs"] if out["path"] == "committed")
    cache = root / ".dvc" / "cache" / "files" / "md5"
    assert not (cache / recorded[:2] / recorded[2:]).exists()  # DVC keeps no listing of it
    assert tampered(root, "dvc.lock") == []  # the hash computed here is DVC's
    (root / "committed" / "sub" / "d.json").write_text("5\n")
    lines = tampered(root, "dvc.lock")
    assert len(lines) == 1 and lines[0].startswith("committed (make): the workspace folder hashes to ")
    assert f"dvc.lock records {recorded}" in lines[0]


def test_a_damaged_cache_object_is_named(repository, tmp_path):
    root = fresh_copy(repository, tmp_path)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    md5 = next(out["md5"] for out in lock["stages"]["make"]["outs"] if out["path"] == "report.md")
    stored = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    stored.chmod(0o644)
    stored.write_text("tampered\n")
    found = hashlib.md5(b"tampered\n").hexdigest()
    assert tampered(root, "dvc.lock") == [
        f"report.md (make): the DVC cache object {stored.relative_to(root)} has md5 {found}, not its name"]
