"""MLflow helpers: open (or reopen) a run, log a flat config, always close the run.

Every stage that records something talks to MLflow through `tracked_run`, which
ends the run FINISHED when the block completes, FAILED when it raises, and
KILLED on Ctrl-C (KeyboardInterrupt), so no run is left RUNNING by an error.
(Only a hard kill, SIGKILL, can leave one RUNNING; rerunning the training stage
resumes that same run and finishes it.)

The tracking URI comes from `mlflow.tracking_uri` in params.yaml unless the
environment sets `MLFLOW_TRACKING_URI` (MLflow's own convention), e.g. to point
CI at a tracking server. With the default `sqlite:///mlflow.db` the database is
`mlflow.db` in the working directory. Left to itself, MLflow 3.17 would put the
artifacts of a sqlite store under `./mlruns/<experiment id>/` of whatever
directory the experiment happened to be created from (an absolute path it
records once); `tracked_run` instead creates the experiment with its artifacts
beside the database, `<db folder>/mlruns/<experiment name>/<run id>/artifacts`
(git-ignored, and not mistaken by MLflow for an old file store, which needs
numeric folders with meta.yaml). A tracking server stores artifacts wherever it
is configured to (`mlflow server` proxies them to its `./mlartifacts` by default).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.common.config import flatten
from aebench.common.errors import AebenchError



class TrackingError(AebenchError):
    """The MLflow tracking store cannot be reached or refuses a request."""


@dataclass(frozen=True)
class RunSpec:
    """Where and under which name a run is recorded."""

    tracking_uri: str
    experiment: str
    run_name: str
    tags: Mapping[str, str] = field(default_factory=dict)


def resolve_tracking_uri(configured: str) -> str:
    """$MLFLOW_TRACKING_URI when set, else the value from params.yaml."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured


def git_commit(cwd: str | Path | None = None) -> str:
    """The checked-out commit, with '-dirty' when tracked files changed; 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, check=True, timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


class TrackedRun:
    """One open MLflow run; every call names it explicitly (no global active run)."""

    def __init__(self, client: Any, run_id: str, *, resumed: bool) -> None:
        self.client = client
        self.run_id = run_id
        self.resumed = resumed  # True when an existing run was reopened

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The resolved config, flattened to dotted names (`train.lr`), as run params."""
        from mlflow.entities import Param

        params = [Param(name, _param_value(value)) for name, value in flatten(dict(config)).items()]
        self._call(self.client.log_batch, self.run_id, params=params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._call(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step) for name, value in metrics.items()]
        self._call(self.client.log_batch, self.run_id, metrics=batch)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._call(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def _call(self, method, *args, **kwargs):
        from mlflow.exceptions import MlflowException

        try:
            return method(*args, **kwargs)
        except MlflowException as err:
            raise TrackingError(f"MLflow run {self.run_id}: {_first_line(err)}") from None


@contextlib.contextmanager
def tracked_run(spec: RunSpec, *, run_id: str | None = None) -> Iterator[TrackedRun]:
    """Open a run (reopen `run_id` when it exists in this store), and always close it.

    FINISHED on success, KILLED on KeyboardInterrupt, FAILED on any other error.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    _quiet_mlflow()
    try:
        client = MlflowClient(tracking_uri=spec.tracking_uri)
        experiment_id = _experiment_id(client, spec.experiment, _artifact_location(spec.tracking_uri, spec.experiment))
        run = _existing_run(client, run_id, experiment_id)
        resumed = run is not None
        if resumed:
            client.update_run(run.info.run_id, status="RUNNING")
        else:
            run = client.create_run(experiment_id, run_name=spec.run_name, tags=dict(spec.tags))
    except MlflowException as err:
        raise TrackingError(f"MLflow store {spec.tracking_uri}: {_first_line(err)}") from None
    tracked = TrackedRun(client, run.info.run_id, resumed=resumed)
    try:
        yield tracked
    except KeyboardInterrupt:
        _close(client, tracked.run_id, "KILLED")
        raise
    except BaseException:
        _close(client, tracked.run_id, "FAILED")
        raise
    _close(client, tracked.run_id, "FINISHED")


def run_status(tracking_uri: str, run_id: str) -> str:
    """FINISHED, FAILED, KILLED or RUNNING: what the store says about a run."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri).get_run(run_id).info.status


def _artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file; other stores decide for themselves."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    database = tracking_uri[len(prefix) :].split("?")[0]
    if not database or database == ":memory:":
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)  # an experiment name is free text
    return (Path(database).resolve().parent / "mlruns" / folder).as_uri()


def _experiment_id(client: Any, name: str, artifact_location: str | None) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created meanwhile by a parallel stage
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def _existing_run(client: Any, run_id: str | None, experiment_id: str):
    """The run to reopen, or None when it is gone or belongs elsewhere (then a new run starts)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage == "deleted":
        return None
    return run


def _close(client: Any, run_id: str, status: str) -> None:
    # Closing must never hide the error that got us here.
    try:
        client.set_terminated(run_id, status=status)
    except Exception as err:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not mark MLflow run %s %s: %s", run_id, status, err)


def _quiet_mlflow() -> None:
    # MLflow sets its logger to INFO when imported and then announces schema migrations
    # and experiment creation on every stage start; only warnings matter here.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _param_value(value: Any) -> str:
    # Lists such as model.hidden are logged as "[512, 256]"; None as "null", like params.yaml.
    if value is None:
        return "null"
    return str(value)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
