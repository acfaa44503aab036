"""The study's parent run in MLflow: the report as artifacts, every model run nested under it.

Each report stage opens a new run named "study" in `mlflow.experiment`, logs
the resolved params, attaches `report.md` and `report.html`, and tags each
model's run (its id is in the metrics JSON) with `mlflow.parentRunId`, which
is how the MLflow UI nests runs. A model run that the store does not know
(deleted, or trained against another store) is skipped with a one-line warning.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from aebench.common.config import Params
from aebench.common.tracking import RunSpec, TrackingError, git_commit, resolve_tracking_uri, tracked_run
from aebench.reporting.inputs import ModelResult

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nesting a run under another
STUDY_RUN_NAME = "study"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def nest_model_runs(client, study_run_id: str, results: list[ModelResult], *, tracking_uri: str,
                    warn: Callable[[str], None] = _warn) -> list[str]:
    """Tag each model's run as a child of the study run; return the ids nested."""
    from mlflow.exceptions import MlflowException

    nested = []
    for result in results:
        run_id = result.metrics.get("mlflow_run_id")
        if not run_id:
            warn(f"{result.key.stem}: its metrics name no MLflow run; not nested under the study run")
            continue
        try:
            client.get_run(run_id)
            client.set_tag(run_id, PARENT_TAG, study_run_id)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise TrackingError(f"MLflow store {tracking_uri}: cannot nest run {run_id} ({err})") from None
            warn(f"MLflow run {run_id} of {result.key.stem} not found in {tracking_uri}; "
                 "not nested under the study run")
            continue
        nested.append(run_id)
    return nested


def log_study(params: Params, results: list[ModelResult], *, markdown: str, html: str,
              warn: Callable[[str], None] = _warn) -> str:
    """Open the study run, attach the report, nest the model runs; return the study run's id."""
    tracking_uri = resolve_tracking_uri(params.mlflow.tracking_uri)
    spec = RunSpec(
        tracking_uri=tracking_uri,
        experiment=params.mlflow.experiment,
        run_name=STUDY_RUN_NAME,
        tags={"aebench.role": "study", "git_commit": git_commit(), "dvc_stage": "report"},
    )
    with tracked_run(spec) as run, tempfile.TemporaryDirectory(prefix="aebench-report-") as scratch:
        run.log_config(params.to_dict())
        run.set_tags({"aebench.models": str(len(results))})
        for name, text in (("report.md", markdown), ("report.html", html)):
            path = Path(scratch) / name  # the artifact takes the file's name
            path.write_text(text)
            run.log_artifact(path)
        nest_model_runs(run.client, run.run_id, results, tracking_uri=tracking_uri, warn=warn)
    return run.run_id
