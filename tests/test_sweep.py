"""The beta / gamma sweep (sweep/dvc.yaml): its report's pieces on synthetic tables, then a tiny real sweep.

Unit tests (fast): `point_weights`, `crossing` on a frame with a known
crossing, and `experiments_frame` on a `dvc exp show --json` structure shaped
as DVC 3.67 writes it.

The pipeline (smoke): a tiny copy of the project (`study.make_workspace` plus
`sweep/`) whose sweep/params.yaml keeps three grid points (the AE reference,
the VAE and the EM-AE), 300 images, 1 epoch, seeds 0 and 1, the
small evaluate settings of `study.tiny_params`; `dvc repro sweep/dvc.yaml`
runs the study's prepare and classifier stages it reads, the points' train
and evaluate stages, and the report. The test checks the report (Markdown and
HTML, the rate-distortion figure and the four against-weight figures,
findings that quote R and D of the VAE and the EM-AE from the metrics files)
and MLflow (one parent run `sweep`, one child run per grid point), and that
rebuilding the report updates those runs instead of adding new ones.
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml
from study import REPO, dvc, git, make_workspace, run_in_process, tiny_params

from aebench.common.config import load_params, read_yaml
from aebench.reporting.statistics import summarize
from aebench.reporting.sweep import (
    SCALARS,
    crossing,
    experiments_frame,
    findings,
    point_weights,
    summary_table,
    unconverged_points,
)

SUBSET, EPOCHS, SEEDS = 300, 1, [0, 1]
POINTS = ("ae", "vae", "emae")  # the reference and both ends of the gamma line
FIGURES = ("rate_distortion", "usage_vs_beta", "usage_vs_gamma", "quality_vs_beta", "quality_vs_gamma")


# ---------------------------------------------------------------- unit tests (fast)


def test_point_weights_of_the_family_and_of_the_reference():
    assert point_weights({"objective": "kl_split", "beta": 2, "gamma": 0.5}) == (2.0, 0.5)
    assert point_weights({"objective": "kl_split", "beta": 1.0, "gamma": 0.0}) == (1.0, 0.0)
    beta, gamma = point_weights({"objective": "deterministic"})
    assert math.isnan(beta) and math.isnan(gamma)


def gamma_frame(values: dict[float, list[float]], key: str = "latent.active_units") -> pd.DataFrame:
    return pd.DataFrame([{"point": f"g{gamma}", "beta": 1.0, "gamma": gamma, "seed": seed, key: value}
                         for gamma, seeds in values.items() for seed, value in enumerate(seeds)])


def test_crossing_interpolates_between_the_grid_points_around_halfway():
    # Means 30 (gamma 0), 20 (0.5), 0 (1): halfway is 15, reached a quarter of the way from 0.5 to 1.
    frame = gamma_frame({1.0: [0.0, 0.0], 0.0: [29.0, 31.0], 0.5: [18.0, 22.0]})  # unsorted on purpose
    assert crossing(frame, "latent.active_units") == pytest.approx(0.625)
    # Increasing works the same way: 0 -> 10 -> 30, halfway 15 between 0.5 and 1.
    assert crossing(gamma_frame({0.0: [0.0], 0.5: [10.0], 1.0: [30.0]}), "latent.active_units") == pytest.approx(0.625)


def test_crossing_is_none_without_both_ends_or_without_a_change():
    assert crossing(gamma_frame({0.0: [30.0], 0.5: [10.0]}), "latent.active_units") is None
    assert crossing(gamma_frame({0.5: [30.0], 1.0: [10.0]}), "latent.active_units") is None
    assert crossing(gamma_frame({0.0: [5.0], 0.5: [5.0], 1.0: [5.0]}), "latent.active_units") is None


PARAMS_FILE, METRICS_ROOT = "sweep/params.yaml", "sweep/metrics"
VARIANTS = {"ae": {"objective": "deterministic"}, "vae": {"objective": "kl_split", "beta": 1.0, "gamma": 1.0},
            "emae": {"objective": "kl_split", "beta": 1.0, "gamma": 0.0}}
# What a metrics file holds as null: the AE has no density, a latent other than 2-D has no decoded grid.
UNDEFINED = {"ae": ("test.distortion", "test.rate", "test.neg_elbo", "test.nll_iw")}
NO_GRID = ("manifold.roughness", "manifold.mean_confidence", "manifold.corner_confidence")


def metrics(variant: str, seed: int, *, latent_dim: int = 2, converged: bool = True, **values: float) -> dict:
    """A metrics file's content with every scalar the sweep reads (`test_rate=20.0` sets test.rate; the
    rest 3.0), null where the evaluation writes null; and whether its convergence test passed."""
    payload = {"dataset": "mnist", "variant": variant, "latent_dim": latent_dim, "seed": seed,
               "convergence": {"converged": converged}}
    nulls = UNDEFINED.get(variant, ()) + (NO_GRID if latent_dim != 2 else ())
    for key in SCALARS:
        if key in payload:  # seed and latent_dim are scalars of the file too
            continue
        *sections, name = key.split(".")
        node = payload
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = None if key in nulls else values.get(key.replace(".", "_"), 3.0)
    return payload


def as_dvc_shows(content):
    """What `dvc exp show --json` (DVC 3.67) shows of a metrics file: null values and lists left out, and
    sections left with nothing dropped too (as seen on the real sweep's files)."""
    if isinstance(content, dict):
        shown = {key: as_dvc_shows(value) for key, value in content.items()
                 if value is not None and not isinstance(value, list)}
        return {key: value for key, value in shown.items() if value != {}}
    return content


def metrics_path(variant: str, seed: int, latent_dim: int = 2) -> str:
    return f"{METRICS_ROOT}/mnist/{variant}/latent-{latent_dim}/seed-{seed}.json"


def revision(rev: str, name: str | None, timestamp: str | None, files: dict[str, dict | None]) -> dict:
    """One revision of `dvc exp show --json` (DVC 3.67): params and metrics by file, each under "data";
    a metrics file the revision lacks is an error entry."""
    return {"rev": rev, "name": name, "data": {
        "rev": rev, "timestamp": timestamp,
        "params": {PARAMS_FILE: {"data": {"seeds": [0, 1], "variants": VARIANTS}},
                   "params.yaml": {"data": {"variants": {"vae": {"objective": "deterministic"}}}}},
        "metrics": {path: ({"data": as_dvc_shows(content)} if content is not None else
                           {"error": {"type": "FileNotFoundError", "msg": "No storage files available"}})
                    for path, content in files.items()},
        "deps": {}, "outs": {}, "meta": {}}, "error": None, "experiments": None}


def exp_show(*experiments: dict) -> list[dict]:
    """The workspace and a baseline commit with `experiments` (newest first, as DVC lists them)."""
    baseline = revision("b0", "main", "2026-01-01T09:00:00", {metrics_path("vae", 0): metrics("vae", 0, test_rate=1.0)})
    baseline["experiments"] = [{"revs": [exp], "executor": None, "name": exp["name"]} for exp in experiments]
    workspace = revision("workspace", None, None, {metrics_path("vae", 0): metrics("vae", 0, test_rate=2.0)})
    return [workspace, baseline]


def two_points() -> list[dict]:
    vae = revision("c2", "vae", "2026-01-01T10:02:00", {
        metrics_path("vae", 0): metrics("vae", 0, test_rate=20.0, test_distortion=90.0),
        metrics_path("vae", 1): metrics("vae", 1, test_rate=22.0, test_distortion=88.0),
        f"{METRICS_ROOT}/mnist/emae": None,  # another point's metrics: not in this experiment
        "metrics/classifiers/mnist.json": {"test_accuracy": 0.9}})  # not under the sweep's metrics root
    emae = revision("c1", "emae", "2026-01-01T10:01:00", {
        metrics_path("emae", 0): metrics("emae", 0, test_rate=60.0, latent_active_units=7),
        f"{METRICS_ROOT}/mnist/emae/latent-2/summary.json": {"variant": "emae"}})  # not a seed's file
    return [vae, emae]


def test_experiments_frame_reads_one_row_per_point_and_seed_from_exp_show():
    frame = experiments_frame(exp_show(*two_points()), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT)
    assert sorted(zip(frame["point"], frame["seed"])) == [("emae", 0), ("vae", 0), ("vae", 1)]  # not the baseline's
    by_key = frame.set_index(["point", "seed"])
    assert by_key.loc[("vae", 0), "test.rate"] == 20.0 and by_key.loc[("vae", 1), "test.distortion"] == 88.0
    assert (by_key.loc[("vae", 1), "beta"], by_key.loc[("vae", 1), "gamma"]) == (1.0, 1.0)
    assert (by_key.loc[("emae", 0), "beta"], by_key.loc[("emae", 0), "gamma"]) == (1.0, 0.0)
    assert by_key.loc[("emae", 0), "test.rate"] == 60.0 and by_key.loc[("emae", 0), "latent.active_units"] == 7
    assert set(frame["latent_dim"]) == {2} and set(frame["dataset"]) == {"mnist"}
    # A root given with a trailing slash reads the same; another params file finds no grid.
    slash = experiments_frame(exp_show(*two_points()), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT + "/")
    assert len(slash) == 3
    assert experiments_frame(exp_show(*two_points()), params_file="other.yaml", metrics_root=METRICS_ROOT).empty


def test_experiments_frame_reads_the_values_dvc_leaves_out_as_missing():
    # The sweep's own latent size (30: no decoded grid) and its AE reference (no density): what a cluster sweep pushes.
    ae = revision("c2", "ae", "2026-01-01T10:02:00", {metrics_path("ae", 0, 30): metrics("ae", 0, latent_dim=30)})
    vae = revision("c1", "vae", "2026-01-01T10:01:00", {
        metrics_path("vae", 0, 30): metrics("vae", 0, latent_dim=30, test_rate=20.0)})
    frame = experiments_frame(exp_show(ae, vae), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT)
    by_point = frame.set_index("point")
    assert by_point.loc["vae", "test.rate"] == 20.0 and math.isnan(by_point.loc["vae", "manifold.roughness"])
    assert math.isnan(by_point.loc["ae", "test.rate"]) and math.isnan(by_point.loc["ae", "beta"])
    assert by_point.loc["ae", "probe.accuracy"] == 3.0


def test_points_whose_models_failed_the_convergence_test_are_marked_provisional():
    vae = revision("c2", "vae", "2026-01-01T10:02:00", {
        metrics_path("vae", 0): metrics("vae", 0), metrics_path("vae", 1): metrics("vae", 1, converged=False)})
    emae = revision("c1", "emae", "2026-01-01T10:01:00", {metrics_path("emae", 0): metrics("emae", 0)})
    frame = experiments_frame(exp_show(vae, emae), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT)
    assert unconverged_points(frame) == {"vae": [1]}
    sentence = findings(frame, au_threshold=0.01)[0]
    assert sentence.startswith("Provisional: 1 of 3 models failed their convergence test (VAE seed 1)")
    rows = {row[0]: row for row in summary_table(frame).rows}
    assert rows["VAE"][4] == "1 of 2 (provisional)" and rows["EM-AE"][4] == "1 of 1"
    passed = experiments_frame(exp_show(emae), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT)
    assert findings(passed, au_threshold=0.01)[0] == "Every model of the grid (1) passed its convergence test."


def test_experiments_frame_keeps_the_newest_experiment_of_a_point_and_seed():
    rerun = revision("c3", "vae-rerun", "2026-01-01T11:00:00", {
        metrics_path("vae", 0): metrics("vae", 0, test_rate=25.0)})
    frame = experiments_frame(exp_show(rerun, *two_points()), params_file=PARAMS_FILE, metrics_root=METRICS_ROOT)
    assert len(frame) == 3
    assert frame.set_index(["point", "seed"]).loc[("vae", 0), "test.rate"] == 25.0


# ---------------------------------------------------------------- the pipeline, tiny


def sweep_params(tiny: dict) -> dict:
    """sweep/params.yaml, shrunk: three of its grid points, the study's small settings."""
    raw = read_yaml(REPO / "sweep" / "params.yaml")
    raw.update(seeds=SEEDS, device="cpu", variants={name: raw["variants"][name] for name in POINTS})
    raw["data"]["subset"] = SUBSET
    raw["train"]["epochs"] = EPOCHS
    for section in ("classifier", "evaluate", "figures"):
        raw[section] = copy.deepcopy(tiny[section])
    return raw


def make_sweep_workspace(root: Path, *, points: dict | None = None, seeds: list[int] = SEEDS,
                         subset: int = SUBSET) -> Path:
    """A committed tiny project with the sweep: the study's params shrunk (MNIST only) and sweep/ shrunk."""
    tiny = tiny_params(seeds=[0], datasets=["mnist"], latent_dims=[2])
    tiny["data"]["subset"] = subset
    make_workspace(root, tiny)
    shutil.copytree(REPO / "sweep", root / "sweep", ignore=shutil.ignore_patterns("params.yaml"))
    raw = sweep_params(tiny)
    raw["seeds"], raw["data"]["subset"] = seeds, subset
    if points is not None:
        raw["variants"] = points
    lines = (REPO / "sweep" / "params.yaml").read_text().splitlines(keepends=True)
    header = "".join(lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))])
    (root / "sweep" / "params.yaml").write_text(header + "\n" + yaml.safe_dump(raw, sort_keys=False))
    git("add", "-A", cwd=root)
    git("commit", "-qm", "tiny sweep", cwd=root)
    return root


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    root = make_sweep_workspace(tmp_path_factory.mktemp("tiny-sweep") / "workspace")
    run_in_process(root, "sweep/dvc.yaml")
    git("add", "dvc.lock", "sweep/dvc.lock", cwd=root)
    git("commit", "-qm", "dvc.lock", cwd=root)
    return root


def sweep_runs(root: Path) -> list[dict]:
    """Every MLflow run of the workspace's store: name, id, status and tags."""
    with sqlite3.connect(root / "mlflow.db") as db:
        runs = db.execute("select run_uuid, name, status from runs where lifecycle_stage = 'active'").fetchall()
        tags = db.execute("select run_uuid, key, value from tags").fetchall()
    by_run = {run_id: {"id": run_id, "name": name, "status": status, "tags": {}} for run_id, name, status in runs}
    for run_id, key, value in tags:
        if run_id in by_run:
            by_run[run_id]["tags"][key] = value
    return list(by_run.values())


def point_metrics(root: Path, point: str, key: str) -> list[float]:
    section, name = key.split(".")
    return [json.loads((root / "sweep" / "metrics" / "mnist" / point / "latent-30" / f"seed-{seed}.json")
                       .read_text())[section][name] for seed in SEEDS]


@pytest.mark.smoke
def test_every_grid_point_and_seed_is_trained_and_evaluated(swept):
    params = load_params(swept / "sweep" / "params.yaml")
    assert list(params.variants) == list(POINTS)
    for point in POINTS:
        for seed in SEEDS:
            assert (swept / "sweep" / "models" / "mnist" / point / "latent-30" / f"seed-{seed}.pt").is_file()
            metrics = json.loads((swept / "sweep" / "metrics" / "mnist" / point / "latent-30" / f"seed-{seed}.json")
                                 .read_text())
            assert (metrics["variant"], metrics["seed"], metrics["latent_dim"]) == (point, seed, 30)
    assert "up to date" in dvc("status", "sweep/dvc.yaml", cwd=swept).stdout


@pytest.mark.smoke
def test_report_has_the_plane_the_four_weight_figures_and_findings_from_the_metrics(swept):
    report = swept / "reports" / "sweep"
    markdown, html = (report / "report.md").read_text(), (report / "report.html").read_text()
    for name in FIGURES:
        assert (report / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"(figures/{name}.png)" in markdown, name
    assert html.count("data:image/png;base64,") >= len(FIGURES)
    for title in ("Rate-distortion plane", "Latent usage against beta", "Latent usage against gamma",
                  "IW NLL and probe accuracy against beta", "IW NLL and probe accuracy against gamma"):
        assert title in markdown and title in html, title
    assert f"{len(POINTS)} grid points x {len(SEEDS)} seeds" in markdown

    findings = markdown[markdown.index("## Findings"):markdown.index("## Every point")]
    for point, label in (("vae", "VAE (beta 1, gamma 1)"), ("emae", "EM-AE (beta 1, gamma 0)")):
        rate, distortion = (summarize(point_metrics(swept, point, key)).format(2)
                            for key in ("test.rate", "test.distortion"))
        assert (f"{label}: rate R = {rate} (n = {len(SEEDS)}) nats/image, distortion D = {distortion} "
                f"(n = {len(SEEDS)}) nats/image") in findings, findings
    assert "active units (A_u > 0.01) against gamma at beta = 1: gamma 0: " in findings
    table = markdown[markdown.index("## Every point"):markdown.index("## Figures")]
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 2 + len(POINTS)


@pytest.mark.smoke
def test_mlflow_has_one_sweep_run_with_one_child_per_point_and_a_rebuild_updates_them(swept):
    def snapshot():
        runs = sweep_runs(swept)
        parents = [run for run in runs if run["name"] == "sweep"]
        assert len(parents) == 1 and parents[0]["tags"]["aebench.role"] == "sweep"
        (parent,) = parents
        children = {run["tags"]["point"]: run for run in runs
                    if run["tags"].get("mlflow.parentRunId") == parent["id"]}
        return runs, parent, children

    runs, parent, children = snapshot()
    assert sorted(children) == sorted(POINTS)
    assert all(run["status"] == "FINISHED" for run in [parent, *children.values()])
    assert {children[point]["name"] for point in POINTS} == {f"sweep-{point}" for point in POINTS}
    training = sorted(run["name"] for run in runs if run["tags"].get("aebench.replicate"))
    assert training == sorted(f"mnist-{point}-30-s{seed}" for point in POINTS for seed in SEEDS)
    artifacts = {path.name for path in swept.glob(f"mlruns/*/{parent['id']}/artifacts/*")}
    assert artifacts == {"report.md", "report.html"}
    with sqlite3.connect(swept / "mlflow.db") as db:
        (rate,), = db.execute("select value from latest_metrics where run_uuid = ? and key = 'test.rate'",
                              (children["vae"]["id"],)).fetchall()
    assert rate == pytest.approx(sum(point_metrics(swept, "vae", "test.rate")) / len(SEEDS))

    dvc("repro", "-f", "-s", "sweep/dvc.yaml:report", cwd=swept)
    runs_after, parent_after, children_after = snapshot()
    assert len(runs_after) == len(runs)
    assert parent_after["id"] == parent["id"] and parent_after["status"] == "FINISHED"
    assert {p: run["id"] for p, run in children_after.items()} == {p: run["id"] for p, run in children.items()}
    assert all(run["status"] == "FINISHED" for run in children_after.values())


def test_the_sweep_report_stage_reads_the_whole_sweep_params_file():
    # The report tags its MLflow runs by the grid and prints every point: any change of the file re-runs it.
    stages = read_yaml(REPO / "sweep" / "dvc.yaml")["stages"]
    assert stages["report"]["params"] == [{"sweep/params.yaml": None}]
    assert "sweep/metrics" in stages["report"]["deps"]
    assert re.search(r"--metrics sweep/metrics\b", stages["report"]["cmd"])
