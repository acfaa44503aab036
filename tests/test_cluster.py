"""The real beta / gamma sweep on a real SLURM, through DVC experiments and an MLflow server on PostgreSQL.

`local_cluster` (tests/local_cluster.py) starts munge + a one-node SLURM
(slurmctld and slurmd on 127.0.0.1, Debian's slurm-wlm), PostgreSQL and
`mlflow server` on 127.0.0.1 (PostgreSQL store, artifacts proxied to a shared
folder). Then, as cluster/sweep.sbatch's header describes:

1. A tiny copy of the project (tests/test_sweep.py's workspace) with a 2-point
   sweep/params.yaml (the VAE and the EM-AE, latent 30, 1 epoch, 500 images,
   seed 0) runs the study's `prepare@mnist` and `classifier@mnist` once,
   commits dvc.lock, pushes to a bare Git remote and `dvc push`es to a
   local-directory DVC remote, so the tasks pull those outputs rather than
   recompute them.
2. The MLflow experiment is created once, before the tasks start.
3. `sbatch --array=0-1 cluster/sweep.sbatch`: each task clones the revision
   into its own folder, pulls, runs its point's stages as a DVC experiment
   named after the point (`dvc exp run -n vae sweep/dvc.yaml:evaluate@mnist-vae`:
   train and evaluate of that point; the grid line names the target), logging
   to the MLflow server, then `dvc exp push origin <point>` and `dvc push`.
4. A collector clone runs `dvc exp pull origin`, `dvc pull`, `dvc exp show
   --json > exp.json` and `stages/sweep_report.py --experiments exp.json`
   against the same server.

Asserted: both array tasks COMPLETED; both points in the sweep report's
table; the FINISHED training runs of both points on the server (with their
evaluation metrics) and the sweep's parent run with two child runs; the
checkpoints in the shared artifact root; and no slurmctld / slurmd / munged /
postgres / mlflow / dvc / stage process left behind.

When SLURM, munge, PostgreSQL or psycopg2 is missing the test is skipped with
the reason, except in CI (env CI set), where that fails. About 2 to 3 minutes
on 2 cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from local_cluster import (LocalCluster, finished_array_tasks, harness_processes, local_cluster, missing_requirements,
                           processes_in)
from study import REPO, commit_lock, dvc, git
from test_sweep import make_sweep_workspace

from aebench.common.config import read_yaml
from aebench.reporting.labels import variant_label

SWEEP_SCRIPT = REPO / "cluster" / "sweep.sbatch"
VENV_BIN = Path(sys.executable).parent  # dvc, mlflow and python of this environment
POINTS = ("vae", "emae")  # the two ends of the gamma line
KNN_K = {"vae": 3, "emae": 7}  # evaluate.knn_k set per point on the grid line (the params file has 5)
LATENT, SUBSET = 30, 500
SWEEP_TIMEOUT_S = 420  # both tasks take about 1.5 minutes together on 2 cores
REPORT = ("--figures", "reports/sweep/figures", "--markdown", "reports/sweep/report.md",
          "--html", "reports/sweep/report.html")


@pytest.fixture
def requirements():
    missing = missing_requirements()
    if missing:
        reason = "the local SLURM/PostgreSQL/MLflow cluster needs " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


def run(*argv: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> str:
    result = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    command = " ".join(map(str, argv))
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def processes_of(directory: Path) -> dict:
    """Live processes working in `directory` or naming it on their command line (dvc, stages, their workers),
    other than the harness's own daemons (the MLflow server names its artifact root, which is in there)."""
    from local_cluster import _is_harness_daemon, _process_table

    named = {key: desc for key, desc in _process_table().items() if str(directory) in desc}
    return {key: desc for key, desc in {**processes_in(directory), **named}.items() if not _is_harness_daemon(desc)}


def publish(root: Path, *, git_remote: Path, dvc_store: Path) -> tuple[Path, str]:
    """The tiny sweep project with the study's inputs computed, committed and pushed; returns it and its commit."""
    dev = make_sweep_workspace(root / "dev", points={name: read_yaml(REPO / "sweep" / "params.yaml")["variants"][name]
                                                     for name in POINTS}, seeds=[0], subset=SUBSET)
    params = read_yaml(dev / "sweep" / "params.yaml")
    assert params["latent_dims"] == [LATENT] and params["train"]["epochs"] == 1
    dvc("repro", "dvc.yaml:classifier@mnist", cwd=dev)  # with prepare@mnist: what every point reads
    commit_lock(dev, "the sweep's inputs: prepared MNIST and its classifier")
    git("init", "--quiet", "--bare", str(git_remote), cwd=root)
    git("remote", "add", "origin", str(git_remote), cwd=dev)
    git("push", "--quiet", "origin", "HEAD:refs/heads/main", cwd=dev)
    dvc("remote", "add", "--local", "store", str(dvc_store), cwd=dev)
    dvc("push", "--quiet", "-r", "store", cwd=dev)
    return dev, git("rev-parse", "HEAD", cwd=dev).stdout.strip()


@pytest.mark.smoke
def test_the_sweep_runs_as_a_slurm_array_of_dvc_experiments_logging_to_mlflow(requirements, tmp_path):
    daemons_before = set(harness_processes())
    # Leaving this block stops every daemon; local_cluster fails if one of its processes is left.
    with local_cluster(tmp_path / "mlartifacts") as cluster:
        print(f"harness start seconds: {cluster.start_seconds}")
        run_and_collect_sweep(cluster, tmp_path)
    left = {key: desc for key, desc in harness_processes().items() if key not in daemons_before}
    assert left == {}, "munged/slurmctld/slurmd/slurmstepd/postgres/mlflow processes left behind"
    assert processes_of(tmp_path) == {}, "dvc, stage or job processes left behind"


def run_and_collect_sweep(cluster: LocalCluster, tmp_path: Path) -> None:
    env = {**os.environ, **cluster.env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "DVC_SITE_CACHE_DIR": str(tmp_path / "dvc-site-cache")}  # not /var/tmp/dvc
    for name in ("AEBENCH_DATA_DIR", "AEBENCH_WORKERS"):
        env.pop(name, None)
    git_remote, dvc_store, scratch, logs = (tmp_path / "remote.git", tmp_path / "dvc-store",
                                            tmp_path / "scratch", tmp_path / "logs")
    dev, commit = publish(tmp_path, git_remote=git_remote, dvc_store=dvc_store)

    # The MLflow experiment, once, before the tasks (as the sbatch header says).
    from aebench.common.tracking import open_store

    experiment_name = read_yaml(dev / "sweep" / "params.yaml")["mlflow"]["experiment"]
    store = open_store(cluster.tracking_uri, experiment_name, workspace=dev)

    # One line per point: its name and its target (the point's evaluate stage, after its train stage). Here the
    # emae line names none, to run SWEEP_TARGETS (which the vae line's own target replaces), and each line also
    # sets a parameter (-S after a target, --set-param alone), which must reach its experiment.
    grid = tmp_path / "grid.txt"
    grid.write_text("# name  target and parameters\n\n"
                    f"vae   sweep/dvc.yaml:evaluate@mnist-vae  -S sweep/params.yaml:evaluate.knn_k={KNN_K['vae']}\n"
                    f"emae  --set-param sweep/params.yaml:evaluate.knn_k={KNN_K['emae']}\n")
    sweep_env = {**env, "SWEEP_GRID": str(grid), "SWEEP_GIT_REMOTE": str(git_remote), "SWEEP_GIT_REV": commit,
                 "SWEEP_DVC_REMOTE_URL": str(dvc_store), "SWEEP_SCRATCH": str(scratch),
                 "SWEEP_TARGETS": "sweep/dvc.yaml:evaluate@mnist-emae"}
    logs.mkdir()  # SLURM does not create the folder of --output
    sbatch = subprocess.run(["sbatch", "--wait", f"--array=0-{len(POINTS) - 1}", "--time=10",
                             f"--output={logs}/sweep-%A_%a.log", str(SWEEP_SCRIPT)],
                            cwd=tmp_path, env=sweep_env, capture_output=True, text=True, timeout=SWEEP_TIMEOUT_S)
    task_logs = "\n".join(f"--- {log.name}:\n{log.read_text()[-6000:]}" for log in sorted(logs.iterdir()))
    assert sbatch.returncode == 0, f"sbatch: {sbatch.stdout}{sbatch.stderr}\n{task_logs}"
    job_id = re.search(r"Submitted batch job (\d+)", sbatch.stdout).group(1)

    # Both array tasks completed, each ran only its point's stages from a pulled start, and removed its checkout.
    assert finished_array_tasks(cluster.env, job_id) == {i: ("COMPLETED", "0:0") for i in range(len(POINTS))}
    for task, point in enumerate(POINTS):
        log = (logs / f"sweep-{job_id}_{task}.log").read_text()
        assert f"done: experiment {point} " in log, log
        ran = set(re.findall(r"Running stage '([^']+)'", log))
        assert ran == {f"sweep/dvc.yaml:train@mnist-{point}", f"sweep/dvc.yaml:evaluate@mnist-{point}"}, log
    assert list(scratch.iterdir()) == []
    assert processes_of(tmp_path) == {}  # nothing the tasks started outlives them
    assert [desc for desc in harness_processes().values() if desc.startswith("slurmstepd ")] == []

    # The collector: every point's experiment from the Git remote, its data from the DVC remote, then the report.
    collect = tmp_path / "collect"
    run("git", "clone", "--quiet", git_remote, collect, cwd=tmp_path, env=env)
    run("git", "checkout", "--quiet", commit, cwd=collect, env=env)
    run("dvc", "remote", "add", "--local", "store", dvc_store, cwd=collect, env=env)
    run("dvc", "exp", "pull", "-r", "store", "origin", cwd=collect, env=env)
    run("dvc", "pull", "--allow-missing", "-r", "store", cwd=collect, env=env)  # the baseline ran only two stages
    (collect / "exp.json").write_text(run("dvc", "exp", "show", "--json", cwd=collect, env=env))
    baseline, = [row for row in json.loads((collect / "exp.json").read_text()) if row["rev"] == commit]
    experiments = {exp["name"]: exp["revs"][0]["data"] for exp in baseline["experiments"]}
    assert sorted(experiments) == sorted(POINTS)
    for point in POINTS:
        params = experiments[point]["params"]["sweep/params.yaml"]["data"]
        assert params["evaluate"]["knn_k"] == KNN_K[point] and sorted(params["variants"]) == sorted(POINTS)
        shown = experiments[point]["metrics"][f"sweep/metrics/mnist/{point}/latent-{LATENT}/seed-0.json"]["data"]
        assert (shown["variant"], shown["latent_dim"], shown["seed"]) == (point, LATENT, 0)
    run("python", "stages/sweep_report.py", "--params", "sweep/params.yaml", "--metrics", "sweep/metrics",
        "--experiments", "exp.json", *REPORT, cwd=collect, env=env)

    markdown = (collect / "reports" / "sweep" / "report.md").read_text()
    assert f"{len(POINTS)} grid points x 1 seeds, read from the DVC experiments in exp.json" in markdown
    table = markdown[markdown.index("## Every point"):markdown.index("## Figures")]
    rows = [line for line in table.splitlines() if line.startswith("| ")][2:]
    assert sorted(row.split(" | ")[0].removeprefix("| ") for row in rows) == sorted(map(variant_label, POINTS))
    assert "VAE (beta 1, gamma 1): rate R = " in markdown and "EM-AE (beta 1, gamma 0): rate R = " in markdown

    # On the server: both points' training runs, evaluated, and the sweep with one child run per point.
    client = store.client()
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    training = {run.info.run_name: run for run in runs if run.data.tags.get("aebench.replicate")}
    assert sorted(training) == sorted(f"mnist-{point}-{LATENT}-s0" for point in POINTS)
    for point in POINTS:
        trained = training[f"mnist-{point}-{LATENT}-s0"]
        assert trained.info.status == "FINISHED"
        assert trained.data.tags["variant"] == point and "test.rate" in trained.data.metrics  # evaluate logged
        checkpoint = (cluster.artifact_root / experiment.experiment_id / trained.info.run_id / "artifacts" /
                      "checkpoint" / "seed-0.pt")
        assert checkpoint.is_file() and checkpoint.stat().st_size > 0, checkpoint
    parents = [run for run in runs if run.info.run_name == "sweep"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent_id = parents[0].info.run_id
    children = {run.data.tags["point"]: run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent_id}
    assert sorted(children) == sorted(POINTS)
    assert all(child.info.status == "FINISHED" and "test.rate" in child.data.metrics for child in children.values())
    assert (cluster.artifact_root / experiment.experiment_id / parent_id / "artifacts" / "report.md").is_file()
    assert client.search_runs(["0"]) == []  # nothing strayed into the Default experiment

    # `dvc push` put each point's outputs in the DVC remote: checked out at its experiment's commit and pulled,
    # the checkpoint is the one its training run recorded. (`dvc exp apply` refuses such an experiment: it
    # lacks the outputs of the stages it did not run.)
    for point in POINTS:
        run("git", "checkout", "--quiet", experiments[point]["rev"], cwd=collect, env=env)
        run("dvc", "pull", "-r", "store", f"sweep/dvc.yaml:train@mnist-{point}", cwd=collect, env=env)
        pulled = collect / "sweep" / "models" / "mnist" / point / f"latent-{LATENT}" / "seed-0.pt"
        digest = hashlib.sha256(pulled.read_bytes()).hexdigest()
        assert digest == training[f"mnist-{point}-{LATENT}-s0"].data.tags["aebench.checkpoint"], point
    assert processes_of(tmp_path) == {}
