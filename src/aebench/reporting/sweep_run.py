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
import tempfile
from pathlib import Path

import pandas as pd

from aebench.common.tracking import Store, TrackedRun, close_run, find_runs

ROLE_TAG = "aebench.role"
SWEEP_TAG = "aebench.sweep"  # identifies the grid: the sorted point names
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nesting a run under another


def _run(store: Store, name: str, tags: dict[str, str]) -> TrackedRun:
    client = store.client()
    found = find_runs(store, tags)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return TrackedRun(client, found[0].info.run_id, resumed=True)
    experiment = client.get_experiment_by_name(store.experiment)
    run = client.create_run(experiment.experiment_id, run_name=name, tags=tags)
    return TrackedRun(client, run.info.run_id, resumed=False)


def log_sweep(store: Store, frame: pd.DataFrame, *, artifacts: dict[str, str]) -> str:
    """Create or update the sweep's parent run and its child runs; return the parent's id."""
    grid = hashlib.sha256(" ".join(sorted(frame["point"].unique())).encode()).hexdigest()[:16]
    parent = _run(store, "sweep", {ROLE_TAG: "sweep", SWEEP_TAG: grid})
    children: list[TrackedRun] = []
    try:
        with tempfile.TemporaryDirectory(prefix="aebench-sweep-") as scratch:
            for file_name, text in artifacts.items():
                path = Path(scratch) / file_name
                path.write_text(text)
                parent.log_artifact(path)
        for point, group in frame.groupby("point", sort=False):
            child = _run(store, f"sweep-{point}", {ROLE_TAG: "sweep-point", SWEEP_TAG: grid, "point": str(point),
                                                   PARENT_TAG: parent.run_id})
            children.append(child)
            if not child.resumed:
                child.log_config({"point": point, "beta": _param(group["beta"].iloc[0]),
                                  "gamma": _param(group["gamma"].iloc[0]), "seeds": len(group)})
            means = group.drop(columns=["point", "beta", "gamma", "seed", "dataset"]).mean(numeric_only=True)
            child.log_metrics({key: float(value) for key, value in means.items() if not math.isnan(value)}, step=0)
            close_run(child.client, child.run_id, "FINISHED")
    except BaseException:
        for child in children:
            close_run(child.client, child.run_id, "FAILED")
        close_run(parent.client, parent.run_id, "FAILED")
        raise
    close_run(parent.client, parent.run_id, "FINISHED")
    return parent.run_id


def _param(value: float) -> str:
    return "null" if math.isnan(value) else f"{value:g}"
