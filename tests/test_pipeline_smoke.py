"""End to end: the real `dvc repro` on a small slice of the real MNIST.

The repository's pipeline files are copied into a fresh git + DVC project whose
params.yaml keeps every stage but shrinks the work: 2 000 images per split, two
epochs, latent sizes 2 and 4 (a 2-D map and a PCA map), a small IW sample. The
data come through the same offline sources as `make study` (see data-sources).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aebench.reporting.catalog import dataset_label, model_label

REPO = Path(__file__).resolve().parents[1]
MODELS = ("ae", "vae", "emae")
LATENT_DIMS = (2, 4)

pytestmark = pytest.mark.smoke


def small_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = ["mnist"]
    params["models"] = list(MODELS)
    params["latent_dims"] = list(LATENT_DIMS)
    params["data"]["subset"] = 2000
    params["train"]["epochs"] = 2
    params["classifier"]["epochs"] = 1
    params["evaluate"].update(iw_samples=8, latent_images=200, sample_count=256)
    params["figures"]["manifold_steps"] = 5
    return params


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("AEBENCH_DATA_DIR", None)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("study")
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "params.yaml").write_text(yaml.safe_dump(small_params(), sort_keys=False))
    raw_cache = REPO / ".cache" / "raw"
    if raw_cache.is_dir():  # verified IDX files from an earlier run: skip refetching
        (root / ".cache").mkdir()
        (root / ".cache" / "raw").symlink_to(raw_cache)
    dvc = str(Path(sys.executable).parent / "dvc")
    run(["git", "init", "-q"], root)
    run([dvc, "init", "-q"], root)
    run([dvc, "config", "core.analytics", "false"], root)
    run(["git", "add", "-A"], root)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.invalid", "commit", "-qm", "smoke"], root)
    run([dvc, "repro"], root)
    return root


def test_every_model_has_checkpoint_metrics_and_figures(study):
    for model in MODELS:
        for dim in LATENT_DIMS:
            assert (study / "models" / "mnist" / f"{model}-{dim}.pt").is_file()
            metrics = json.loads((study / "metrics" / "mnist" / f"{model}-{dim}.json").read_text())
            assert (metrics["model"], metrics["latent_dim"]) == (model, dim)
            assert len(metrics["latent"]["activity"]) == dim
            if model == "ae":
                assert metrics["test"]["neg_elbo"] is None
            else:
                # The IW bound is tighter than the ELBO: never a worse NLL (small tolerance for MC noise).
                assert metrics["test"]["nll_iw"] <= metrics["test"]["neg_elbo"] + 1.0
            figures = list((study / "reports" / "figures" / "mnist" / f"{model}-{dim}").glob("*.png"))
            assert len(figures) >= 6


def test_report_lists_every_model(study):
    html = (study / "reports" / "report.html").read_text()
    assert html.count("<img") >= 6 * len(MODELS) * len(LATENT_DIMS)
    assert "http://" not in html.replace("http://www.w3.org", "")
    markdown = (study / "reports" / "report.md").read_text()
    for model in MODELS:
        for dim in LATENT_DIMS:  # one table row per trained model: "| MNIST | EM-AE | 4 | ..."
            row = f"| {dataset_label('mnist')} | {model_label(model)} | {dim} |"
            assert markdown.count(row) == 1, row


def test_mlflow_has_one_finished_run_per_model_and_a_study_run(study):
    with sqlite3.connect(study / "mlflow.db") as db:
        statuses = db.execute("select status from runs").fetchall()
    assert len(statuses) == len(MODELS) * len(LATENT_DIMS) + 1
    assert {status for (status,) in statuses} == {"FINISHED"}


def test_second_repro_is_a_no_op_and_metrics_show_works(study):
    dvc = str(Path(sys.executable).parent / "dvc")
    status = run([dvc, "status"], study)
    assert "up to date" in status.stdout
    shown = run([dvc, "metrics", "show"], study)
    assert "metrics/mnist/vae-4.json" in shown.stdout
