"""The evaluate stage end to end on tiny checkpoints and a tiny prepared file; bad inputs refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from aebench.common.config import load_params
from aebench.common.errors import CheckpointError
from aebench.data import PreparedData, fixed_targets, load_prepared, save_prepared
from aebench.evaluation.classifier import SampleClassifier, save_classifier
from aebench.evaluation.metrics import AE_NOTE, check_metrics
from aebench.models import build_model, load_model, resolved_config, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
LATENT = 3
TEST_IMAGES = 120


@pytest.fixture(scope="module")
def stage(load_stage):
    return load_stage("evaluate")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A params file scaled down for speed, a prepared file of random digits-like images, a classifier."""
    root = tmp_path_factory.mktemp("evaluate")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["device"] = "cpu"
    params["model"]["hidden"] = [32]
    params["evaluate"].update(iw_samples=16, iw_batch_images=10, iw_max_rows=64, latent_images=50, sample_count=100)
    params["mlflow"]["tracking_uri"] = f"sqlite:///{root / 'mlflow.db'}"
    (root / "params.yaml").write_text(yaml.safe_dump(params))

    rng = np.random.default_rng(0)
    sizes = {"train": 300, "val": 10, "test": TEST_IMAGES}
    images = {split: (rng.random((n, 28, 28)) ** 3 * 255).astype(np.uint8) for split, n in sizes.items()}
    labels = {split: rng.integers(0, 10, n).astype(np.int64) for split, n in sizes.items()}
    save_prepared(root / "mnist.npz", PreparedData(images=images, labels=labels))

    torch.manual_seed(0)
    save_classifier(root / "clf.pt", SampleClassifier().eval(), config={"dataset": "mnist"}, test_accuracy=0.1)
    return root


def make_checkpoint(workspace: Path, kind: str, *, run_id: str | None = None, name: str | None = None) -> Path:
    config = resolved_config(load_params(workspace / "params.yaml"), dataset="mnist", model=kind, latent_dim=LATENT)
    torch.manual_seed(1)
    path = workspace / f"{name or kind}.pt"
    save_checkpoint(path, build_model(config), mlflow_run_id=run_id, epochs_done=1)
    return path


def outputs(workspace: Path, tag: str) -> dict[str, Path]:
    return {
        "metrics": workspace / "metrics" / f"{tag}.json",
        "latent": workspace / "latent" / f"{tag}.npz",
        "activity": workspace / "latent" / f"{tag}-activity.csv",
    }


def arguments(workspace: Path, checkpoint: Path, out: dict[str, Path], classifier: Path | None = None) -> list[str]:
    return [
        "--checkpoint", str(checkpoint),
        "--data", str(workspace / "mnist.npz"),
        "--classifier", str(classifier or workspace / "clf.pt"),
        "--metrics", str(out["metrics"]),
        "--latent", str(out["latent"]),
        "--activity", str(out["activity"]),
        "--params", str(workspace / "params.yaml"),
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def isolated_mlflow(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(workspace)  # MLflow's default artifact folder lands here


def new_run(workspace: Path) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aebench") or client.get_experiment(client.create_experiment("aebench"))
    run = client.create_run(experiment.experiment_id, run_name="training")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_vae_evaluation_writes_every_output_and_logs_to_its_run(workspace, stage, capsys):
    from mlflow.tracking import MlflowClient

    run_id = new_run(workspace)
    checkpoint = make_checkpoint(workspace, "vae", run_id=run_id)
    out = outputs(workspace, "vae")
    stage.main(arguments(workspace, checkpoint, out))

    metrics = json.loads(out["metrics"].read_text())
    check_metrics(metrics)
    assert (metrics["dataset"], metrics["model"], metrics["latent_dim"], metrics["mlflow_run_id"]) == ("mnist", "vae", LATENT, run_id)
    assert metrics["test"]["images"] == TEST_IMAGES and metrics["test"]["iw_samples"] == 16
    assert metrics["samples"]["count"] == 100 and metrics["test"]["note"] is None
    assert metrics["latent"]["kl_total"] == pytest.approx(sum(metrics["latent"]["kl_per_dim"]))

    # The figures' latent file: means of the first test images as the encoder saw them (binarized once).
    latent = np.load(out["latent"])
    data = load_prepared(workspace / "mnist.npz")
    test_images, test_labels = data.split("test")
    targets = fixed_targets(test_images, "dynamic", seed=load_params(workspace / "params.yaml").seed)
    expected_mu = load_model(checkpoint).encode(targets[:50])[0].detach()
    assert latent["mu"].dtype == np.float32 and latent["mu"].shape == (50, LATENT)
    np.testing.assert_allclose(latent["mu"], expected_mu.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(latent["labels"], test_labels[:50].numpy())
    np.testing.assert_allclose(latent["activity"], metrics["latent"]["activity"])
    rows = out["activity"].read_text().splitlines()
    assert rows[0] == "dimension,activity" and len(rows) == 1 + LATENT
    assert [float(r.split(",")[1]) for r in rows[1:]] == metrics["latent"]["activity"]

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    logged = client.get_run(run_id)
    assert logged.data.metrics["test.nll_iw"] == pytest.approx(metrics["test"]["nll_iw"])
    assert logged.data.metrics["probe.accuracy"] == pytest.approx(metrics["probe"]["accuracy"])
    activity = sorted(client.get_metric_history(run_id, "latent.activity"), key=lambda m: m.step)
    assert [m.value for m in activity] == pytest.approx(metrics["latent"]["activity"])
    assert logged.info.status == "FINISHED"  # evaluation adds to the run, it does not reopen it
    assert [a.path for a in client.list_artifacts(run_id, "evaluation")] == ["evaluation/vae.json"]
    assert "warning" not in capsys.readouterr().err


def test_ae_has_null_likelihoods_with_a_note_and_no_run_is_a_warning(workspace, stage, capsys):
    out = outputs(workspace, "ae")
    stage.main(arguments(workspace, make_checkpoint(workspace, "ae"), out))
    metrics = json.loads(out["metrics"].read_text())
    check_metrics(metrics)
    assert metrics["test"]["neg_elbo"] is None and metrics["test"]["nll_iw"] is None
    assert metrics["latent"]["kl_per_dim"] is None and metrics["test"]["note"] == AE_NOTE
    assert metrics["samples"]["count"] == 100  # the AE's decoder is judged on prior samples too
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "no MLflow run id" in warnings[0]


def test_an_unknown_run_is_one_warning_line_and_the_metrics_are_still_written(workspace, stage, capsys):
    out = outputs(workspace, "emae")
    stage.main(arguments(workspace, make_checkpoint(workspace, "emae", run_id="f" * 32), out))
    check_metrics(json.loads(out["metrics"].read_text()))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "f" * 32 in warnings[0] and "not found" in warnings[0]


def test_the_same_inputs_give_the_same_numbers(workspace, stage):
    checkpoint = make_checkpoint(workspace, "vae", name="repeat")
    first, second = outputs(workspace, "first"), outputs(workspace, "second")
    stage.main(arguments(workspace, checkpoint, first))
    stage.main(arguments(workspace, checkpoint, second))
    a, b = (json.loads(out["metrics"].read_text()) for out in (first, second))
    a.pop("timing"), b.pop("timing")
    assert a == b


def truncated(workspace: Path) -> Path:
    good = make_checkpoint(workspace, "vae", name="to-truncate")
    path = workspace / "truncated.pt"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return path


def other_architecture(workspace: Path) -> Path:
    payload = torch.load(make_checkpoint(workspace, "vae", name="mlp"), weights_only=True)
    payload["config"]["model"]["arch"] = "conv"  # MLP weights under a convolutional config
    path = workspace / "conv.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "bad, reason",
    [
        (lambda ws: ws / "absent.pt", "not found"),
        (truncated, "not a readable checkpoint"),
        (other_architecture, "architecture"),
        (lambda ws: ws / "clf.pt", "not an aebench checkpoint"),
    ],
)
def test_a_bad_checkpoint_is_refused_by_name_and_nothing_is_written(workspace, stage, bad, reason):
    checkpoint = bad(workspace)
    out = outputs(workspace, f"bad-{checkpoint.stem}")
    with pytest.raises(CheckpointError, match=reason) as err:
        stage.main(arguments(workspace, checkpoint, out))
    assert str(checkpoint) in str(err.value) and "\n" not in str(err.value)
    assert not any(path.exists() for path in out.values())


def test_a_classifier_of_another_dataset_is_refused(workspace, stage):
    other = workspace / "fashion-clf.pt"
    save_classifier(other, SampleClassifier(), config={"dataset": "fashion_mnist"}, test_accuracy=0.1)
    out = outputs(workspace, "wrong-classifier")
    with pytest.raises(CheckpointError, match="fashion_mnist") as err:
        stage.main(arguments(workspace, make_checkpoint(workspace, "vae"), out, classifier=other))
    assert str(other) in str(err.value)
    assert not any(path.exists() for path in out.values())


def test_the_script_exits_1_with_one_error_line(workspace):
    out = outputs(workspace, "script")
    checkpoint = truncated(workspace)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "evaluate.py"), *arguments(workspace, checkpoint, out)],
        capture_output=True, text=True, cwd=workspace, env=environment, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {checkpoint}: ")
    assert not any(path.exists() for path in out.values())
