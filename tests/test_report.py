"""The report stage: table, findings from the numbers, atomic outputs, MLflow study run.

Every input is synthetic and tiny: hand-built metrics JSONs, history CSVs,
latent npz, data-info JSONs and small PNGs standing in for the per-model
figures (the report only embeds those; test_figures.py draws the real ones).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import yaml

from aebench.common.config import params_from_dict
from aebench.common.errors import AebenchError
from aebench.reporting.catalog import figures_for, model_label
from aebench.reporting.findings import findings
from aebench.reporting.inputs import ModelKey, load_results, study_keys
from aebench.reporting.table import comparison_table

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "report.py"
AE_NOTE = "the AE has no q(z|x) and defines no density"


def study_params(root: Path, **changes) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["datasets"] = ["mnist", "fashion_mnist"]
    raw["models"] = ["ae", "vae", "emae"]
    raw["latent_dims"] = [2, 4]
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{root / 'mlflow.db'}"
    raw["mlflow"]["experiment"] = "report-test"
    raw.update(changes)
    return raw


def synthetic_metrics(key: ModelKey, rng: np.random.Generator, *, run_id: str | None = None) -> dict:
    """A metrics JSON of the contract's shape with random but plausible values."""
    dims = key.latent_dim
    stochastic = key.model != "ae"
    activity = (10.0 ** rng.uniform(-5, 0.5, dims)).tolist()
    neg_elbo = float(rng.uniform(90, 140)) if stochastic else None
    histogram = rng.multinomial(500, rng.dirichlet(np.ones(10))).tolist()
    return {
        "dataset": key.dataset, "model": key.model, "latent_dim": dims, "mlflow_run_id": run_id,
        "test": {
            "images": 1000, "recon_bce": float(rng.uniform(60, 160)), "recon_mse": float(rng.uniform(10, 40)),
            "neg_elbo": neg_elbo, "nll_iw": neg_elbo - float(rng.uniform(1, 20)) if stochastic else None,
            "iw_samples": 16, "note": None if stochastic else AE_NOTE,
        },
        "latent": {
            "active_units": int(np.sum(np.array(activity) > 0.01)), "au_threshold": 0.01,
            "kl_total": float(rng.uniform(5, 30)) if stochastic else None, "activity": activity,
            "kl_per_dim": rng.uniform(0, 3, dims).tolist() if stochastic else None,
        },
        "probe": {"method": "logistic_regression", "accuracy": float(rng.uniform(0.5, 0.97))},
        "samples": {
            "count": 500, "class_histogram": histogram, "class_entropy": float(rng.uniform(0.3, 1.0)),
            "mean_confidence": float(rng.uniform(0.5, 0.99)), "frechet_distance": float(rng.uniform(1, 80)),
        },
        "timing": {"seconds": float(rng.uniform(1, 9))},
    }


def write_model_files(root: Path, key: ModelKey, metrics: dict, rng: np.random.Generator) -> None:
    (root / "metrics" / key.dataset).mkdir(parents=True, exist_ok=True)
    (root / "metrics" / f"{key.stem}.json").write_text(json.dumps(metrics))
    terms = ["loss", "recon"] + {"ae": [], "vae": ["kl"], "emae": ["mu_penalty"]}[key.model]
    epochs = 3
    history = {"epoch": list(range(1, epochs + 1)), "seconds": rng.uniform(1, 4, epochs).round(3).tolist()}
    for split in ("train", "val"):
        for term in terms:
            history[f"{split}_{term}"] = np.sort(rng.uniform(80, 200, epochs))[::-1].round(3).tolist()
    (root / "history" / key.dataset).mkdir(parents=True, exist_ok=True)
    lines = [",".join(history)] + [",".join(str(history[c][i]) for c in history) for i in range(epochs)]
    (root / "history" / f"{key.stem}.csv").write_text("\n".join(lines) + "\n")
    activity = np.array(metrics["latent"]["activity"])
    mu = rng.normal(size=(60, key.latent_dim)) * np.sqrt(activity)
    (root / "latent" / key.dataset).mkdir(parents=True, exist_ok=True)
    np.savez(root / "latent" / f"{key.stem}.npz", mu=mu.astype(np.float32),
             labels=rng.integers(0, 10, 60), activity=activity)
    figure_dir = root / "reports" / "figures" / key.stem
    figure_dir.mkdir(parents=True, exist_ok=True)
    for spec in figures_for(key.latent_dim):  # small stand-ins: the report embeds, it does not draw them
        matplotlib.image.imsave(figure_dir / spec.filename, rng.uniform(size=(12, 20)), cmap="gray")


def write_data_info(root: Path, dataset: str) -> None:
    files = {
        name: {"bytes": 1000 + i, "md5": f"{i:032x}", "sha256": f"{i:064x}"}
        for i, name in enumerate(["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                  "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"])
    }
    info = {
        "dataset": dataset, "source": {"name": "test-folder", "location": "/nowhere"}, "files": files,
        "splits": {"train": 55000, "val": 5000, "test": 10000},
        "label_counts": {split: [1] * 10 for split in ("train", "val", "test")}, "val_seed": 0,
    }
    (root / "data" / "prepared").mkdir(parents=True, exist_ok=True)
    (root / "data" / "prepared" / f"{dataset}.json").write_text(json.dumps(info))


def write_synthetic_study(root: Path, *, seed: int = 0, run_ids: dict[ModelKey, str] | None = None, **changes) -> dict:
    """Every input of the report stage under `root`; returns the raw params written to root/params.yaml."""
    raw = study_params(root, **changes)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    rng = np.random.default_rng(seed)
    for key in study_keys(params_from_dict(raw)):
        metrics = synthetic_metrics(key, rng, run_id=(run_ids or {}).get(key))
        write_model_files(root, key, metrics, rng)
    for dataset in raw["datasets"]:
        write_data_info(root, dataset)
        (root / "metrics" / "classifiers").mkdir(parents=True, exist_ok=True)
        (root / "metrics" / "classifiers" / f"{dataset}.json").write_text(json.dumps({"test_accuracy": 0.9876}))
    return raw


def stage_args(root: Path) -> list[str]:
    return [
        "--prepared", str(root / "data" / "prepared"), "--history", str(root / "history"),
        "--metrics", str(root / "metrics"), "--latent", str(root / "latent"),
        "--figures", str(root / "reports" / "figures"), "--compare", str(root / "reports" / "compare"),
        "--markdown", str(root / "reports" / "report.md"), "--html", str(root / "reports" / "report.html"),
        "--params", str(root / "params.yaml"),
    ]


def run_stage_main(root: Path) -> None:
    """The stage's main() in this process (faster than a subprocess; errors arrive as exceptions)."""
    import runpy

    module = runpy.run_path(str(STAGE))
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the store named in the test's params, always
        module["main"](stage_args(root))


def load(root: Path, raw: dict):
    return load_results(params_from_dict(raw), metrics_dir=root / "metrics", history_dir=root / "history",
                        latent_dir=root / "latent")


def findings_text(results) -> str:
    return "\n".join(f"{section.title}: {sentence}" for section in findings(results) for sentence in section.sentences)


# --- table and findings ------------------------------------------------------


def test_table_has_one_row_per_model_with_the_values_of_its_metrics_file(tmp_path):
    raw = write_synthetic_study(tmp_path)
    results = load(tmp_path, raw)
    header, rows = comparison_table(results)
    assert len(rows) == 2 * 3 * 2
    assert [tuple(row[:3]) for row in rows] == [
        (label, model_label(r.key.model), str(r.key.latent_dim))
        for r, label in zip(results, ["MNIST"] * 6 + ["Fashion-MNIST"] * 6, strict=True)
    ]
    nll = header.index("IW NLL (nats/image)")
    probe = header.index("probe accuracy (%)")
    for row, result in zip(rows, results, strict=True):
        metrics = json.loads((tmp_path / "metrics" / f"{result.key.stem}.json").read_text())
        expected_nll = metrics["test"]["nll_iw"]
        assert row[nll] == ("n/a" if expected_nll is None else f"{expected_nll:,.2f}")
        assert row[probe] == f"{100 * metrics['probe']['accuracy']:.1f}"
    assert all("(" in h for h in header[3:]), "every metric column names its unit"


def test_findings_follow_the_numbers(tmp_path):
    raw = write_synthetic_study(tmp_path)
    results = load(tmp_path, raw)
    before = findings_text(results)

    vae = next(r for r in results if r.key == ModelKey("mnist", "vae", 4))
    emae = next(r for r in results if r.key == ModelKey("mnist", "emae", 4))
    vae.metrics["latent"]["active_units"] = 1
    emae.metrics["latent"]["active_units"] = 4
    vae.metrics["test"]["nll_iw"], emae.metrics["test"]["nll_iw"] = 91.25, 123.5
    after = findings_text(results)
    assert after != before
    assert re.search(
        r"^MNIST, 4-D latent: Active dimensions \(A_u > 0.01\): AE \d of 4, VAE 1 of 4, EM-AE 4 of 4\.$", after, re.M
    )
    assert "IW NLL (nats/image), lowest first: VAE 91.25, EM-AE 123.50 (+32.25); n/a for AE" in after

    # Reverse the order of the two likelihoods: the ranking reverses with them.
    vae.metrics["test"]["nll_iw"], emae.metrics["test"]["nll_iw"] = 130.0, 100.0
    assert "lowest first: EM-AE 100.00, VAE 130.00 (+30.00)" in findings_text(results)


def test_two_metric_sets_give_different_findings(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    raw_first = write_synthetic_study(first, seed=1)
    raw_second = write_synthetic_study(second, seed=2)
    text_first, text_second = findings_text(load(first, raw_first)), findings_text(load(second, raw_second))
    assert text_first != text_second
    # Every active-unit count the findings state is the one in the metrics file.
    for root, raw, text in ((first, raw_first, text_first), (second, raw_second, text_second)):
        for result in load(root, raw):
            count = json.loads((root / "metrics" / f"{result.key.stem}.json").read_text())["latent"]["active_units"]
            assert f"{model_label(result.key.model)} {count} of {result.key.latent_dim}" in text


def test_convergence_finding_counts_models_still_improving(tmp_path):
    raw = write_synthetic_study(tmp_path)
    results = load(tmp_path, raw)
    # Synthetic histories fall every epoch: all 12 were still improving.
    assert "still fell in the last epoch for 12 of 12 models" in findings_text(results)
    results[0].history.loc[results[0].history.index[-1], "val_loss"] = 999.0
    text = findings_text(results)
    assert "for 11 of 12 models" in text and "AE-2 on MNIST (+" in text


# --- the stage -----------------------------------------------------------------


@pytest.fixture(scope="module")
def built_study(tmp_path_factory):
    """One real stage run in a subprocess, with three model runs in the MLflow store (one id unknown)."""
    root = tmp_path_factory.mktemp("study")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    # An explicit artifact store: MLflow's default is a folder under the working directory.
    experiment = client.create_experiment("report-test", artifact_location=(root / "mlartifacts").as_uri())
    keys = [ModelKey("mnist", m, 2) for m in ("ae", "vae")]
    run_ids = {key: client.create_run(experiment).info.run_id for key in keys}
    for run_id in run_ids.values():
        client.set_terminated(run_id)
    run_ids[ModelKey("mnist", "emae", 2)] = "0123456789abcdef0123456789abcdef"  # not in the store
    write_synthetic_study(root, run_ids=run_ids)
    # Prints whether torch was imported, after main() returned.
    probe = f"import runpy, sys; sys.argv = ['report.py'] + {stage_args(root)!r}; " \
            f"runpy.run_path({str(STAGE)!r}, run_name='__main__'); print('torch loaded:', 'torch' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return root, client, experiment, run_ids, done


def test_stage_writes_both_reports_without_importing_torch(built_study):
    root, _, _, _, done = built_study
    assert "torch loaded: False" in done.stdout
    markdown = (root / "reports" / "report.md").read_text()
    html = (root / "reports" / "report.html").read_text()
    assert sorted(p.name for p in (root / "reports" / "compare").iterdir()) == [
        "fashion_mnist-activity.png", "fashion_mnist-metrics.png", "mnist-activity.png", "mnist-metrics.png",
    ]
    # Markdown links every figure relative to itself; the HTML embeds every one of them.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    per_model = sum(len(figures_for(dim)) for dim in (2, 4)) * 3 * 2
    assert len(links) == per_model + 4
    assert all((root / "reports" / link).is_file() for link in links)
    assert html.count('<img src="data:image/png;base64,') == per_model + 4
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "the HTML refers to something outside itself"
    assert "98.76%" in markdown  # the classifier's accuracy, from metrics/classifiers
    assert "`00000000000000000000000000000001`" in markdown  # a checksum from the data-info JSON


def test_study_run_holds_the_report_and_nests_the_model_runs(built_study):
    root, client, experiment, run_ids, done = built_study
    studies = [r for r in client.search_runs([experiment]) if r.data.tags.get("aebench.role") == "study"]
    assert len(studies) == 1
    study = studies[0]
    assert study.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(study.info.run_id)} == {"report.md", "report.html"}
    for key in (ModelKey("mnist", "ae", 2), ModelKey("mnist", "vae", 2)):
        assert client.get_run(run_ids[key]).data.tags["mlflow.parentRunId"] == study.info.run_id
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: MLflow run {run_ids[ModelKey('mnist', 'emae', 2)]} of mnist/emae-2 not found in "
        f"sqlite:///{root / 'mlflow.db'}; not nested under the study run"
    ] + [
        f"warning: {key.stem}: its metrics name no MLflow run; not nested under the study run"
        for key in study_keys(params_from_dict(study_params(root)))
        if key not in run_ids
    ]


def _report_outputs(root: Path) -> dict[str, bytes]:
    reports = root / "reports"
    return {p.name: p.read_bytes() for p in reports.iterdir() if p.is_file()}


def test_a_failing_stage_leaves_the_previous_report_untouched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_synthetic_study(tmp_path)
    reports = tmp_path / "reports"
    (reports / "report.md").write_text("previous report\n")
    (reports / "report.html").write_text("<p>previous report</p>\n")
    before = _report_outputs(tmp_path)
    # A figure goes missing: the failure comes after the comparison figures were drawn.
    missing = reports / "figures" / "fashion_mnist" / "emae-4" / "interpolation.png"
    missing.unlink()
    with pytest.raises(AebenchError, match=re.escape(f"{missing}: figure not found")):
        run_stage_main(tmp_path)
    assert _report_outputs(tmp_path) == before
    assert sorted(p.name for p in reports.iterdir()) == ["figures", "report.html", "report.md"]
    assert not (tmp_path / "mlflow.db").exists(), "no study run is logged for a report that was not written"


def test_bad_metrics_file_is_named_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_synthetic_study(tmp_path)
    broken = tmp_path / "metrics" / "mnist" / "vae-4.json"
    metrics = json.loads(broken.read_text())
    del metrics["latent"]["active_units"]
    broken.write_text(json.dumps(metrics))
    with pytest.raises(AebenchError, match=re.escape(f"{broken}: latent.active_units: missing")):
        run_stage_main(tmp_path)
    copied = copy.deepcopy(json.loads(broken.read_text()))
    copied["latent"]["active_units"], copied["dataset"] = 2, "fashion_mnist"  # a valid file of another model
    broken.write_text(json.dumps(copied))
    with pytest.raises(AebenchError, match=re.escape(f"{broken}: describes fashion_mnist/vae-4, expected mnist/vae-4")):
        run_stage_main(tmp_path)
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["figures"]

