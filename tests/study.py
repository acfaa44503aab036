"""A tiny copy of the real project: a temporary git + DVC workspace on a slice of the real MNIST.

The repository's pipeline files are copied into a fresh git + DVC project
whose params.yaml keeps every stage but shrinks the work: 600 images per
split, 2 epochs, 2 seeds, latent sizes 2 and 4 (a 2-D map and a PCA map), a
small IW sample. It also adds a variant the study does not have, `beta4`, as
one params entry: that it runs through train, evaluate, figures and report
shows that adding a variant needs nothing else. The data come through the same
offline sources as `make study`.

`run_in_process` runs a pipeline's stages in the order `dvc repro` would, with
the very commands DVC resolves from the dvc.yaml, but by calling each stage
script's `main` in the test process (which has imported torch and MLflow
once), then records them with `dvc commit`: the same outputs and dvc.lock as
`dvc repro`, without a few seconds of imports per stage. Tests that are about
DVC's own behaviour (a killed `dvc repro`, `make verify`, the venv hint) run
the real `dvc` in a subprocess.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
                              precision_recall_images=200, density_coverage_k=5, expost_components=2)
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


# Outputs dvc.yaml declares `cache: false`: the study's results, which live in Git, not in DVC's cache.
COMMITTED_RESULTS = ("metrics", "history", "reports/report.md", "reports/figures", "reports/compare",
                     "reports/timings.md")


def commit_lock(root: Path, message: str = "dvc.lock") -> None:
    """Commit dvc.lock and the results that Git, not DVC's cache, holds (as a user commits a study)."""
    git("add", "dvc.lock", *[name for name in COMMITTED_RESULTS if (root / name).exists()], cwd=root)
    git("commit", "-qm", message, cwd=root)


def copy_workspace(source: Path, destination: Path) -> Path:
    """A copy of a workspace with everything in it (git, DVC cache, outputs, MLflow store)."""
    shutil.copytree(source, destination, symlinks=True)
    return destination


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def stage_module(name: str):
    """A stage script (`stages/<name>.py`) imported once, to call its `main(argv)` in this process."""
    module_name = f"{name}_stage"
    if module_name not in sys.modules:
        stages = str(REPO / "stages")
        if stages not in sys.path:
            sys.path.insert(0, stages)
        spec = importlib.util.spec_from_file_location(module_name, REPO / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


def pipeline_stages(root: Path, target: str) -> list[tuple[str, str, Path]]:
    """(name, resolved command, working folder) of `target`'s stages and their upstream, in run order."""
    import networkx as nx
    from dvc.repo import Repo

    with working_directory(root), Repo(".") as repo:
        wanted = set(repo.stage.collect(target, with_deps=True))
        order = [s for s in reversed(list(nx.topological_sort(repo.index.graph))) if s in wanted]
        return [(stage.addressing, stage.cmd, Path(stage.wdir)) for stage in order]


def run_in_process(root: Path, *targets: str, env: dict[str, str] | None = None) -> list[str]:
    """Run the stages of `targets` (and their upstream) as `dvc repro` would, in this process; commit them.

    Every command must be `python stages/<name>.py ...`; jobs run one after another
    (AEBENCH_WORKERS=1), as they would on a GPU.
    """
    names: list[str] = []
    saved = {key: os.environ.get(key) for key in ("AEBENCH_WORKERS", "MLFLOW_TRACKING_URI", "AEBENCH_DATA_DIR", "DVC_STAGE")}
    os.environ["AEBENCH_WORKERS"] = "1"
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("AEBENCH_DATA_DIR", None)
    os.environ.update(env or {})
    try:
        for target in targets:
            for name, command, folder in pipeline_stages(root, target):
                if name in names:
                    continue
                program, script, *argv = shlex.split(command)
                assert program == "python" and script.startswith("stages/"), f"{name}: unexpected command {command}"
                os.environ["DVC_STAGE"] = name  # as dvc repro sets it: stages read their item from it
                with working_directory(folder):
                    stage_module(Path(script).stem).main(argv)
                names.append(name)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # --with-deps: stages of another dvc.yaml that the targets read (prepare, classifier) are locked too
    dvc("commit", "--force", "--with-deps", *targets, cwd=root)
    return names
