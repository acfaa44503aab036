"""The study's run in MLflow: the report as artifacts, one run per state of the pipeline.

The report's Markdown is a pure function of the pipeline's outputs, so its
sha256 names a pipeline state. The report stage looks for the study run
tagged with it and updates that run (artifacts replaced, status FINISHED);
only a report with other content starts a new study run. Model runs stay
top-level (the runs table lists them all); the study run records how many
models and which seeds it covers.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from aebench.common.tracking import RunSpec, Store, TrackedRun, find_runs, git_commit, tracked_run

STUDY_TAG = "aebench.role"
STATE_TAG = "aebench.report_sha256"


def log_study(store: Store, *, name: str, params_dict: dict, models: int, seeds: list[int],
              artifacts: dict[str, str]) -> str:
    """Create or update the study run of this report's content; return its id.

    `artifacts` maps file names (report.md, report.html...) to their text; the
    first one's sha256 identifies the pipeline state.
    """
    state = hashlib.sha256(next(iter(artifacts.values())).encode()).hexdigest()
    tags = {STUDY_TAG: "study", STATE_TAG: state}
    existing = find_runs(store, tags)
    with tracked_run(store, RunSpec(run_name=name, tags=tags),
                     run_id=existing[0].info.run_id if existing else None) as tracked:
        if not tracked.resumed:
            tracked.log_config(params_dict)
        tracked.set_tags({"aebench.models": models, "aebench.seeds": " ".join(map(str, seeds)),
                          "git_commit": git_commit(store.workspace)})
        log_texts(tracked, artifacts)
    return tracked.run_id


def log_texts(tracked: TrackedRun, artifacts: dict[str, str]) -> None:
    """Log each text of `artifacts` (file name -> text) as an artifact of that file name."""
    with tempfile.TemporaryDirectory(prefix="aebench-report-") as scratch:
        for file_name, text in artifacts.items():
            path = Path(scratch) / file_name  # the artifact takes the file's name
            path.write_text(text)
            tracked.log_artifact(path)
