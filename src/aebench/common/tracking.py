"""MLflow: where the store is, finding a model's run, opening runs that always close.

Every stage talks to MLflow through an `open_store` result:

- The tracking URI is `$MLFLOW_TRACKING_URI` when set, else `mlflow.tracking_uri`
  of params. A relative sqlite path (`sqlite:///mlflow.db`) is the workspace's
  (the params file's folder), not the current directory's, and the
  experiment's artifacts go to `<workspace>/mlruns/<experiment>`; a workspace
  copied or moved elsewhere moves its store's artifact root with it (MLflow
  records absolute locations, which would otherwise point into the original).
- The store is checked before any work (`preflight`), each failure a one-line
  TrackingError naming the store: a server (http/https) must accept a
  connection and answer `/health` within `PREFLIGHT_TIMEOUT_S` seconds each
  and its API within `API_TIMEOUT_S` (a server whose API hangs behind a live
  `/health` is caught in about 10 s, before the work); a sqlite file must be a
  database and writable within `LOCK_WAIT_S` seconds (a file another process
  holds locked). MLflow's own retries are bounded so a server lost mid-run
  does not hang a stage for minutes.
- The experiment carries `mlflow.experimentKind = custom_model_development`,
  its kind for MLflow 3. (MLflow 3.17's UI itself picks its view from a switch
  it keeps in the browser, GenAI by default, or from `?workflowType=` in the
  address: `runs_url` gives the address that opens on the training runs.)

Every run goes through one lifecycle. `open_run` opens the run a `RunSpec`
describes: the newest earlier run carrying its `find` tags that it may
continue (a study run of the same report, a training killed under the same
resume key), reopened, or else a new one; earlier runs found still RUNNING
that nothing will continue are closed KILLED. `OpenRuns` holds a block's open
runs and ends each one the block has not ended: FINISHED when the block
completes, FAILED when it raises, KILLED on Ctrl-C or SIGTERM
(KeyboardInterrupt), so no error leaves one RUNNING; `tracked_run` is that for
one run. Runs are found by tags, never by ids stored in DVC outputs:
`find_runs(store, {REPLICATE_TAG: ..., CHECKPOINT_TAG: sha})` is how
evaluation reaches the run that trained exactly its checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aebench.common.config import flatten
from aebench.common.errors import AebenchError

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
REPLICATE_TAG = "aebench.replicate"  # the trained model's name, e.g. mnist-vae-30-s0
CHECKPOINT_TAG = "aebench.checkpoint"  # the sha256 of the checkpoint a training run wrote
ROLE_TAG = "aebench.role"  # what a run other than a model's training is: the study, a sweep, a sweep point
EXPERIMENT_KIND = "custom_model_development"
PREFLIGHT_TIMEOUT_S = 5.0
# A fresh server's first API call opens its store: 4.8 s measured on a loaded 2-core machine, so the API gets
# longer than the connection and /health; a hanging API is still reported in about 10 s.
API_TIMEOUT_S = 10.0
LOCK_WAIT_S = 10.0  # how long a sqlite store locked by another process is waited for (other stages write briefly)
# Bounds for MLflow's HTTP client (it otherwise retries for minutes); a user's own settings win.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
SQLITE_PREFIX = "sqlite:///"


class TrackingError(AebenchError):
    """The MLflow tracking store cannot be reached or refuses a request."""


@dataclass(frozen=True)
class Store:
    """A resolved tracking store and the experiment every run of the study goes to."""

    uri: str
    experiment: str
    workspace: Path
    artifact_root: str | None  # where this workspace's runs keep artifacts (sqlite stores), else the server's choice

    def client(self):
        from mlflow.tracking import MlflowClient

        _quiet_mlflow()
        return MlflowClient(tracking_uri=self.uri)


@dataclass(frozen=True)
class RunSpec:
    """Under which name and tags a run is recorded, and which earlier run it continues.

    `find`: the tags an earlier run of the same thing carries (None: always a new run); the newest such run
    that `reusable` accepts (None: any) is reopened. `config` is logged as a new run's params.
    """

    run_name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    find: Mapping[str, str] | None = None
    reusable: Callable[[Any], bool] | None = None
    config: Mapping[str, Any] | None = None


def resolve_tracking_uri(configured: str, workspace: Path) -> str:
    """$MLFLOW_TRACKING_URI when set, else the configured one; a relative sqlite path is the workspace's."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    if uri.startswith(SQLITE_PREFIX):
        database = uri[len(SQLITE_PREFIX):]
        path, _, query = database.partition("?")
        if path and path != ":memory:" and not Path(path).is_absolute():
            uri = f"{SQLITE_PREFIX}{(workspace / path).resolve()}{'?' + query if query else ''}"
    return uri


def open_store(configured_uri: str, experiment: str, *, workspace: str | Path) -> Store:
    """Resolve the store, check a server answers, and make sure the experiment exists as it should."""
    workspace = Path(workspace).resolve()
    for name, value in HTTP_LIMITS.items():
        os.environ.setdefault(name, value)
    uri = resolve_tracking_uri(configured_uri, workspace)
    preflight(uri)
    store = Store(uri=uri, experiment=experiment, workspace=workspace, artifact_root=_artifact_root(uri, experiment))
    from mlflow.exceptions import MlflowException

    try:
        _ensure_experiment(store)
    except MlflowException as err:
        raise TrackingError(f"MLflow store {uri}: {_first_line(err)}") from None
    return store


def preflight(uri: str, *, timeout: float = PREFLIGHT_TIMEOUT_S, api_timeout: float = API_TIMEOUT_S,
              lock_wait: float = LOCK_WAIT_S) -> None:
    """Check the store can serve a stage: a server (see `preflight_server`) or a sqlite file."""
    if uri.startswith(SQLITE_PREFIX):
        preflight_sqlite(uri, lock_wait=lock_wait)
    elif urllib.parse.urlparse(uri).scheme in ("http", "https"):
        preflight_server(uri, timeout=timeout, api_timeout=api_timeout)


def preflight_sqlite(uri: str, *, lock_wait: float = LOCK_WAIT_S) -> None:
    """An existing sqlite store must be a database that this process can lock for writing within `lock_wait` s.

    A missing file is left for MLflow to create.
    """
    database = uri[len(SQLITE_PREFIX):].split("?")[0]
    if not database or database == ":memory:" or not Path(database).is_file():
        return
    address = f"{Path(database).as_uri()}?mode=rw"  # never creates a file
    try:
        with contextlib.closing(sqlite3.connect(address, uri=True, timeout=lock_wait, isolation_level=None)) as db:
            db.execute("PRAGMA schema_version")  # reads the header: garbage is "file is not a database"
            db.execute("BEGIN IMMEDIATE")  # the write lock a stage will need, waited for up to lock_wait s
            db.execute("ROLLBACK")
    except sqlite3.Error as err:
        reason = _first_line(err)
        if isinstance(err, sqlite3.OperationalError) and "locked" in reason:
            reason = f"{reason}: another process holds it; waited {lock_wait:g} s"
        raise TrackingError(f"MLflow store {database}: {reason}") from None


def preflight_server(uri: str, *, timeout: float = PREFLIGHT_TIMEOUT_S, api_timeout: float = API_TIMEOUT_S) -> None:
    """A TCP connection and its /health endpoint within `timeout` seconds each, its REST API within `api_timeout`."""
    parsed = urllib.parse.urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            pass
    except OSError as err:
        raise TrackingError(f"MLflow server {uri} unreachable ({err.strerror or err})") from None
    health = urllib.parse.urljoin(uri.rstrip("/") + "/", "health")
    try:
        with urllib.request.urlopen(health, timeout=timeout) as response:  # noqa: S310 - the configured server
            response.read(64)
    except (OSError, urllib.error.URLError) as err:
        raise TrackingError(f"MLflow server {uri} does not answer {health} ({_first_line(err)})") from None
    # /health is served apart from the store behind the API; a stuck store answers /health and hangs every call.
    api = urllib.parse.urljoin(uri.rstrip("/") + "/", "api/2.0/mlflow/experiments/search?max_results=1")
    try:
        with urllib.request.urlopen(api, timeout=api_timeout) as response:  # noqa: S310 - the configured server
            response.read(64)
    except urllib.error.HTTPError:
        pass  # an answer, even a refusal, is what is checked here; MLflow reports refusals itself
    except (OSError, urllib.error.URLError) as err:
        reason = getattr(err, "reason", err)
        why = f"no answer within {api_timeout:g} s" if isinstance(reason, TimeoutError) else _first_line(reason)
        raise TrackingError(f"MLflow server {uri} answers {health} but not its API ({api}: {why})") from None


def runs_url(base: str, experiment_id: str) -> str:
    """The MLflow UI's page of an experiment's training runs (not its GenAI overview)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def git_commit(workspace: str | Path) -> str:
    """The workspace's checked-out commit, with '-dirty' when tracked files changed; 'unknown' outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=workspace, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=workspace, capture_output=True, text=True, check=True, timeout=30,
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
        self.ended = False

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run ended with `status`, once."""
        if not self.ended:
            self.ended = True
            close_run(self.client, self.run_id, status)

    def log_config(self, config: Mapping[str, Any]) -> None:
        """The config, flattened to dotted names (`train.lr`), as run params."""
        from mlflow.entities import Param

        params = [Param(name, _param_value(value)) for name, value in flatten(dict(config)).items()]
        self.call(self.client.log_batch, self.run_id, params=params)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.call(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: Mapping[str, float], *, step: int, model_id: str | None = None) -> None:
        """Scalars at one step (`model_id`: they are also that logged model's, shown on its page)."""
        self._log_batch([(name, value, step) for name, value in metrics.items()], model_id)

    def log_series(self, series: Mapping[str, Sequence[float]], *, model_id: str | None = None) -> None:
        """Each list as one metric stepped by index, so the UI plots it as a profile (A_u at step u)."""
        self._log_batch([(name, value, step) for name, values in series.items()
                         for step, value in enumerate(values)], model_id)

    def _log_batch(self, points: list[tuple[str, float, int]], model_id: str | None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step, model_id=model_id) for name, value, step in points]
        for start in range(0, len(batch), 1000):  # MLflow's log_batch takes at most 1000 metrics
            self.call(self.client.log_batch, self.run_id, metrics=batch[start : start + 1000])

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self.call(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_texts(self, artifacts: Mapping[str, str]) -> None:
        """Each text of `artifacts` (file name -> text) as an artifact of that file name."""
        with tempfile.TemporaryDirectory(prefix="aebench-artifact-") as scratch:
            for file_name, text in artifacts.items():
                path = Path(scratch) / file_name  # the artifact takes the file's name
                path.write_text(text)
                self.log_artifact(path)

    def call(self, method, *args, **kwargs):
        """`method(*args, **kwargs)`, an MLflow error becoming a one-line TrackingError naming this run."""
        from mlflow.exceptions import MlflowException

        try:
            return method(*args, **kwargs)
        except MlflowException as err:
            raise TrackingError(f"MLflow run {self.run_id}: {_first_line(err)}") from None


def open_run(store: Store, spec: RunSpec) -> TrackedRun:
    """The run `spec` describes, RUNNING: an earlier one it continues (see RunSpec), or a new one."""
    from mlflow.exceptions import MlflowException

    client = store.client()
    try:
        experiment_id = client.get_experiment_by_name(store.experiment).experiment_id  # open_store made it
        continued = None
        for run in _tagged_runs(client, experiment_id, spec.find) if spec.find is not None else []:
            if continued is None and (spec.reusable is None or spec.reusable(run)):
                continued = run
            elif run.info.status == "RUNNING":
                close_run(client, run.info.run_id, "KILLED")  # a killed stage's run that nothing will continue
        if continued is not None:
            if continued.info.status != "RUNNING":
                client.update_run(continued.info.run_id, status="RUNNING")
            return TrackedRun(client, continued.info.run_id, resumed=True)
        run = client.create_run(experiment_id, run_name=spec.run_name, tags=dict(spec.tags))
    except MlflowException as err:
        raise TrackingError(f"MLflow store {store.uri}: {_first_line(err)}") from None
    tracked = TrackedRun(client, run.info.run_id, resumed=False)
    if spec.config:
        tracked.log_config(spec.config)
    return tracked


class OpenRuns:
    """The runs a block keeps open. Leaving it ends each one still open: FINISHED when the block completed,
    KILLED on KeyboardInterrupt (Ctrl-C, or SIGTERM as the stages raise it), FAILED on any other error."""

    def __init__(self) -> None:
        self._runs: list[TrackedRun] = []

    def add(self, run: TrackedRun) -> TrackedRun:
        self._runs.append(run)
        return run

    def __enter__(self) -> OpenRuns:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        status = "FINISHED" if kind is None else "KILLED" if issubclass(kind, KeyboardInterrupt) else "FAILED"
        for run in self._runs:
            run.end(status)


@contextlib.contextmanager
def tracked_run(store: Store, spec: RunSpec) -> Iterator[TrackedRun]:
    """One run open for the block (see `open_run`), ended as `OpenRuns` ends it."""
    with OpenRuns() as runs:
        yield runs.add(open_run(store, spec))


def close_run(client: Any, run_id: str, status: str) -> None:
    """Mark a run ended; closing must never hide the error that got us here."""
    try:
        client.set_terminated(run_id, status=status)
    except Exception as err:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not mark MLflow run %s %s: %s", run_id, status, err)


def find_runs(store: Store, tags: Mapping[str, str]) -> list[Any]:
    """Runs of the experiment carrying all `tags`, newest first."""
    client = store.client()
    experiment = client.get_experiment_by_name(store.experiment)
    return [] if experiment is None else _tagged_runs(client, experiment.experiment_id, tags)


def _tagged_runs(client: Any, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
    query = " and ".join(f"tags.`{key}` = '{_quoted(value)}'" for key, value in tags.items())
    return client.search_runs([experiment_id], filter_string=query, order_by=["attributes.start_time DESC"])


# --- the store and its experiment --------------------------------------------


def _artifact_root(uri: str, experiment: str) -> str | None:
    """Artifacts of a sqlite store go beside the database file; other stores decide for themselves."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    database = uri[len(SQLITE_PREFIX):].split("?")[0]
    if not database or database == ":memory:":
        return None
    folder = re.sub(r"[^A-Za-z0-9._-]", "_", experiment)  # an experiment name is free text
    return (Path(database).parent / "mlruns" / folder).as_uri()


def _ensure_experiment(store: Store) -> None:
    from mlflow.exceptions import MlflowException

    client = store.client()
    experiment = client.get_experiment_by_name(store.experiment)
    if experiment is None:
        try:
            client.create_experiment(store.experiment, artifact_location=store.artifact_root,
                                     tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            return
        except MlflowException:  # created meanwhile by a parallel stage
            experiment = client.get_experiment_by_name(store.experiment)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    recorded = experiment.artifact_location
    if store.artifact_root and recorded != store.artifact_root and recorded.startswith("file:"):
        _relocate_artifacts(store, recorded)


def _relocate_artifacts(store: Store, recorded: str) -> None:
    """Point a copied workspace's store at its own artifact folder.

    MLflow records the experiment's artifact location, each run's and each
    logged model's, as absolute URIs and offers no call to change them, so a copy of a workspace
    would keep logging into the original's `mlruns`. The database is this
    workspace's own file, so the paths are rewritten there directly.
    """
    database = store.uri[len(SQLITE_PREFIX):].split("?")[0]
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection, connection:
        connection.execute(
            "UPDATE experiments SET artifact_location = ? WHERE name = ?", (store.artifact_root, store.experiment)
        )
        # Runs' artifacts, and (MLflow 3) logged models' artifacts, kept under the experiment's folder.
        for table, key, column in (("runs", "run_uuid", "artifact_uri"), ("logged_models", "model_id", "artifact_location")):
            for identity, location in connection.execute(f"SELECT {key}, {column} FROM {table}").fetchall():
                if location and location.startswith(recorded):
                    moved = store.artifact_root + location[len(recorded):]
                    connection.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (moved, identity))


def _quiet_mlflow() -> None:
    # MLflow sets its logger to INFO when imported and then announces schema migrations
    # and experiment creation on every stage start; only warnings matter here.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _quoted(value: str) -> str:
    return str(value).replace("'", "\\'")


def _param_value(value: Any) -> str:
    # Lists such as network.hidden are logged as "[256, 128]"; None as "null", like params.yaml.
    if value is None:
        return "null"
    return str(value)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


if __name__ == "__main__":
    import argparse

    from aebench.common.config import load_params
    from aebench.common.files import workspace_of

    parser = argparse.ArgumentParser(description="print the MLflow UI address of the study's training runs")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="where the UI will listen")
    options = parser.parse_args()
    loaded = load_params(options.params)
    store = open_store(loaded.mlflow.tracking_uri, loaded.mlflow.experiment, workspace=workspace_of(options.params))
    experiment = store.client().get_experiment_by_name(store.experiment)
    print(f"MLflow runs of {store.experiment}: {runs_url(options.url, experiment.experiment_id)}")
