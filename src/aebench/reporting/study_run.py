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

from aebench.common.tracking import ROLE_TAG, RunSpec, Store, git_commit, tracked_run

STATE_TAG = "aebench.report_sha256"


def log_study(store: Store, *, name: str, params_dict: dict, models: int, seeds: list[int],
              artifacts: dict[str, str]) -> str:
    """Create or update the study run of this report's content; return its id.

    `artifacts` maps file names (report.md, report.html...) to their text; the
    first one's sha256 identifies the pipeline state.
    """
    state = hashlib.sha256(next(iter(artifacts.values())).encode()).hexdigest()
    tags = {ROLE_TAG: "study", STATE_TAG: state}
    with tracked_run(store, RunSpec(run_name=name, tags=tags, find=tags, config=params_dict)) as tracked:
        tracked.set_tags({"aebench.models": models, "aebench.seeds": " ".join(map(str, seeds)),
                          "git_commit": git_commit(store.workspace)})
        tracked.log_texts(artifacts)
    return tracked.run_id
