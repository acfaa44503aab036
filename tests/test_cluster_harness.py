"""A 2-point sweep through SLURM, DVC experiments and MLflow, for real, on this machine.

`local_cluster` (tests/local_cluster.py) starts munge + a one-node SLURM,
PostgreSQL and an `mlflow server` on 127.0.0.1. A dummy DVC project (one stage:
score = offset + lr, where offset.txt comes from the DVC remote) is pushed to a
bare Git remote and a local-directory DVC remote, and `cluster/sweep.sbatch`
runs the grid as a 2-task job array. The test then checks what a collector
sees: both experiments through `dvc exp pull` with their metrics, their data
in the DVC remote, both MLflow runs on the server with their artifacts in the
shared artifact root, and no daemon process left behind.

Skipped with a reason when SLURM, munge, PostgreSQL or psycopg2 is missing,
except in CI (env CI set), where that fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from local_cluster import (LocalCluster, finished_array_tasks, harness_processes, local_cluster, missing_requirements,
                           no_leftover_processes, processes_in)

REPO = Path(__file__).resolve().parents[1]
SWEEP_SCRIPT = REPO / "cluster" / "sweep.sbatch"
VENV_BIN = Path(sys.executable).parent  # dvc, mlflow and python of this environment
SWEEP_TIMEOUT_S = 180  # the two tasks take about 15 s together on 2 cores

OFFSET = 1.5  # in sweep/offset.txt, tracked by DVC: the tasks only have it through `dvc pull`
GRID = {"lr-small": 0.1, "lr-large": 0.5}  # experiment name -> train.lr
MLFLOW_EXPERIMENT = "dummy-sweep"

DUMMY_STAGE = '''\
"""Dummy sweep stage: score = offset + lr; writes model.txt and metrics.json, logs one MLflow run."""
import json
import os

import mlflow
import yaml

with open("params.yaml") as f:
    lr = yaml.safe_load(f)["train"]["lr"]
with open("offset.txt") as f:
    score = float(f.read()) + lr
with open("model.txt", "w") as f:
    f.write(f"lr={lr}\\n")
with open("metrics.json", "w") as f:
    json.dump({"score": score}, f)

# Pass the experiment's id on: when two tasks create the experiment at once, the
# loser's set_experiment returns it without making it active (MLflow 3.17), and
# a bare start_run() would log into the Default experiment.
experiment = mlflow.set_experiment("%s")
with mlflow.start_run(experiment_id=experiment.experiment_id, run_name=os.environ["DVC_EXP_NAME"]):
    mlflow.log_param("lr", lr)
    mlflow.log_metric("score", score)
    mlflow.log_artifact("model.txt")  # DVC_EXP_NAME: set by `dvc exp run`
''' % MLFLOW_EXPERIMENT

DUMMY_PIPELINE = """\
stages:
  train:
    cmd: python train.py
    params:
      - train.lr
    deps:
      - train.py
      - offset.txt
    outs:
      - model.txt
    metrics:
      - metrics.json:
          cache: false
"""


@pytest.fixture
def requirements():
    missing = missing_requirements()
    if missing:
        reason = "the local SLURM/PostgreSQL/MLflow harness needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def run(*argv: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, argv))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def publish_dummy_project(root: Path, *, git_remote: Path, dvc_store: Path, env: dict[str, str]) -> str:
    """The dummy project, committed and pushed to both remotes; returns its commit."""
    dev = root / "dev"
    (dev / "sweep").mkdir(parents=True)
    (dev / "sweep" / "train.py").write_text(DUMMY_STAGE)
    (dev / "sweep" / "dvc.yaml").write_text(DUMMY_PIPELINE)
    (dev / "sweep" / "params.yaml").write_text("train:\n  lr: 0.01\n")
    (dev / "sweep" / "offset.txt").write_text(f"{OFFSET}\n")
    run("git", "init", "--quiet", "--bare", "--initial-branch=main", git_remote, cwd=root)
    for argv in (("git", "init", "--quiet", "--initial-branch=main"),
                 ("git", "config", "user.name", "test"), ("git", "config", "user.email", "test@localhost"),
                 ("dvc", "init", "--quiet"), ("dvc", "add", "--quiet", "sweep/offset.txt"),
                 ("git", "add", "--all"), ("git", "commit", "--quiet", "--message", "dummy sweep project"),
                 ("git", "remote", "add", "origin", git_remote), ("git", "push", "--quiet", "origin", "main"),
                 ("dvc", "remote", "add", "--local", "store", dvc_store), ("dvc", "push", "--quiet", "-r", "store")):
        run(*argv, cwd=dev, env=env)
    return run("git", "rev-parse", "HEAD", cwd=dev).strip()


def test_sweep_runs_as_slurm_array_and_is_collected(requirements, tmp_path):
    before = set(harness_processes())
    # Leaving this block stops every daemon; local_cluster fails if one of its processes is left.
    with local_cluster(tmp_path / "mlartifacts") as cluster:
        print(f"harness start seconds: {cluster.start_seconds}")
        run_and_collect_sweep(cluster, tmp_path)
    left = {key: desc for key, desc in harness_processes().items() if key not in before}
    assert left == {}, "munged/slurmctld/slurmd/slurmstepd/postgres/mlflow processes left behind"


def run_and_collect_sweep(cluster: LocalCluster, tmp_path: Path) -> None:
    env = {**os.environ, **cluster.env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache")}  # not /var/tmp/dvc
    git_remote, dvc_store, scratch, logs = (tmp_path / "remote.git", tmp_path / "dvc-store",
                                            tmp_path / "scratch", tmp_path / "logs")
    commit = publish_dummy_project(tmp_path, git_remote=git_remote, dvc_store=dvc_store, env=env)
    grid = tmp_path / "grid.txt"
    grid.write_text("# name    parameters\n\n"
                    f"lr-small  -S sweep/params.yaml:train.lr={GRID['lr-small']}\n"
                    f"lr-large  --set-param sweep/params.yaml:train.lr={GRID['lr-large']}\n")

    sweep_env = {**env, "SWEEP_GRID": str(grid), "SWEEP_GIT_REMOTE": str(git_remote), "SWEEP_GIT_REV": commit,
                 "SWEEP_DVC_REMOTE_URL": str(dvc_store), "SWEEP_SCRATCH": str(scratch),
                 "SWEEP_TARGETS": "sweep/dvc.yaml"}
    logs.mkdir()  # SLURM does not create the folder of --output
    sbatch = subprocess.run(["sbatch", "--wait", "--array=0-1", "--time=5", f"--output={logs}/sweep-%A_%a.log",
                             str(SWEEP_SCRIPT)], cwd=tmp_path, env=sweep_env, capture_output=True, text=True,
                            timeout=SWEEP_TIMEOUT_S)
    task_logs = "\n".join(f"--- {log.name}:\n{log.read_text()}" for log in sorted(logs.iterdir()))
    assert sbatch.returncode == 0, f"sbatch: {sbatch.stdout}{sbatch.stderr}\n{task_logs}"
    job_id = re.search(r"Submitted batch job (\d+)", sbatch.stdout).group(1)

    # Both array tasks completed with exit code 0, each in its own checkout, removed afterwards.
    assert finished_array_tasks(cluster.env, job_id) == {0: ("COMPLETED", "0:0"), 1: ("COMPLETED", "0:0")}
    for task, name in enumerate(GRID):
        log = (logs / f"sweep-{job_id}_{task}.log").read_text()
        assert f"done: experiment {name} " in log, log
    assert list(scratch.iterdir()) == []
    # Nothing the tasks started outlives them.
    assert processes_in(tmp_path) == {}
    assert [desc for desc in harness_processes().values() if desc.startswith("slurmstepd ")] == []

    # A collector sees both experiments, with their params and metrics, through the Git remote.
    collect = tmp_path / "collect"
    run("git", "clone", "--quiet", git_remote, collect, cwd=tmp_path, env=env)
    run("dvc", "remote", "add", "--local", "store", dvc_store, cwd=collect, env=env)
    run("dvc", "exp", "pull", "-r", "store", "origin", cwd=collect, env=env)
    baseline, = [row for row in json.loads(run("dvc", "exp", "show", "--json", cwd=collect, env=env))
                 if row["rev"] == commit]
    experiments = {exp["name"]: exp["revs"][0]["data"] for exp in baseline["experiments"]}
    assert sorted(experiments) == sorted(GRID)
    for name, lr in GRID.items():
        data = experiments[name]
        assert data["params"]["sweep/params.yaml"]["data"]["train"]["lr"] == lr
        assert data["metrics"]["sweep/metrics.json"]["data"]["score"] == pytest.approx(OFFSET + lr)
        # `dvc push` put the experiment's output in the DVC remote.
        md5 = data["outs"]["sweep/model.txt"]["hash"]
        assert (dvc_store / "files" / "md5" / md5[:2] / md5[2:]).is_file(), name
    run("dvc", "exp", "apply", "lr-large", cwd=collect, env=env)
    run("dvc", "pull", "-r", "store", cwd=collect, env=env)
    assert (collect / "sweep" / "model.txt").read_text() == f"lr={GRID['lr-large']}\n"

    # Both MLflow runs are on the server, their artifacts in the shared artifact root.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cluster.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(GRID)
    assert client.search_runs(["0"]) == []  # nothing strayed into the Default experiment
    for name, lr in GRID.items():
        mlflow_run = runs[name]
        assert mlflow_run.info.status == "FINISHED"
        assert mlflow_run.data.params == {"lr": str(lr)}
        assert mlflow_run.data.metrics == {"score": pytest.approx(OFFSET + lr)}
        artifact = cluster.artifact_root / experiment.experiment_id / mlflow_run.info.run_id / "artifacts" / "model.txt"
        assert artifact.read_text() == f"lr={lr}\n"


def test_leftover_check_kills_and_names_a_process_left_running(tmp_path):
    with pytest.raises(AssertionError, match=r"processes left behind \(now killed\):\n  pid \d+: sleep sleep 60"):
        with no_leftover_processes(tmp_path, grace_s=0.5):
            left = subprocess.Popen(["sleep", "60"], cwd=tmp_path)
    assert left.wait(timeout=5) == -signal.SIGKILL
