"""The sweep in MLflow: one parent run, one child run per grid point, updated in place.

The parent holds the sweep report as artifacts; each child holds its point's
weights as params and the mean over seeds of every scalar metric (the seeds'
own training runs are the replicate runs, tagged with their point). Runs are
found again by tags, so rebuilding the report of the same grid updates them
rather than adding new ones.
"""

from __future__ import annotations

import hashlib
import math

import pandas as pd

from aebench.common.tracking import RunSpec, Store, find_runs, tracked_run
from aebench.reporting.study_run import log_texts

ROLE_TAG = "aebench.role"
SWEEP_TAG = "aebench.sweep"  # identifies the grid: the sorted point names
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nesting a run under another


def _tracked(store: Store, name: str, tags: dict[str, str]):
    """The run carrying `tags`, reopened, or a new one: closed FINISHED, or FAILED/KILLED when its block raises."""
    found = find_runs(store, tags)
    return tracked_run(store, RunSpec(run_name=name, tags=tags), run_id=found[0].info.run_id if found else None)


def log_sweep(store: Store, frame: pd.DataFrame, *, artifacts: dict[str, str]) -> str:
    """Create or update the sweep's parent run and its child runs; return the parent's id."""
    grid = hashlib.sha256(" ".join(sorted(frame["point"].unique())).encode()).hexdigest()[:16]
    with _tracked(store, "sweep", {ROLE_TAG: "sweep", SWEEP_TAG: grid}) as parent:
        log_texts(parent, artifacts)
        for point, group in frame.groupby("point", sort=False):
            tags = {ROLE_TAG: "sweep-point", SWEEP_TAG: grid, "point": str(point), PARENT_TAG: parent.run_id}
            with _tracked(store, f"sweep-{point}", tags) as child:
                if not child.resumed:
                    child.log_config({"point": point, "beta": _param(group["beta"].iloc[0]),
                                      "gamma": _param(group["gamma"].iloc[0]), "seeds": len(group)})
                means = group.drop(columns=["point", "beta", "gamma", "seed", "dataset"]).mean(numeric_only=True)
                child.log_metrics({key: float(value) for key, value in means.items() if not math.isnan(value)},
                                  step=0)
    return parent.run_id


def _param(value: float) -> str:
    return "null" if math.isnan(value) else f"{value:g}"
