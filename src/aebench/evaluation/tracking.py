"""Log the evaluation numbers to the MLflow run that trained exactly this checkpoint.

The run is found by its tags: the replicate's name and the sha256 of the
checkpoint it wrote (`aebench.checkpoint`), so an evaluation can never land in
another model's run, and a checkpoint pulled from a DVC remote (trained
elsewhere, unknown to this store) is reported rather than guessed at.

Scalars become metrics under their dotted names (`test.nll_iw`, step 0);
per-dimension and per-class lists become one metric each, stepped by index
(`latent.activity` at step u is A_u), so the UI plots them as profiles. The
metrics file goes along as an artifact. The run keeps its status: evaluation
adds to a finished run, it does not reopen it. The metrics are also the
run's logged model's (`model_id`), so MLflow's model page shows them.
"""

from __future__ import annotations

from pathlib import Path

from aebench.common.tracking import CHECKPOINT_TAG, REPLICATE_TAG, Store, TrackedRun, find_runs
from aebench.evaluation.metrics import metric_scalars, metric_series
from aebench.models.logged_model import logged_model_id


def training_run_id(store: Store, replicate_name: str, checkpoint_sha256: str) -> str | None:
    """The newest run of this replicate that wrote this very checkpoint, or None."""
    runs = find_runs(store, {REPLICATE_TAG: replicate_name, CHECKPOINT_TAG: checkpoint_sha256})
    return runs[0].info.run_id if runs else None


def log_evaluation(store: Store, run_id: str, payload: dict, *, metrics_file: str | Path) -> None:
    """Log a checked metrics payload and its file to run `run_id`, leaving its status as it is."""
    tracked = TrackedRun(store.client(), run_id, resumed=True)
    model_id = logged_model_id(tracked.client, run_id)  # None for a run logged before models were
    tracked.log_metrics(metric_scalars(payload), step=0, model_id=model_id)
    tracked.log_series(metric_series(payload), model_id=model_id)
    tracked.log_artifact(metrics_file, "evaluation")
