"""A tiny copy of the real project: a temporary git + DVC workspace on a slice of the real MNIST.

The repository's pipeline files are copied into a fresh git + DVC project
whose params.yaml keeps every stage but shrinks the work: 600 images per
split, 2 epochs, 2 seeds, latent sizes 2 and 4 (a 2-D map and a PCA map), a
small IW sample. It also adds a variant the study does not have, `beta4`, as
one params entry: that it runs through train, evaluate, figures and report
shows that adding a variant needs nothing else. The data come through the same
offline sources as `make study`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from aebench.common.config import read_yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NEW_VARIANT = {"beta4": {"objective": "kl_split", "beta": 4.0, "gamma": 1.0}}
PIPELINE_FILES = ("dvc.yaml", ".gitignore", ".dvcignore")
PIPELINE_FOLDERS = ("stages", "src")


def tiny_params(**sections) -> dict:
    """The repository's params.yaml scaled down; `sections` replace whole top-level entries."""
    params = read_yaml(REPO / "params.yaml")
    params.update(seeds=[0, 1], datasets=["mnist"], latent_dims=[2, 4], device="cpu")
    params["variants"] = {**params["variants"], **NEW_VARIANT}
    params["data"]["subset"] = 600
    params["train"]["epochs"] = 2
    params["classifier"]["epochs"] = 1
    params["evaluate"].update(iw_samples=8, latent_images=200, sample_count=300, usage_images=200,
                              precision_recall_images=200, expost_components=2)
    params["figures"]["manifold_steps"] = 5
    params.update(sections)
    return params


def environment(**extra: str) -> dict[str, str]:
    """The venv first on PATH (as the Makefile does), no user data folder, no tracking server."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", **extra)
    for name in ("AEBENCH_DATA_DIR", "MLFLOW_TRACKING_URI", "AEBENCH_WORKERS"):
        if name not in extra:
            env.pop(name, None)
    return env


def run(cmd: list[str], cwd: Path, *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env or environment(), capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def dvc(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd, **kwargs)


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", *args], cwd)


def make_workspace(root: Path, params: dict) -> Path:
    """A committed git + DVC project holding the pipeline, `params`, and a link to the verified raw files."""
    root.mkdir(parents=True, exist_ok=True)
    for name in PIPELINE_FILES:
        shutil.copy(REPO / name, root / name)
    for folder in PIPELINE_FOLDERS:
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    raw_cache = REPO / ".cache" / "raw"
    if raw_cache.is_dir():  # verified IDX files from an earlier run: skip refetching
        (root / ".cache").mkdir()
        (root / ".cache" / "raw").symlink_to(raw_cache)
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    git("add", "-A", cwd=root)
    git("commit", "-qm", "tiny study", cwd=root)
    return root


def commit_lock(root: Path, message: str = "dvc.lock") -> None:
    git("add", "dvc.lock", cwd=root)
    git("commit", "-qm", message, cwd=root)


def copy_workspace(source: Path, destination: Path) -> Path:
    """A copy of a workspace with everything in it (git, DVC cache, outputs, MLflow store)."""
    shutil.copytree(source, destination, symlinks=True)
    return destination
