"""One MLflow run per trained replicate, kept by the train stage's own process.

The stage opens every replicate's run before its workers report, and closes
it when the job ends: FINISHED with the per-epoch metrics (step = epoch), the
checkpoint as an artifact and its sha256 as a tag (how evaluation finds the
run that trained a checkpoint), and the checkpoint's model in MLflow's model
format (aebench.models.logged_model); FAILED or KILLED otherwise. Runs carry the
replicate's name and its resume key (config + data): a stage killed and
rerun with the same key resumes its training and reuses its run, while a run
left RUNNING under another key will never resume and is closed as KILLED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aebench.common.tracking import CHECKPOINT_TAG, REPLICATE_TAG, RunSpec, Store, TrackedRun, open_run
from aebench.models.checkpoint import load_model
from aebench.models.logged_model import log_trained_model
from aebench.training.trainer import TrainingResult

RESUME_KEY_TAG = "aebench.resume_key"


def open_training_run(store: Store, *, run_name: str, config: dict[str, Any], resume_key: str,
                      tags: dict[str, str]) -> TrackedRun:
    """The run this training logs to (RUNNING): a killed stage's run of this replicate under the same resume
    key, continued, or a new one; its runs under other keys will never resume and are closed KILLED."""
    return open_run(store, RunSpec(
        run_name=run_name, tags={**tags, RESUME_KEY_TAG: resume_key}, config=config,
        find={REPLICATE_TAG: tags[REPLICATE_TAG]},
        reusable=lambda run: run.info.status == "RUNNING" and run.data.tags.get(RESUME_KEY_TAG) == resume_key,
    ))


def finish_training_run(tracked: TrackedRun, result: TrainingResult, *, checkpoint: Path) -> None:
    """Log a finished training's epochs, wall times, checkpoint and model, and end the run FINISHED."""
    trained_here = len(result.epoch_seconds)  # after a resume, the last epochs only
    first_timed = len(result.history) - trained_here
    for index, row in enumerate(result.history):
        metrics = {name: value for name, value in row.items() if name != "epoch"}
        if index >= first_timed:
            metrics["epoch_seconds"] = result.epoch_seconds[index - first_timed]
        tracked.log_metrics(metrics, step=int(row["epoch"]))
    tracked.log_artifact(checkpoint, artifact_path="checkpoint")
    tracked.set_tags({CHECKPOINT_TAG: result.checkpoint_sha256})
    # After the epochs: MLflow links the last epoch's metrics to the model.
    tracked.call(log_trained_model, tracked.client, tracked.run_id, load_model(checkpoint),
                 step=int(result.history[-1]["epoch"]))
    tracked.end("FINISHED")
