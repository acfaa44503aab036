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

from aebench.common.tracking import ROLE_TAG, RunSpec, Store, tracked_run

SWEEP_TAG = "aebench.sweep"  # identifies the grid: the sorted point names
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own tag for nesting a run under another


def log_sweep(store: Store, frame: pd.DataFrame, *, artifacts: dict[str, str]) -> str:
    """Create or update the sweep's parent run and its child runs; return the parent's id."""
    grid = hashlib.sha256(" ".join(sorted(frame["point"].unique())).encode()).hexdigest()[:16]
    tags = {ROLE_TAG: "sweep", SWEEP_TAG: grid}
    with tracked_run(store, RunSpec(run_name="sweep", tags=tags, find=tags)) as parent:
        parent.log_texts(artifacts)
        for point, group in frame.groupby("point", sort=False):
            tags = {ROLE_TAG: "sweep-point", SWEEP_TAG: grid, "point": str(point), PARENT_TAG: parent.run_id}
            config = {"point": point, "beta": _param(group["beta"].iloc[0]), "gamma": _param(group["gamma"].iloc[0]),
                      "seeds": len(group)}
            with tracked_run(store, RunSpec(run_name=f"sweep-{point}", tags=tags, find=tags, config=config)) as child:
                means = group.drop(columns=["point", "beta", "gamma", "seed", "dataset"]).mean(numeric_only=True)
                child.log_metrics({key: float(value) for key, value in means.items() if not math.isnan(value)},
                                  step=0)
    return parent.run_id


def _param(value: float) -> str:
    return "null" if math.isnan(value) else f"{value:g}"
