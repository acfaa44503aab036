"""MLflow: where the store is, a copied workspace's own artifacts, runs that always close, finding runs by
tags, the training run of a replicate (reused or closed), and the evaluation's run lookup."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import numpy as np
import torch
from helpers import make_model, new_store, seed_store, tiny_config, tiny_raw, write_params, write_prepared_file
from report_inputs import metrics_payload

from aebench.common.config import flatten
from aebench.common.layout import ModelKey
from aebench.common.tracking import (
    CHECKPOINT_TAG,
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    REPLICATE_TAG,
    OpenRuns,
    RunSpec,
    TrackingError,
    find_runs,
    open_run,
    open_store,
    preflight,
    resolve_tracking_uri,
    tracked_run,
)
from aebench.evaluation.tracking import log_evaluation, training_run_id
from aebench.models.checkpoint import load_model, save_checkpoint
from aebench.models.logged_model import log_trained_model, logged_model_id
from aebench.training.tracking import RESUME_KEY_TAG, finish_training_run, open_training_run
from aebench.training.trainer import TrainingResult

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def run_status(store, run_id: str) -> str:
    return store.client().get_run(run_id).info.status


@pytest.fixture(autouse=True)
def no_environment_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the tests that only add runs (each uses its own tags or experiment)."""
    return new_store(tmp_path_factory.mktemp("store"))


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- where the store is ---------------------------------------------------------------


def test_a_relative_sqlite_uri_is_the_workspaces_not_the_current_directorys(tmp_path, monkeypatch):
    workspace, elsewhere = tmp_path / "ws", tmp_path / "elsewhere"
    elsewhere.mkdir()
    seed_store(workspace)
    monkeypatch.chdir(elsewhere)
    store = open_store("sqlite:///mlflow.db", "aebench", workspace=workspace)
    assert store.uri == f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    assert store.artifact_root == (workspace.resolve() / "mlruns" / "aebench").as_uri()
    assert list(elsewhere.iterdir()) == []


def test_resolving_keeps_absolute_memory_and_server_uris(tmp_path, monkeypatch):
    resolved = resolve_tracking_uri("sqlite:///db/m.db?timeout=5", tmp_path)
    assert resolved == f"sqlite:///{tmp_path / 'db' / 'm.db'}?timeout=5"
    assert resolve_tracking_uri("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert resolve_tracking_uri("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"
    assert resolve_tracking_uri("http://host:5000", tmp_path) == "http://host:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///from-env.db")
    assert resolve_tracking_uri("sqlite:///mlflow.db", tmp_path) == f"sqlite:///{tmp_path / 'from-env.db'}"


def test_a_new_experiment_is_created_as_custom_model_development(store):
    client = store.client()
    experiment = client.get_experiment_by_name("aebench")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    assert experiment.artifact_location == store.artifact_root


def test_an_existing_untagged_or_deleted_experiment_is_put_right(store):
    client = store.client()
    untagged = client.create_experiment("made-by-hand")
    deleted = client.create_experiment("deleted-by-hand")
    client.delete_experiment(deleted)
    for name, experiment_id in (("made-by-hand", untagged), ("deleted-by-hand", deleted)):
        open_store(store.uri, name, workspace=store.workspace)
        experiment = client.get_experiment(experiment_id)
        assert experiment.lifecycle_stage == "active"
        assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def test_an_experiment_name_becomes_a_safe_artifact_folder(store):
    other = open_store(store.uri, "my study/2 (draft)", workspace=store.workspace)
    assert other.artifact_root == (store.workspace / "mlruns" / "my_study_2__draft_").as_uri()


def test_a_copied_workspace_logs_artifacts_into_its_own_store(tmp_path):
    original = tmp_path / "original"
    store = new_store(original)
    (original / "model.pt").write_bytes(b"weights")
    with tracked_run(store, RunSpec("first")) as run:
        run.log_artifact(original / "model.pt", "checkpoint")
        model_id = log_trained_model(run.client, run.run_id, make_model(tiny_config("vae")))
    first_id = run.run_id
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = files_under(original)

    copied = open_store("sqlite:///mlflow.db", "aebench", workspace=copy)
    assert copied.artifact_root == (copy / "mlruns" / "aebench").as_uri()
    (copy / "model.pt").write_bytes(b"retrained weights")
    with tracked_run(copied, RunSpec("second")) as run:
        run.log_artifact(copy / "model.pt", "checkpoint")

    assert (copy / "mlruns" / "aebench" / run.run_id / "artifacts" / "checkpoint" / "model.pt").read_bytes() == (
        b"retrained weights")
    assert files_under(original) == before  # the original workspace is untouched
    client = copied.client()
    assert client.get_experiment_by_name("aebench").artifact_location == copied.artifact_root
    assert client.get_run(first_id).info.artifact_uri.startswith(copied.artifact_root)  # old runs moved too
    assert client.get_logged_model(model_id).artifact_location.startswith(copied.artifact_root)  # and their models
    downloaded = client.download_artifacts(first_id, "checkpoint/model.pt", str(tmp_path / "download"))
    assert Path(downloaded).read_bytes() == b"weights"  # found in the copy's own mlruns


def test_an_unreachable_server_is_one_line_naming_it_within_seconds(tmp_path):
    started = time.monotonic()
    with pytest.raises(TrackingError) as caught:
        preflight(UNREACHABLE)
    assert time.monotonic() - started < 15
    message = str(caught.value)
    assert message.startswith(f"MLflow server {UNREACHABLE} unreachable (") and "\n" not in message
    started = time.monotonic()
    with pytest.raises(TrackingError, match=f"^MLflow server {UNREACHABLE} unreachable"):
        open_store(UNREACHABLE, "aebench", workspace=tmp_path)
    assert time.monotonic() - started < 15
    assert list(tmp_path.iterdir()) == []


@contextlib.contextmanager
def http_server(status: int, *, api_hangs: threading.Event | None = None):
    """A local server answering every GET with `status`: a stand-in for a tracking server's /health.

    With `api_hangs`, requests under /api/ get no answer until that event is set (a stuck store).
    """
    paths = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            paths.append(self.path)
            if api_hangs is not None and self.path.startswith("/api/"):
                api_hangs.wait(60)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", paths
    finally:
        server.shutdown()
        server.server_close()


def test_preflight_passes_a_server_whose_health_answers():
    with http_server(200) as (uri, paths):
        preflight(uri)
        preflight(uri + "/")
    assert paths == ["/health", "/api/2.0/mlflow/experiments/search?max_results=1"] * 2


def test_a_server_that_listens_but_is_not_healthy_is_one_line_naming_its_health_url():
    with http_server(503) as (uri, _):
        with pytest.raises(TrackingError) as caught:
            preflight(uri)
    message = str(caught.value)
    assert message.startswith(f"MLflow server {uri} does not answer {uri}/health (HTTP Error 503")
    assert "\n" not in message


def test_a_server_whose_health_answers_but_whose_api_hangs_is_one_line_within_seconds(tmp_path):
    release = threading.Event()
    try:
        with http_server(200, api_hangs=release) as (uri, _):
            started = time.monotonic()
            with pytest.raises(TrackingError) as caught:
                open_store(uri, "aebench", workspace=tmp_path)
            assert time.monotonic() - started < 15
            release.set()
    finally:
        release.set()
    assert str(caught.value) == (f"MLflow server {uri} answers {uri}/health but not its API "
                                 f"({uri}/api/2.0/mlflow/experiments/search?max_results=1: no answer within 10 s)")


def test_preflight_leaves_a_missing_sqlite_file_for_mlflow_to_create(tmp_path):
    preflight(f"sqlite:///{tmp_path / 'none.db'}")
    assert list(tmp_path.iterdir()) == []


def test_garbage_in_the_sqlite_store_is_one_line_naming_it(tmp_path):
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"this is not a database, just bytes " * 100)
    with pytest.raises(TrackingError) as caught:
        open_store("sqlite:///mlflow.db", "aebench", workspace=tmp_path)
    assert str(caught.value) == f"MLflow store {database}: file is not a database"


def test_a_sqlite_store_another_process_holds_locked_is_one_line_after_a_bounded_wait(tmp_path):
    database = tmp_path / "mlflow.db"
    open_store("sqlite:///mlflow.db", "aebench", workspace=tmp_path)  # a real store
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; db = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "db.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)", str(database)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(TrackingError) as caught:
            preflight(f"sqlite:///{database}", lock_wait=1)
        assert 1 <= time.monotonic() - started < 5
    finally:
        holder.kill()
        holder.wait()
    assert str(caught.value) == (f"MLflow store {database}: database is locked: another process holds it; "
                                 "waited 1 s")
    preflight(f"sqlite:///{database}", lock_wait=1)  # free again once the other process is gone


# --- runs -----------------------------------------------------------------------------------


def test_runs_always_close_finished_failed_or_killed(store):
    with tracked_run(store, RunSpec("fine")) as run:
        pass
    assert run_status(store, run.run_id) == "FINISHED"
    with pytest.raises(ValueError):
        with tracked_run(store, RunSpec("failing")) as run:
            raise ValueError("boom")
    assert run_status(store, run.run_id) == "FAILED"
    with pytest.raises(KeyboardInterrupt):
        with tracked_run(store, RunSpec("interrupted")) as run:
            raise KeyboardInterrupt
    assert run_status(store, run.run_id) == "KILLED"


def test_a_run_is_continued_by_its_find_tags_and_otherwise_new(store):
    tags = {"k": "continued"}
    with tracked_run(store, RunSpec("first", tags=tags, find=tags, config={"lr": 1})) as first:
        assert not first.resumed
    with tracked_run(store, RunSpec("again", tags=tags, find=tags, config={"lr": 2})) as again:
        assert again.resumed and again.run_id == first.run_id
    assert run_status(store, first.run_id) == "FINISHED"
    assert store.client().get_run(first.run_id).data.params == {"lr": "1"}  # a continued run keeps its config
    with tracked_run(store, RunSpec("unfound", tags=tags, find={"k": "nobody's"})) as unfound:
        assert not unfound.resumed
    with tracked_run(store, RunSpec("no find", tags=tags)) as unsought:
        assert not unsought.resumed and unsought.run_id not in (first.run_id, unfound.run_id)


def test_runs_found_but_not_continued_are_closed_killed_only_when_running(store):
    tags = {"k": "stale"}
    finished = open_run(store, RunSpec("finished", tags=tags))
    finished.end()
    running = open_run(store, RunSpec("left running", tags=tags))
    fresh = open_run(store, RunSpec("fresh", tags=tags, find=tags, reusable=lambda run: False))
    assert not fresh.resumed
    assert run_status(store, running.run_id) == "KILLED"
    assert run_status(store, finished.run_id) == "FINISHED"
    assert run_status(store, fresh.run_id) == "RUNNING"
    fresh.end("FAILED")


def test_open_runs_ends_only_the_runs_still_open_by_the_blocks_outcome(store):
    with pytest.raises(KeyboardInterrupt):
        with OpenRuns() as runs:
            done = runs.add(open_run(store, RunSpec("done early")))
            left = runs.add(open_run(store, RunSpec("left open")))
            done.end("FINISHED")
            raise KeyboardInterrupt
    assert run_status(store, done.run_id) == "FINISHED" and run_status(store, left.run_id) == "KILLED"
    with pytest.raises(RuntimeError):
        with OpenRuns() as runs:
            failing = runs.add(open_run(store, RunSpec("failing")))
            raise RuntimeError("boom")
    assert run_status(store, failing.run_id) == "FAILED"


def test_config_is_logged_flat_with_lists_and_nulls_as_in_params(store):
    config = {"train": {"lr": 0.001}, "network": {"hidden": [32, 16]}, "data": {"subset": None}}
    with tracked_run(store, RunSpec("config")) as run:
        run.log_config(config)
    params = store.client().get_run(run.run_id).data.params
    assert params == {"train.lr": "0.001", "network.hidden": "[32, 16]", "data.subset": "null"}


def test_more_metrics_than_one_batch_are_all_logged(store):
    metrics = {f"m{i:04d}": float(i) for i in range(1500)}
    with tracked_run(store, RunSpec("many")) as run:
        run.log_metrics(metrics, step=3)
    logged = store.client().get_run(run.run_id).data.metrics
    assert len(logged) == 1500 and logged["m1499"] == 1499.0


def test_find_runs_by_tags_newest_first(store):
    ids = []
    for index, tags in enumerate([{"who": "a", "seed": "0"}, {"who": "a", "seed": "1"}, {"who": "b", "seed": "0"}]):
        with tracked_run(store, RunSpec(f"find-{index}", tags=tags)) as run:
            ids.append(run.run_id)
        time.sleep(0.01)  # distinct start times
    assert [r.info.run_id for r in find_runs(store, {"who": "a"})] == [ids[1], ids[0]]
    assert [r.info.run_id for r in find_runs(store, {"who": "a", "seed": "0"})] == [ids[0]]
    assert find_runs(store, {"who": "nobody's"}) == []
    assert find_runs(dataclasses.replace(store, experiment="no such experiment"), {"who": "a"}) == []


# --- the training run of a replicate ---------------------------------------------------------


def training_tags(name: str) -> dict[str, str]:
    return {REPLICATE_TAG: name, "dataset": "mnist", "variant": "vae", "latent_dim": "2", "seed": "0"}


def test_a_training_run_carries_its_config_tags_and_resume_key(store):
    config = tiny_config("vae")
    run = open_training_run(store, run_name="tr-new", config=config, resume_key="key-1", tags=training_tags("tr-new"))
    assert not run.resumed
    logged = store.client().get_run(run.run_id)
    assert logged.info.status == "RUNNING" and logged.info.run_name == "tr-new"
    assert logged.data.params == {k: "null" if v is None else str(v) for k, v in flatten(config).items()}
    assert logged.data.tags[RESUME_KEY_TAG] == "key-1" and logged.data.tags[REPLICATE_TAG] == "tr-new"


def test_a_running_run_of_the_same_replicate_and_key_is_reused(store):
    config = tiny_config("vae")
    first = open_training_run(store, run_name="tr-same", config=config, resume_key="k", tags=training_tags("tr-same"))
    again = open_training_run(store, run_name="tr-same", config=config, resume_key="k", tags=training_tags("tr-same"))
    assert again.resumed and again.run_id == first.run_id
    assert run_status(store, first.run_id) == "RUNNING"
    assert len(find_runs(store, {REPLICATE_TAG: "tr-same"})) == 1


def test_a_running_run_under_another_key_is_closed_killed(store):
    """Fault case 4: a stage killed (kill -9) under old params leaves a RUNNING run nothing will resume."""
    config = tiny_config("vae")

    def run_of(name: str, key: str):
        return open_training_run(store, run_name=name, config=config, resume_key=key, tags=training_tags(name))

    stale, other = run_of("tr-key", "old"), run_of("tr-other", "old")
    fresh = run_of("tr-key", "new")
    assert not fresh.resumed and fresh.run_id != stale.run_id
    assert run_status(store, stale.run_id) == "KILLED"
    assert run_status(store, fresh.run_id) == "RUNNING"
    assert run_status(store, other.run_id) == "RUNNING"  # another replicate's run is not touched


def test_a_finished_run_is_never_reused(store):
    config = tiny_config("vae")
    with tracked_run(store, RunSpec("tr-done", tags={**training_tags("tr-done"), RESUME_KEY_TAG: "k"})) as done:
        pass
    fresh = open_training_run(store, run_name="tr-done", config=config, resume_key="k", tags=training_tags("tr-done"))
    assert fresh.run_id != done.run_id and run_status(store, done.run_id) == "FINISHED"


def finished_training_run(store, tmp_path, name: str, variant: str = "vae"):
    """A training run finished on a freshly initialised model's checkpoint: 3 epochs, resumed after the first."""
    checkpoint = tmp_path / "seed-0.pt"
    save_checkpoint(checkpoint, make_model(tiny_config(variant)), epochs_done=3)
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    history = [{"epoch": e, "train_loss": 10.0 / e, "val_loss": 11.0 / e} for e in (1, 2, 3)]
    result = TrainingResult(history=history, epoch_seconds=[0.5, 0.7], checkpoint_sha256=sha)
    run = open_training_run(store, run_name=name, config=tiny_config(variant), resume_key="k",
                            tags=training_tags(name))
    finish_training_run(run, result, checkpoint=checkpoint)
    return run, checkpoint, sha


def test_finishing_logs_each_epoch_the_checkpoint_and_its_sha256(store, tmp_path):
    run, _, sha = finished_training_run(store, tmp_path, "tr-fin")
    client = store.client()
    logged = client.get_run(run.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags[CHECKPOINT_TAG] == sha
    losses = client.get_metric_history(run.run_id, "train_loss")
    assert [(m.step, m.value) for m in losses] == [(1, 10.0), (2, 5.0), (3, 10.0 / 3)]
    seconds = client.get_metric_history(run.run_id, "epoch_seconds")
    assert [(m.step, m.value) for m in seconds] == [(2, 0.5), (3, 0.7)]  # only the epochs trained in this process
    assert "epoch" not in logged.data.metrics
    assert [a.path for a in client.list_artifacts(run.run_id, "checkpoint")] == ["checkpoint/seed-0.pt"]
    assert training_run_id(store, "tr-fin", sha) == run.run_id


@pytest.mark.parametrize("variant", ["vae", "ae"])
def test_the_run_logs_its_model_which_mlflow_loads_as_the_checkpoints_autoencoder(store, tmp_path, variant,
                                                                                   monkeypatch):
    import mlflow.pyfunc
    import mlflow.pytorch

    run, checkpoint, _ = finished_training_run(store, tmp_path, f"tr-model-{variant}", variant)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)  # how a user points MLflow's API at the store
    client = store.client()
    model_id = logged_model_id(client, run.run_id)
    assert [output.model_id for output in client.get_run(run.run_id).outputs.model_outputs] == [model_id]
    logged = client.get_logged_model(model_id)
    assert (logged.source_run_id, logged.experiment_id) == (run.run_id, client.get_run(run.run_id).info.experiment_id)
    assert logged.name == f"tr-model-{variant}"  # the UI's model list names each as its run
    assert logged.params["variant.name"] == variant and logged.tags["aebench.replicate"] == f"tr-model-{variant}"
    # The last epoch's metrics are the model's too.
    assert {(m.key, m.step, m.value) for m in logged.metrics} == {("train_loss", 3, 10.0 / 3), ("val_loss", 3, 11.0 / 3),
                                                                  ("epoch_seconds", 3, 0.7)}
    # Artifacts beside the workspace's database, like the runs'.
    assert logged.artifact_location.startswith(store.artifact_root + "/models/")

    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    ours = load_model(checkpoint)
    loaded = mlflow.pytorch.load_model(f"models:/{model_id}")
    assert type(loaded) is type(ours) and loaded.config == ours.config
    assert torch.equal(loaded.encode(x)[0], ours.encode(x)[0])  # the same posterior means: the same weights
    predicted = mlflow.pyfunc.load_model(f"models:/{model_id}").predict(x.numpy())
    assert predicted.shape == (5, 1, 28, 28) and predicted.dtype == np.float32
    assert np.array_equal(predicted, ours.decode_images(ours.encode(x)[0]).detach().numpy())  # reconstructions
    assert 0.0 <= predicted.min() and predicted.max() <= 1.0


def test_the_logged_model_carries_a_signature_and_an_input_example(store, tmp_path, monkeypatch):
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    run, _, _ = finished_training_run(store, tmp_path, "tr-signature")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    folder = download_artifacts(f"models:/{logged_model_id(store.client(), run.run_id)}")
    info = Model.load(folder)
    assert info.signature.inputs.inputs[0].shape == (-1, 1, 28, 28)
    assert info.signature.outputs.inputs[0].shape == (-1, 1, 28, 28)
    example = info.load_input_example(folder)
    assert example.shape == (1, 1, 28, 28) and 0.0 <= example.min() and example.max() <= 1.0


def test_evaluation_metrics_are_the_logged_models_too(store, tmp_path):
    run, checkpoint, _ = finished_training_run(store, tmp_path, "tr-evaluated")
    payload = metrics_payload(ModelKey("mnist", "vae", 2), 0, {"test.recon_bce": 80.5})
    metrics_file = tmp_path / "seed-0.json"
    metrics_file.write_text(json.dumps(payload))
    log_evaluation(store, run.run_id, payload, metrics_file=metrics_file)
    client = store.client()
    logged = client.get_logged_model(logged_model_id(client, run.run_id))
    linked = {(m.key, m.step): m.value for m in logged.metrics}
    assert linked[("test.recon_bce", 0)] == 80.5
    assert [linked[("latent.activity", u)] for u in (0, 1)] == payload["latent"]["activity"]  # series too
    assert client.get_run(run.run_id).data.metrics["test.recon_bce"] == 80.5  # and still the run's


def test_evaluation_finds_the_run_that_wrote_exactly_this_checkpoint(store):
    def finished(name: str, sha: str) -> str:
        with tracked_run(store, RunSpec(name, tags={REPLICATE_TAG: name.split("#")[0], CHECKPOINT_TAG: sha})) as run:
            pass
        time.sleep(0.01)
        return run.run_id

    mine = finished("ev-model#1", "a" * 64)
    finished("ev-model#2", "b" * 64)  # newer, but it wrote another checkpoint
    finished("ev-other#1", "a" * 64)  # the same bytes under another replicate's name
    assert training_run_id(store, "ev-model", "a" * 64) == mine
    assert training_run_id(store, "ev-model", "c" * 64) is None  # trained elsewhere: unknown here


# --- a live tracking server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`mlflow server` on 127.0.0.1 with its own sqlite store, artifacts proxied to its ./mlartifacts."""
    folder = tmp_path_factory.mktemp("server")
    seed_store(folder)  # tables already made: the server starts seconds sooner
    port = free_port()
    log = open(folder / "server.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri",
         f"sqlite:///{folder / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield uri, folder
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its worker, nothing else
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_the_train_stage_logs_to_a_live_tracking_server(server, tmp_path, load_stage, monkeypatch):
    uri, server_folder = server
    root = tmp_path / "ws"
    (root / ".dvc").mkdir(parents=True)
    vae = {"objective": "kl_split", "beta": 1.0, "gamma": 1.0}
    write_params(root / "params.yaml", tiny_raw(variants={"vae": vae}, mlflow__experiment="served"))
    write_prepared_file(root / "data" / "prepared" / "mnist.npz", {"train": 128, "val": 32, "test": 10})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("AEBENCH_WORKERS", "1")
    train_stage = load_stage("train")
    train_stage.main([
        "--prepared", str(root / "data" / "prepared"), "--models", str(root / "models"),
        "--history", str(root / "history"), "--resume", str(root / ".cache" / "resume"),
        "--runinfo", str(root / "runinfo"), "--params", str(root / "params.yaml"),
    ])

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("served")  # created through the server
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "mnist-vae-2-s0"
    assert run.data.params["variant.name"] == "vae" and run.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_kl")] == [1, 2]
    assert not (root / "mlflow.db").exists() and not (root / "mlruns").exists()  # the server, not params' sqlite
    checkpoint = root / "models" / "mnist" / "vae" / "latent-2" / "seed-0.pt"
    assert run.data.tags[CHECKPOINT_TAG] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    # The checkpoint went through the server to its artifact store and comes back intact.
    downloaded = client.download_artifacts(run.info.run_id, "checkpoint/seed-0.pt", str(tmp_path / "download"))
    assert Path(downloaded).read_bytes() == checkpoint.read_bytes()
    assert len(list(server_folder.glob("mlartifacts/**/seed-0.pt"))) == 1
    # So does its logged model, loaded with MLflow's own API.
    import mlflow.pytorch

    loaded = mlflow.pytorch.load_model(f"models:/{logged_model_id(client, run.info.run_id)}")
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.encode(x)[0], load_model(checkpoint).encode(x)[0])
