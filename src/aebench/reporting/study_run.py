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

from aebench.common.tracking import RunSpec, Store, TrackedRun, close_run, find_runs, git_commit

STUDY_TAG = "aebench.role"
STATE_TAG = "aebench.report_sha256"


def log_study(store: Store, *, name: str, params_dict: dict, models: int, seeds: list[int],
              artifacts: dict[str, str]) -> str:
    """Create or update the study run of this report's content; return its id.

    `artifacts` maps file names (report.md, report.html...) to their text; the
    first one's sha256 identifies the pipeline state.
    """
    state = hashlib.sha256(next(iter(artifacts.values())).encode()).hexdigest()
    client = store.client()
    existing = find_runs(store, {STUDY_TAG: "study", STATE_TAG: state})
    if existing:
        run_id = existing[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        tracked = TrackedRun(client, run_id, resumed=True)
    else:
        experiment = client.get_experiment_by_name(store.experiment)
        spec = RunSpec(run_name=name, tags={STUDY_TAG: "study", STATE_TAG: state})
        run = client.create_run(experiment.experiment_id, run_name=spec.run_name, tags=dict(spec.tags))
        tracked = TrackedRun(client, run.info.run_id, resumed=False)
        tracked.log_config(params_dict)
    try:
        tracked.set_tags({"aebench.models": models, "aebench.seeds": " ".join(map(str, seeds)),
                          "git_commit": git_commit(store.workspace)})
        with tempfile.TemporaryDirectory(prefix="aebench-report-") as scratch:
            for file_name, text in artifacts.items():
                path = Path(scratch) / file_name  # the artifact takes the file's name
                path.write_text(text)
                tracked.log_artifact(path)
    except BaseException:
        close_run(client, tracked.run_id, "FAILED")
        raise
    close_run(client, tracked.run_id, "FINISHED")
    return tracked.run_id
