"""MLflow: one run per model with flat params, tags, per-epoch metrics and the checkpoint;
runs always closed; the default sqlite store and a live `mlflow server` on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aebench.common.config import flatten, load_params
from aebench.common.errors import TrainingDiverged
from aebench.common.tracking import RunSpec, run_status, tracked_run
from aebench.data import PreparedData, save_prepared
from aebench.models import build_model, load_model, resolved_config
from aebench.training import TrainingPaths, train_model

mlflow_client = pytest.importorskip("mlflow.tracking")

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def tiny_config(kind: str, epochs: int = 2) -> dict:
    config = resolved_config(load_params(REPO / "params.yaml"), dataset="mnist", model=kind, latent_dim=2)
    config["model"]["hidden"] = [32]
    config["train"].update(epochs=epochs, batch_size=64)
    return config


@pytest.fixture(scope="module")
def images():
    generator = torch.Generator().manual_seed(7)
    return torch.rand(256, 1, 28, 28, generator=generator), torch.rand(64, 1, 28, 28, generator=generator)


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def spec(uri: str, name: str, experiment: str = "aebench-test") -> RunSpec:
    return RunSpec(tracking_uri=uri, experiment=experiment, run_name=name,
                   tags={"dataset": "mnist", "model": name, "latent_dim": "2", "dvc_stage": f"train@mnist-{name}-2"})


def train(config, images, folder: Path, run: RunSpec | None, model=None):
    torch.manual_seed(config["seed"])
    model = model or build_model(config)
    paths = TrainingPaths(checkpoint=folder / "m.pt", history=folder / "h.csv", resume=folder / "resume.pt")
    train_model(model, train_images=images[0], val_images=images[1], paths=paths, device=CPU, run=run)
    return paths


def test_each_model_is_one_finished_run_with_comparable_params(sqlite_uri, images, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    client = mlflow_client.MlflowClient(tracking_uri=sqlite_uri)
    run_params = {}
    for kind in ("ae", "vae"):
        config = tiny_config(kind)
        paths = train(config, images, tmp_path / kind, spec(sqlite_uri, kind))
        run_id = load_model(paths.checkpoint).mlflow_run_id
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == kind
        expected = {name: "null" if value is None else str(value) for name, value in flatten(config).items()}
        assert run.data.params == expected
        assert run.data.params["model.hidden"] == "[32]"
        assert run.data.tags["dvc_stage"] == f"train@mnist-{kind}-2"
        assert run.data.tags["model"] == kind
        history = client.get_metric_history(run_id, "train_loss")
        assert [m.step for m in history] == [1, 2]
        assert [m.value for m in history] == [float(line.split(",")[2]) for line in paths.history.read_text().splitlines()[1:]]
        artifacts = [a.path for a in client.list_artifacts(run_id, "checkpoint")]
        assert artifacts == ["checkpoint/m.pt"]
        run_params[kind] = set(run.data.params)
        # Artifacts sit beside the sqlite database, not in the working directory.
        database_folder = Path(sqlite_uri.removeprefix("sqlite:///")).parent
        stored = database_folder / "mlruns" / "aebench-test" / run_id / "artifacts" / "checkpoint" / "m.pt"
        assert stored.read_bytes() == paths.checkpoint.read_bytes()
    assert run_params["ae"] == run_params["vae"]  # the compare view lines every param up
    assert not (tmp_path / "mlruns").exists()


def test_errors_and_ctrl_c_never_leave_a_run_running(sqlite_uri):
    with pytest.raises(ValueError):
        with tracked_run(spec(sqlite_uri, "failing")) as run:
            raise ValueError("boom")
    assert run_status(sqlite_uri, run.run_id) == "FAILED"
    with pytest.raises(KeyboardInterrupt):
        with tracked_run(spec(sqlite_uri, "interrupted")) as run:
            raise KeyboardInterrupt
    assert run_status(sqlite_uri, run.run_id) == "KILLED"


def test_diverged_training_marks_its_run_failed(sqlite_uri, images, tmp_path):
    config = tiny_config("vae")
    config["train"]["lr"] = 1e12
    config["model"]["likelihood"] = "gaussian"
    config["train"]["epochs"] = 4
    with pytest.raises(TrainingDiverged):
        train(config, images, tmp_path, spec(sqlite_uri, "diverged", experiment="diverging"))
    client = mlflow_client.MlflowClient(tracking_uri=sqlite_uri)
    experiment = client.get_experiment_by_name("diverging")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"


def test_resumed_training_finishes_the_same_run(sqlite_uri, images, tmp_path):
    config = tiny_config("emae", epochs=3)
    torch.manual_seed(config["seed"])
    model = build_model(config)
    original, calls = model.loss_terms, []

    def interrupt_in_epoch_3(x, *, generator=None):
        if model.training:
            calls.append(1)
            if len(calls) == 9:  # 4 steps per epoch
                raise KeyboardInterrupt
        return original(x, generator=generator)

    model.loss_terms = interrupt_in_epoch_3
    run = spec(sqlite_uri, "resumed", experiment="resuming")
    with pytest.raises(KeyboardInterrupt):
        train(config, images, tmp_path, run, model=model)
    paths = train(config, images, tmp_path, run)

    client = mlflow_client.MlflowClient(tracking_uri=sqlite_uri)
    (only,) = client.search_runs([client.get_experiment_by_name("resuming").experiment_id])
    assert only.info.run_id == load_model(paths.checkpoint).mlflow_run_id
    assert only.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(only.info.run_id, "val_loss")] == [1, 2, 3]


# --- a live tracking server ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    process = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=folder,  # artifacts are proxied to ./mlartifacts here
        stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
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
            time.sleep(0.5)
        yield uri, folder
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the server and its uvicorn worker, nothing else
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_train_stage_logs_to_a_live_tracking_server(server_uri, tmp_path, monkeypatch):
    uri, server_folder = server_uri
    generator = np.random.default_rng(0)
    splits = {"train": 256, "val": 64, "test": 64}
    save_prepared(tmp_path / "mnist.npz", PreparedData(
        images={s: generator.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in splits.items()},
        labels={s: generator.integers(0, 10, n).astype(np.int64) for s, n in splits.items()},
    ))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["hidden"] = [32]
    params["train"].update(epochs=2, batch_size=64)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    sys.path.insert(0, str(REPO / "stages"))
    try:
        import train as train_stage
    finally:
        sys.path.remove(str(REPO / "stages"))
    train_stage.main([
        "--dataset", "mnist", "--model", "vae", "--latent-dim", "2", "--data", "mnist.npz",
        "--checkpoint", "models/mnist/vae-2.pt", "--history", "history/mnist/vae-2.csv",
        "--resume", ".cache/resume/mnist/vae-2.pt",
    ])

    run_id = load_model(tmp_path / "models/mnist/vae-2.pt").mlflow_run_id
    client = mlflow_client.MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == params["mlflow"]["experiment"]
    tags = run.data.tags
    assert (tags["dataset"], tags["model"], tags["latent_dim"]) == ("mnist", "vae", "2")
    assert tags["dvc_stage"] == "train@mnist-vae-2"
    assert tags["git_commit"]
    assert run.data.params["model.name"] == "vae" and run.data.params["train.epochs"] == "2"
    assert [m.step for m in client.get_metric_history(run_id, "val_kl")] == [1, 2]
    assert not (tmp_path / "mlflow.db").exists()  # the environment's server, not the params' sqlite file
    # The checkpoint went through the server to its artifact store and comes back intact.
    downloaded = client.download_artifacts(run_id, "checkpoint/vae-2.pt", str(tmp_path / "download"))
    assert Path(downloaded).read_bytes() == (tmp_path / "models/mnist/vae-2.pt").read_bytes()
    assert list(server_folder.glob("mlartifacts/**/vae-2.pt"))
    assert not (tmp_path / ".cache/resume/mnist/vae-2.pt").exists()


def test_killed_stage_closes_its_run_and_the_rerun_finishes_it(tmp_path):
    """SIGTERM (what a job runner or `kill` sends) mid-training, then the same command again."""
    generator = np.random.default_rng(1)
    splits = {"train": 256, "val": 64, "test": 64}
    save_prepared(tmp_path / "mnist.npz", PreparedData(
        images={s: generator.integers(0, 256, (n, 28, 28), dtype=np.uint8) for s, n in splits.items()},
        labels={s: generator.integers(0, 10, n).astype(np.int64) for s, n in splits.items()},
    ))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["model"]["hidden"] = [16]
    params["train"].update(epochs=30, batch_size=64)
    params["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, str(REPO / "stages" / "train.py"), "--dataset", "mnist", "--model", "ae",
               "--latent-dim", "2", "--data", "mnist.npz", "--checkpoint", "m.pt", "--history", "h.csv",
               "--resume", "resume.pt"]
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"OMP_NUM_THREADS": "1"}

    stage = subprocess.Popen(command, cwd=tmp_path, env=environment, stderr=subprocess.PIPE, text=True)
    for line in stage.stderr:  # plain progress lines: one per finished epoch
        if "epoch 1/30" in line:
            stage.send_signal(signal.SIGTERM)
            break
    stage.stderr.read()
    assert stage.wait(timeout=60) == 130
    assert not (tmp_path / "m.pt").exists()
    assert (tmp_path / "resume.pt").is_file()
    client = mlflow_client.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    (killed,) = client.search_runs([client.get_experiment_by_name(params["mlflow"]["experiment"]).experiment_id])
    assert killed.info.status == "KILLED"

    rerun = subprocess.run(command, cwd=tmp_path, env=environment, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming from resume.pt" in rerun.stderr
    assert load_model(tmp_path / "m.pt").mlflow_run_id == killed.info.run_id
    assert client.get_run(killed.info.run_id).info.status == "FINISHED"
    assert len((tmp_path / "h.csv").read_text().splitlines()) == 1 + 30
    assert not (tmp_path / "resume.pt").exists()
