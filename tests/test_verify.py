"""`make verify`'s comparison of a committed dvc.lock with a rerun's, on small hand-written locks."""

from __future__ import annotations

from pathlib import Path

import yaml

from aebench.verify import compare


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
