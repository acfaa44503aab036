"""End to end: the real `dvc repro` on a slice of real MNIST (the `tiny_study` fixture), and what a
researcher expects of it: every model and seed reported, MLflow runs that line up, a rerun that does
nothing, precise dependencies, byte-identical outputs on a second run, a DVC remote round trip, and
the fault cases a killed or misconfigured run must survive."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from study import BIN, NEW_VARIANT, copy_workspace, dvc, environment, git, run, tiny_params

from aebench.common.config import load_params
from aebench.common.imports import package_files
from aebench.common.layout import selected_keys
from aebench.reporting.labels import dataset_label, variant_label

pytestmark = pytest.mark.smoke
REPO = Path(__file__).resolve().parents[1]


def replicates(root: Path):
    params = load_params(root / "params.yaml")
    return [key.replicate(seed) for key in selected_keys(params) for seed in params.seeds]


def changed_stages(root: Path) -> set[str]:
    """Stage names `dvc status` reports as changed (top-level dvc.yaml only)."""
    status = json.loads(dvc("status", "--json", "dvc.yaml", cwd=root).stdout or "{}")
    return set(status)


def test_every_model_and_seed_has_its_outputs_and_the_new_variant_is_among_them(tiny_study):
    found = replicates(tiny_study)
    assert len(found) == 4 * 2 * 2  # variants (ae, vae, emae, beta4) x latent sizes x seeds
    assert {r.key.variant for r in found} == {"ae", "vae", "emae", *NEW_VARIANT}
    for replicate in found:
        metrics = json.loads(replicate.path(tiny_study / "metrics", ".json").read_text())
        assert (metrics["variant"], metrics["latent_dim"], metrics["seed"]) == (
            replicate.key.variant, replicate.key.latent_dim, replicate.seed)
        assert replicate.path(tiny_study / "models", ".pt").is_file()
        assert replicate.path(tiny_study / "history", ".csv").is_file()
        if metrics["stochastic"]:
            # The IW bound is tighter than the ELBO: never a worse NLL (small tolerance for MC noise).
            assert metrics["test"]["nll_iw"] <= metrics["test"]["neg_elbo"] + 1.0
        assert "seconds" not in json.dumps(metrics)  # wall times live in runinfo/, not in hashed outputs
    assert (tiny_study / "runinfo" / "train").is_dir() and (tiny_study / "reports" / "timings.md").is_file()


def test_report_has_one_row_per_model_with_the_seed_count(tiny_study):
    markdown = (tiny_study / "reports" / "report.md").read_text()
    for key in selected_keys(load_params(tiny_study / "params.yaml")):
        row = f"| {dataset_label(key.dataset)} | {variant_label(key.variant)} | {key.latent_dim} | 2 |"
        assert markdown.count(row) == 1, row
    assert "## Claims ledger" in markdown and markdown.index("## Claims ledger") < markdown.index("## Findings")
    assert "http://" not in (tiny_study / "reports" / "report.html").read_text().replace("http://www.w3.org", "")


def test_mlflow_has_one_finished_run_per_replicate_and_one_study_run(tiny_study):
    with sqlite3.connect(tiny_study / "mlflow.db") as db:
        runs = db.execute("select name, status from runs").fetchall()
        kind = db.execute("select value from experiment_tags where key = 'mlflow.experimentKind'").fetchall()
        params = db.execute("select distinct key from params").fetchall()
    names = sorted(name for name, _ in runs)
    assert names == sorted([r.name for r in replicates(tiny_study)] + ["study"])
    assert {status for _, status in runs} == {"FINISHED"}
    assert kind == [("custom_model_development",)]
    assert {"dataset", "latent_dim", "seed", "variant.name", "train.lr"} <= {key for (key,) in params}


def test_a_second_repro_does_nothing_and_the_report_updates_its_own_study_run(tiny_study):
    assert "up to date" in dvc("status", "dvc.yaml", cwd=tiny_study).stdout
    before = (tiny_study / "reports" / "report.md").read_bytes()
    dvc("repro", "-f", "-s", "dvc.yaml:report", cwd=tiny_study)
    assert (tiny_study / "reports" / "report.md").read_bytes() == before
    with sqlite3.connect(tiny_study / "mlflow.db") as db:
        assert db.execute("select count(*) from runs where name = 'study'").fetchone() == (1,)
    assert "up to date" in dvc("status", "dvc.yaml", cwd=tiny_study).stdout
    shown = dvc("metrics", "show", cwd=tiny_study).stdout
    assert "metrics/mnist/beta4/latent-4/seed-1.json" in shown


# --- precise dependencies ------------------------------------------------------------------


def test_every_stage_lists_exactly_the_library_files_it_imports():
    pipelines = [REPO / "dvc.yaml", REPO / "replicate" / "dvc.yaml", REPO / "sweep" / "dvc.yaml"]
    for pipeline in pipelines:
        for name, stage in read_stages(pipeline).items():
            script = next(part for part in stage["cmd"].split() if part.startswith("stages/"))
            listed = {d for d in stage["deps"] if d.startswith("src/")}
            expected = {p.relative_to(REPO).as_posix() for p in package_files(REPO / script, REPO / "src")}
            assert listed == expected, f"{pipeline.name}:{name}: missing {expected - listed}, extra {listed - expected}"
            assert script in stage["deps"] and "stages/_bootstrap.py" in stage["deps"]


def test_the_generated_deps_are_the_committed_ones(tmp_path):
    """`python -m aebench.common.imports --write` is how deps are kept: it must leave the files as they are."""
    from aebench.common.imports import stale_pipelines

    assert stale_pipelines(REPO, write=False) == [], "run `python -m aebench.common.imports --write`"


def test_writing_the_deps_restores_a_removed_entry_and_drops_a_stale_one(tmp_path):
    from aebench.common.imports import with_generated_deps

    text = (REPO / "dvc.yaml").read_text()
    broken = text.replace("        - src/aebench/data/idx.py\n", "", 1).replace(
        "      - src/aebench/training/trainer.py\n", "      - src/aebench/training/trainer.py\n      - src/aebench/gone.py\n", 1
    )
    assert broken.count("\n") == text.count("\n") and broken != text
    assert with_generated_deps(broken, REPO) == text


def read_stages(pipeline: Path) -> dict:
    from aebench.common.config import read_yaml

    stages = {}
    for name, stage in read_yaml(pipeline)["stages"].items():
        stages[name] = stage.get("do", stage)
    return stages


def test_changing_the_vae_beta_reruns_only_the_vae_stages_and_the_report(tiny_study):
    params = tiny_study / "params.yaml"
    original = params.read_text()
    try:
        changed = original.replace("vae:\n    objective: kl_split\n    beta: 1.0", "vae:\n    objective: kl_split\n    beta: 2.0")
        assert changed != original
        params.write_text(changed)
        # dvc status names the stages whose own dependencies changed; figures@mnist-vae follows its
        # upstream in `dvc repro`. No AE, EM-AE or beta4 stage is touched.
        assert changed_stages(tiny_study) == {"train@mnist-vae", "evaluate@mnist-vae", "report"}
    finally:
        params.write_text(original)


def test_touching_the_findings_code_reruns_only_the_report(tiny_study):
    findings = tiny_study / "src" / "aebench" / "reporting" / "findings.py"
    original = findings.read_text()
    try:
        findings.write_text(original + "\n# an edit\n")
        assert changed_stages(tiny_study) == {"report"}
    finally:
        findings.write_text(original)
    assert changed_stages(tiny_study) == set()


def test_yaml_1_2_numbers_read_the_same_in_dvc_and_aebench(tiny_study, tmp_path):
    root = copy_workspace(tiny_study, tmp_path / "copy")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("lr: 0.001", "lr: 1e-3"))
    assert load_params(params).train.lr == 0.001
    assert changed_stages(root) == set()  # DVC reads 1e-3 as the same float, so nothing changed


# --- reproducibility ---------------------------------------------------------------------------


def test_verify_reruns_a_branch_of_the_committed_study_and_finds_identical_bytes(tiny_study):
    # One model's branch (prepare, classifier, train, evaluate, figures): `make verify` reruns them all.
    target = "dvc.yaml:figures@mnist-vae"
    result = run([str(BIN / "python"), "-m", "aebench.verify", "--workspace", str(tiny_study), target], tiny_study)
    assert "verify: all 9 outputs of dvc.lock reproduced byte for byte" in result.stdout, result.stdout[-3000:]


def test_a_fresh_clone_pulls_every_output_from_a_dvc_remote_and_has_nothing_to_run(tiny_study, tmp_path):
    root = copy_workspace(tiny_study, tmp_path / "origin")
    remote = tmp_path / "dvc-remote"
    dvc("remote", "add", "-d", "shared", str(remote), cwd=root)
    git("add", ".dvc/config", cwd=root)
    git("commit", "-qm", "a shared DVC remote", cwd=root)
    dvc("push", cwd=root)
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path)
    dvc("pull", cwd=clone)
    assert "up to date" in dvc("status", "dvc.yaml", cwd=clone).stdout
    for replicate in replicates(clone):
        assert replicate.path(clone / "metrics", ".json").is_file()


# --- fault cases ---------------------------------------------------------------------------------


def _processes_in(root: Path) -> list[int]:
    """Processes (other than this test's) working in `root`: a stage, its workers, dvc."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if os.readlink(proc / "cwd") == str(root) and (proc / "stat").read_text().split()[2] != "Z":
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _run_statuses(root: Path) -> set[str]:
    """The statuses of the workspace's training runs of MNIST AE models, as the store holds them now."""
    with contextlib.closing(sqlite3.connect(root / "mlflow.db", timeout=30)) as db:
        return {status for (status,) in db.execute("select status from runs where name like 'mnist-ae-%'")}


def test_a_stage_ends_with_the_dvc_process_that_started_it_and_closes_its_runs(tiny_study, tmp_path):
    root = copy_workspace(tiny_study, tmp_path / "copy")
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("epochs: 2", "epochs: 200", 1))  # train.epochs, first in the file
    dvc_process = subprocess.Popen([str(BIN / "dvc"), "repro", "-s", "dvc.yaml:train@mnist-ae"], cwd=root,
                                   env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    resume = root / ".cache" / "resume" / "mnist" / "ae" / "latent-2" / "seed-0.pt"
    try:
        assert _wait_for(resume.is_file, 180), "the train stage finished an epoch"
        # The stage opens its runs while the workers train: on a loaded machine an epoch can end first.
        assert _wait_for(lambda: "RUNNING" in _run_statuses(root), 120), "the stage opened its runs"
        assert len(_processes_in(root)) >= 2, "dvc and its stage are running"
        dvc_process.send_signal(signal.SIGTERM)
        dvc_process.wait(timeout=30)
        assert _wait_for(lambda: not _processes_in(root), 30), f"left running: {_processes_in(root)}"
    finally:
        dvc_process.kill()
    statuses = _run_statuses(root)
    assert "RUNNING" not in statuses and "KILLED" in statuses
    strays = [p for p in root.rglob("*.tmp") if ".cache" not in p.parts and ".dvc" not in p.parts]
    assert strays == []  # nothing half-written where DVC or `dvc plots` reads


def test_dvc_without_the_venv_on_path_runs_the_stage_with_the_venv_or_says_how(tiny_study, tmp_path):
    root = copy_workspace(tiny_study, tmp_path / "copy")
    params = root / "params.yaml"
    # A params value only the figures stage reads (the evaluation's are kept): the stage alone is out of date.
    text = params.read_text()
    assert "activity_images: 128" in text
    params.write_text(text.replace("activity_images: 128", "activity_images: 64"))
    # A PATH whose `python` is a Python without aebench, as outside the activated venv.
    system_bin = tmp_path / "system-bin"
    system_bin.mkdir()
    (system_bin / "python").symlink_to("/usr/bin/python3")
    bare = {**environment(), "PATH": f"{system_bin}:/usr/bin:/bin"}
    failed = run([str(BIN / "dvc"), "repro", "-s", "dvc.yaml:figures@mnist-ae"], root, env=bare, check=False)
    assert failed.returncode != 0
    hint = [line for line in failed.stderr.splitlines() if "cannot import aebench" in line]
    assert len(hint) == 1 and "source .venv/bin/activate" in hint[0]
    (root / ".venv").symlink_to(Path(BIN).parent)  # the workspace's own venv, as `make install` makes it
    run([str(BIN / "dvc"), "repro", "-s", "dvc.yaml:figures@mnist-ae"], root, env=bare)
    assert (root / "reports" / "figures" / "mnist" / "ae" / "latent-2" / "samples.png").is_file()


def test_a_stage_run_from_another_folder_uses_the_workspace_store_and_commit(tiny_study, tmp_path):
    original_artifacts = sorted((tiny_study / "mlruns").rglob("*"))
    root = copy_workspace(tiny_study, tmp_path / "copy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run([str(BIN / "python"), str(root / "stages" / "train.py"), "--params", str(root / "params.yaml"),
         "--dataset", "mnist", "--variant", "ae", "--latent-dim", "2", "--prepared", str(root / "data" / "prepared"),
         "--models", str(tmp_path / "models"), "--history", str(tmp_path / "history"),
         "--resume", str(tmp_path / "resume"), "--runinfo", str(tmp_path / "runinfo")], elsewhere)
    assert not (elsewhere / "mlflow.db").exists() and not (elsewhere / "mlruns").exists()
    with sqlite3.connect(root / "mlflow.db") as db:
        commits = {value for (value,) in db.execute(
            "select value from tags where key = 'git_commit' and run_uuid in "
            "(select run_uuid from runs order by start_time desc limit 2)")}
    assert commits and "unknown" not in commits
    # The copied store logs into the copy's own mlruns, not the original workspace's.
    assert len(list((root / "mlruns").rglob("seed-0.pt"))) > len(list((tiny_study / "mlruns").rglob("seed-0.pt")))
    assert sorted((tiny_study / "mlruns").rglob("*")) == original_artifacts


def test_tiny_params_keep_every_stage_of_the_study():
    assert set(tiny_params()) == set(load_params(REPO / "params.yaml").to_dict())
