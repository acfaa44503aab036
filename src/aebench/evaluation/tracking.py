"""Log the evaluation numbers to the model's own MLflow run (the run that trained it).

Scalars become metrics under their dotted names (`test.nll_iw`, step 0);
per-dimension and per-class lists become one metric each, stepped by index
(`latent.activity` at step u is A_u), so the UI plots them as profiles. The
metrics file goes along as an artifact. The run keeps its status: evaluation
adds to a finished run, it does not reopen it.
"""

from __future__ import annotations

import time
from pathlib import Path

from aebench.evaluation.metrics import metric_scalars, metric_series


def log_evaluation(tracking_uri: str, run_id: str | None, payload: dict, *, metrics_file: str | Path | None = None) -> str | None:
    """Log `payload` (a checked metrics dict) to run `run_id`; None on success, else a one-line reason."""
    if not run_id:
        return "the checkpoint records no MLflow run id"
    from mlflow.entities import Metric
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        run = client.get_run(run_id)
    except MlflowException as err:
        return f"MLflow run {run_id} not found at {tracking_uri} ({_first_line(err)})"
    except Exception as err:  # noqa: BLE001 - an unusable store (bad URI, locked database) must not fail the stage
        return f"MLflow store {tracking_uri} unusable ({type(err).__name__}: {_first_line(err)})"
    if run.info.lifecycle_stage == "deleted":
        return f"MLflow run {run_id} at {tracking_uri} is deleted"
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, 0) for key, value in metric_scalars(payload).items()]
    for key, values in metric_series(payload).items():
        metrics += [Metric(key, value, now, step) for step, value in enumerate(values)]
    try:
        client.log_batch(run_id, metrics=metrics)
        if metrics_file is not None:
            client.log_artifact(run_id, str(metrics_file), "evaluation")
    except Exception as err:  # noqa: BLE001 - the metrics file is already written; logging is best effort
        return f"MLflow run {run_id}: logging failed ({type(err).__name__}: {_first_line(err)})"
    return None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
