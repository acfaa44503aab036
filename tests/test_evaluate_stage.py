"""The evaluate stage end to end on a tiny workspace: tiny checkpoints at the layout paths, a tiny prepared
file, an untrained classifier; what it writes, where it logs, and what it refuses before any work."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, make_model, seed_store, tiny_raw, write_params, write_prepared_file

from aebench.common.config import params_from_dict
from aebench.common.errors import CheckpointError
from aebench.common.layout import FIGURE_PIXELS_SUFFIX, selected_keys
from aebench.common.tracking import CHECKPOINT_TAG, REPLICATE_TAG
from aebench.data.binarize import fixed_targets
from aebench.data.prepared import load_prepared
from aebench.evaluation.classifier import SampleClassifier, save_classifier
from aebench.evaluation.convergence import history_convergence
from aebench.evaluation.metrics import DETERMINISTIC_NOTE, check_metrics
from aebench.models.autoencoder import model_config
from aebench.models.checkpoint import load_model, save_checkpoint
from aebench.training.trainer import write_history

VARIANTS = {"ae": {"objective": "deterministic"}, "vae": {"objective": "kl_split", "beta": 1.0, "gamma": 1.0}}
LATENT_DIMS = [2, 4]
SIZES = {"train": 200, "val": 10, "test": 60}
RAW = {"variants": VARIANTS, "latent_dims": LATENT_DIMS}


def replicates():
    params = params_from_dict(tiny_raw(**RAW))
    return params, {(key.variant, key.latent_dim): key.replicate(0) for key in selected_keys(params)}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_workspace(root: Path) -> Path:
    """params, prepared data, a classifier, a checkpoint per (variant, latent size) at seed 0, an MLflow store."""
    (root / ".dvc").mkdir(parents=True)
    write_params(root / "params.yaml", tiny_raw(**RAW))
    write_prepared_file(root / "data" / "prepared" / "mnist.npz", SIZES)
    torch.manual_seed(0)
    save_classifier(root / "models" / "classifiers" / "mnist.pt", SampleClassifier().eval(),
                    config={"dataset": "mnist"}, test_accuracy=0.1, second=SampleClassifier(architecture="mlp").eval())
    params, found = replicates()
    for (variant, latent_dim), replicate in found.items():
        model = make_model(model_config(params, replicate))
        save_checkpoint(replicate.path(root / "models", ".pt"), model, epochs_done=2)
        # The vae-2 trained long enough to pass the convergence test; the others only 2 epochs.
        epochs = CONVERGED_EPOCHS if (variant, latent_dim) == ("vae", 2) else 2
        write_history(replicate.path(root / "history", ".csv"), synthetic_history(epochs, latent_dim))
    seed_store(root)
    return root


CONVERGED_EPOCHS = 8


def synthetic_history(epochs: int, latent_dim: int) -> list[dict[str, float]]:
    """A flat objective over `epochs`, every dimension active and used throughout."""
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 100.0, "val_loss": 101.0}
        row |= {f"val_activity_{u:03d}": 1.0 for u in range(latent_dim)}
        row |= {f"val_usage_{u:03d}": 0.5 for u in range(latent_dim)}
        rows.append(row)
    return rows


def stage_args(root: Path, *selectors: str, metrics: str = "metrics", latent: str = "latent") -> list[str]:
    return [
        "--dataset", "mnist", *selectors, "--prepared", str(root / "data" / "prepared"),
        "--models", str(root / "models"), "--history", str(root / "history"), "--classifiers", str(root / "models" / "classifiers"),
        "--metrics", str(root / metrics), "--latent", str(root / latent), "--runinfo", str(root / "runinfo"),
        "--params", str(root / "params.yaml"),
    ]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def client_of(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def training_run(root: Path, name: str, sha: str) -> str:
    """A finished run as the train stage leaves it: the replicate's name and its checkpoint's sha256 as tags."""
    client = client_of(root)
    experiment = client.get_experiment_by_name("aebench").experiment_id
    run = client.create_run(experiment, run_name=name, tags={REPLICATE_TAG: name, CHECKPOINT_TAG: sha})
    client.set_terminated(run.info.run_id, "FINISHED")
    time.sleep(0.01)  # distinct start times
    return run.info.run_id


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    monkeypatch.setenv("AEBENCH_WORKERS", "1")  # in-process jobs: the tests' models are tiny
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import signal

    monkeypatch.setattr(signal, "signal", lambda *args: None)  # run_stage must not rewire pytest's SIGTERM


@pytest.fixture(scope="module")
def stage(load_stage):
    return load_stage("evaluate")


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, stage):
    """The workspace, evaluated once for every model; the runs the vae's checkpoints should and should not get."""
    root = build_workspace(tmp_path_factory.mktemp("evaluate"))
    _, found = replicates()
    vae_2, vae_4 = found[("vae", 2)], found[("vae", 4)]
    sha_2, sha_4 = (sha256(r.path(root / "models", ".pt")) for r in (vae_2, vae_4))
    runs = {
        "vae-2": training_run(root, vae_2.name, sha_2),
        "vae-4": training_run(root, vae_4.name, sha_4),
        "vae-2 newer, another checkpoint": training_run(root, vae_2.name, "0" * 64),
        "vae-4 holding vae-2's bytes": training_run(root, vae_4.name, sha_2),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AEBENCH_WORKERS", "1")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        for variant in VARIANTS:
            stage.main(stage_args(root, "--variant", variant))
    return root, found, runs


def metrics_of(root: Path, replicate, folder: str = "metrics") -> dict:
    return json.loads(replicate.path(root / folder, ".json").read_text())


def test_every_model_gets_metrics_that_pass_the_schema_and_its_latent_arrays(evaluated):
    root, found, _ = evaluated
    assert files_under(root / "metrics") == sorted(r.path("", ".json").as_posix() for r in found.values())
    # One seed in params: each replicate is its model's first seed, so each gets its figure pixels too.
    assert files_under(root / "latent") == sorted(r.path("", suffix).as_posix() for r in found.values()
                                                  for suffix in (".npz", FIGURE_PIXELS_SUFFIX))
    assert files_under(root / "runinfo") == sorted(r.path("evaluate", ".json").as_posix() for r in found.values())
    for (variant, latent_dim), replicate in found.items():
        metrics = metrics_of(root, replicate)
        check_metrics(metrics)
        objective = VARIANTS[variant]["objective"]
        identity = [metrics[key] for key in ("dataset", "variant", "objective", "latent_dim", "seed")]
        assert identity == ["mnist", variant, objective, latent_dim, 0]
        assert metrics["stochastic"] is (variant == "vae")
        assert metrics["test"]["images"] == SIZES["test"] and metrics["test"]["iw_samples"] == 8
        assert all(metrics["samples"][source]["count"] == 60 for source in ("prior", "gaussian", "gmm"))
        # The MLP judge saved beside the CNN judges the same samples in its own features: other numbers.
        for source in ("prior", "gaussian", "gmm"):
            first, second = metrics["samples"][source], metrics["samples_mlp_judge"][source]
            assert second["count"] == first["count"] and second["frechet_distance"] != first["frechet_distance"]
        assert (metrics["manifold"]["roughness"] is None) is (latent_dim != 2)
        convergence = metrics["convergence"]  # read from the history beside the checkpoint
        assert convergence["converged"] is ((variant, latent_dim) == ("vae", 2))
        assert convergence["epochs"] == (CONVERGED_EPOCHS if convergence["converged"] else 2)


def test_a_missing_history_is_one_line_before_any_output(tmp_path, stage, capsys):
    root = build_workspace(tmp_path)
    _, found = replicates()
    missing = found[("vae", 4)].path(root / "history", ".csv")
    missing.unlink()
    line = refused(stage, stage_args(root, "--variant", "vae"), capsys)
    assert "training history not found" in line and str(missing) in line
    assert_nothing_written(root)


def test_the_latent_file_holds_the_means_the_encoder_gives_the_binarized_test_images(evaluated):
    root, found, _ = evaluated
    test_images, test_labels = load_prepared(root / "data" / "prepared" / "mnist.npz").split("test")
    targets = fixed_targets(test_images, "dynamic", seed=0, split="test")
    for (_, latent_dim), replicate in found.items():
        with np.load(replicate.path(root / "latent", ".npz")) as latent:
            assert sorted(latent.files) == ["activity", "expost_gaussian", "expost_gmm", "labels", "mu"]
            model = load_model(replicate.path(root / "models", ".pt"))
            with torch.no_grad():
                expected = model.encode(targets[:20])[0]
            assert latent["mu"].dtype == np.float32 and latent["mu"].shape == (20, latent_dim)
            np.testing.assert_allclose(latent["mu"], expected.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(latent["labels"], test_labels[:20].numpy())
            assert latent["activity"].tolist() == metrics_of(root, replicate)["latent"]["activity"]
            assert latent["expost_gmm"].shape == latent["expost_gaussian"].shape == (60, latent_dim)


def test_the_figure_pixels_are_what_the_checkpoint_decodes(evaluated):
    from aebench.common.runtime import generator
    from aebench.evaluation.geometry import interpolation_ends, manifold_grid

    root, found, _ = evaluated
    figures = params_from_dict(tiny_raw(**RAW)).figures
    count, grid = figures.recon_images, figures.samples_grid
    test_images, test_labels = load_prepared(root / "data" / "prepared" / "mnist.npz").split("test")
    targets = fixed_targets(test_images, "dynamic", seed=0, split="test")  # (60, 1, 28, 28)
    start, end = interpolation_ends(test_labels)
    for (_, latent_dim), replicate in found.items():
        model = load_model(replicate.path(root / "models", ".pt"))
        with np.load(replicate.path(root / "latent", FIGURE_PIXELS_SUFFIX)) as pixels, torch.no_grad():
            assert all(pixels[name].dtype == np.float32 for name in pixels.files)
            assert ("manifold" in pixels.files) is (latent_dim == 2)
            np.testing.assert_array_equal(pixels["recon_test"], targets[:count, 0].numpy())
            codes = model.encode(targets[:count])[0]
            np.testing.assert_allclose(pixels["recon_codes"], codes.numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(pixels["recon_decoded"], model.decode_images(codes)[:, 0].numpy(), atol=1e-6)
            prior = torch.randn((grid * grid, latent_dim), generator=generator(0, "figure-samples"))
            np.testing.assert_allclose(pixels["samples_prior"], model.decode_images(prior)[:, 0].numpy(), atol=1e-6)
            with np.load(replicate.path(root / "latent", ".npz")) as latent:
                expost = torch.from_numpy(latent["expost_gmm"][: grid * grid])
            np.testing.assert_allclose(pixels["samples_gmm"], model.decode_images(expost)[:, 0].numpy(), atol=1e-6)
            if latent_dim == 2:
                decoded = model.decode_images(manifold_grid(figures.manifold_steps, figures.manifold_range))
                np.testing.assert_allclose(pixels["manifold"], decoded[:, 0].numpy(), atol=1e-6)
            strip = pixels["interpolation"]  # the metrics' two test images at the ends, the path between
            assert strip.shape == (figures.interpolation_steps + 2, 28, 28)
            np.testing.assert_array_equal(strip[[0, -1]], targets[[start, end], 0].numpy())


def test_a_deterministic_code_has_null_likelihoods_and_a_note(evaluated):
    root, found, _ = evaluated
    for latent_dim in LATENT_DIMS:
        metrics = metrics_of(root, found[("ae", latent_dim)])
        test = metrics["test"]
        assert (test["distortion"], test["rate"], test["neg_elbo"], test["nll_iw"]) == (None, None, None, None)
        assert (test["nll_iw_se"], test["nll_iw_mc_se"]) == (None, None)
        assert metrics["latent"]["kl_per_dim"] is None and test["note"] == DETERMINISTIC_NOTE
        vae = metrics_of(root, found[("vae", latent_dim)])
        assert vae["test"]["neg_elbo"] == pytest.approx(vae["test"]["distortion"] + vae["test"]["rate"])
        assert vae["test"]["nll_iw_se"] > 0 and vae["test"]["nll_iw_mc_se"] > 0  # the IW estimate's precision
        assert vae["test"]["rate"] == pytest.approx(sum(vae["latent"]["kl_per_dim"]))


def test_numbers_go_to_the_run_that_trained_exactly_that_checkpoint(evaluated):
    root, found, runs = evaluated
    client = client_of(root)
    for latent_dim in LATENT_DIMS:
        run_id = runs[f"vae-{latent_dim}"]
        metrics = metrics_of(root, found[("vae", latent_dim)])
        logged = client.get_run(run_id)
        assert logged.data.metrics["test.nll_iw"] == pytest.approx(metrics["test"]["nll_iw"])
        assert logged.data.metrics["probe.accuracy"] == pytest.approx(metrics["probe"]["accuracy"])
        activity = sorted(client.get_metric_history(run_id, "latent.activity"), key=lambda m: m.step)
        assert [m.step for m in activity] == list(range(latent_dim))
        assert [m.value for m in activity] == pytest.approx(metrics["latent"]["activity"])
        assert logged.info.status == "FINISHED"  # evaluation adds to the run, it does not reopen it
        assert [a.path for a in client.list_artifacts(run_id, "evaluation")] == ["evaluation/seed-0.json"]
    for decoy in ("vae-2 newer, another checkpoint", "vae-4 holding vae-2's bytes"):
        assert client.get_run(runs[decoy]).data.metrics == {}, decoy
    records = [json.loads(path.read_text()) for path in (root / "runinfo").rglob("*.json")]
    records = {record["model"]: record for record in records}
    assert records[found[("vae", 2)].name]["mlflow_run_id"] == runs["vae-2"]
    assert records[found[("ae", 2)].name]["mlflow_run_id"] is None


def test_a_checkpoint_no_run_trained_is_one_warning_line(tmp_path, stage, capsys):
    root = build_workspace(tmp_path)
    stage.main(stage_args(root, "--variant", "ae", "--latent-dim", "4"))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    checkpoint = root / "models" / "mnist" / "ae" / "latent-4" / "seed-0.pt"
    metrics = root / "metrics" / "mnist" / "ae" / "latent-4" / "seed-0.json"
    assert warnings == [
        f"warning: evaluate mnist-ae-4-s0: no MLflow run in sqlite:///{root / 'mlflow.db'} trained {checkpoint} "
        f"(sha256 {sha256(checkpoint)[:12]}); its numbers are in {metrics} only"
    ]
    check_metrics(json.loads(metrics.read_text()))


def test_two_evaluations_give_the_same_bytes(evaluated, stage):
    root, found, _ = evaluated
    args = stage_args(root, "--variant", "vae", "--latent-dim", "2", metrics="metrics-again", latent="latent-again")
    stage.main(args)
    replicate = found[("vae", 2)]
    for first, again, suffix in (("metrics", "metrics-again", ".json"), ("latent", "latent-again", ".npz"),
                                 ("latent", "latent-again", FIGURE_PIXELS_SUFFIX)):
        assert replicate.path(root / again, suffix).read_bytes() == replicate.path(root / first, suffix).read_bytes()


# --- refusals: before any work, one line, nothing written --------------------------------------------


def refused(stage, args, capsys) -> str:
    with pytest.raises(SystemExit) as caught:
        stage.run_stage(lambda: stage.main(args))
    lines = capsys.readouterr().err.splitlines()
    assert caught.value.code == 1 and len(lines) == 1, lines
    return lines[0]


def assert_nothing_written(root: Path) -> None:
    assert files_under(root / "metrics") == [] and files_under(root / "latent") == []
    assert files_under(root / "runinfo") == []
    client = client_of(root)
    experiment = client.get_experiment_by_name("aebench").experiment_id
    assert all(run.data.metrics == {} for run in client.search_runs([experiment]))


def test_a_checkpoint_of_another_latent_size_is_refused(tmp_path, stage, capsys):
    """Fault case 3: a latent-4 checkpoint copied over the latent-2 path."""
    root = build_workspace(tmp_path)
    _, found = replicates()
    source, target = (found[("vae", d)].path(root / "models", ".pt") for d in (4, 2))
    for replicate in (found[("vae", 2)], found[("vae", 4)]):
        training_run(root, replicate.name, sha256(replicate.path(root / "models", ".pt")))
    shutil.copy(source, target)
    line = refused(stage, stage_args(root, "--variant", "vae"), capsys)
    assert line == f"error: {target}: holds latent_dim = 4, but is evaluated as latent_dim = 2"
    assert_nothing_written(root)


def test_a_checkpoint_trained_with_other_params_is_refused(tmp_path, stage, capsys):
    root = build_workspace(tmp_path)
    write_params(root / "params.yaml", tiny_raw(**RAW, train__lr=2e-3))
    checkpoint = root / "models" / "mnist" / "ae" / "latent-2" / "seed-0.pt"
    line = refused(stage, stage_args(root, "--variant", "ae"), capsys)
    assert line == f"error: {checkpoint}: trained with train.lr = 0.001, params now say 0.002 (retrain it: dvc repro)"
    assert_nothing_written(root)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def reshape_weights(path: Path) -> None:
    payload = torch.load(path, weights_only=True)
    payload["state_dict"]["mean_head.weight"] = torch.zeros(4, 7)  # the config still says what params say
    torch.save(payload, path)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda path: path.unlink(), "checkpoint not found"),
        (truncate, "not a readable checkpoint"),
        (lambda path: shutil.copy(path.parents[3] / "classifiers" / "mnist.pt", path), "not an aebench checkpoint"),
        (reshape_weights, "weights do not match the model's architecture"),
    ],
)
def test_a_bad_checkpoint_is_refused_by_name_and_nothing_is_written(tmp_path, stage, capsys, damage, reason):
    root = build_workspace(tmp_path)
    checkpoint = root / "models" / "mnist" / "vae" / "latent-4" / "seed-0.pt"
    damage(checkpoint)
    line = refused(stage, stage_args(root, "--variant", "vae", "--latent-dim", "4"), capsys)
    assert line.startswith(f"error: {checkpoint}: {reason}")
    assert_nothing_written(root)


def test_a_damaged_later_checkpoint_stops_the_stage_before_any_output(tmp_path, stage, capsys):
    """The stage promises every input checked before any computation, nothing written until all is computed."""
    root = build_workspace(tmp_path)
    checkpoint = root / "models" / "mnist" / "vae" / "latent-4" / "seed-0.pt"
    reshape_weights(checkpoint)  # its config is right: only loading its weights shows the damage
    line = refused(stage, stage_args(root, "--variant", "vae"), capsys)  # latent 2 is evaluated first
    assert line.startswith(f"error: {checkpoint}: weights do not match the model's architecture")
    assert_nothing_written(root)


def test_a_missing_classifier_is_refused(tmp_path, stage, capsys):
    root = build_workspace(tmp_path)
    classifier = root / "models" / "classifiers" / "mnist.pt"
    classifier.unlink()
    line = refused(stage, stage_args(root, "--variant", "ae"), capsys)
    assert line == f"error: {classifier}: classifier not found (run `dvc repro classifier@mnist`)"
    assert_nothing_written(root)


def test_a_classifier_file_without_the_second_judge_is_refused_before_any_output(tmp_path, stage, capsys):
    root = build_workspace(tmp_path)
    classifier = root / "models" / "classifiers" / "mnist.pt"
    save_classifier(classifier, SampleClassifier().eval(), config={"dataset": "mnist"}, test_accuracy=0.1)
    line = refused(stage, stage_args(root, "--variant", "ae"), capsys)
    assert line == f"error: {classifier}: holds no second judge (rerun `dvc repro classifier`)"
    assert_nothing_written(root)


def test_a_classifier_of_another_dataset_is_refused(tmp_path, stage):
    root = build_workspace(tmp_path)
    classifier = root / "models" / "classifiers" / "mnist.pt"
    save_classifier(classifier, SampleClassifier().eval(), config={"dataset": "fashion_mnist"}, test_accuracy=0.1)
    with pytest.raises(CheckpointError, match="fashion_mnist") as caught:
        stage.main(stage_args(root, "--variant", "ae", "--latent-dim", "2"))
    assert str(caught.value).startswith(f"{classifier}: ")
    assert_nothing_written(root)


def test_the_script_exits_1_with_one_error_line(tmp_path):
    root = build_workspace(tmp_path)
    checkpoint = root / "models" / "mnist" / "vae" / "latent-2" / "seed-0.pt"
    truncate(checkpoint)
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "evaluate.py"), *stage_args(root, "--variant", "vae")],
        capture_output=True, text=True, cwd=root, env=environment, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {checkpoint}: not a readable checkpoint")
    assert_nothing_written(root)


# --- the runner's small pieces ---------------------------------------------------------------------------


def test_the_manifold_grid_runs_row_major_from_the_top_left():
    from aebench.evaluation.runner import manifold_grid

    grid = manifold_grid(3, 2.0)
    assert grid.tolist() == [
        [-2.0, 2.0], [0.0, 2.0], [2.0, 2.0],
        [-2.0, 0.0], [0.0, 0.0], [2.0, 0.0],
        [-2.0, -2.0], [0.0, -2.0], [2.0, -2.0],
    ]


def test_the_interpolation_walks_from_the_first_0_to_the_first_7_else_between_the_first_two_classes():
    from aebench.evaluation.runner import interpolation_ends

    assert interpolation_ends(torch.tensor([3, 7, 0, 7, 0])) == (2, 1)
    assert interpolation_ends(torch.tensor([3, 3, 5, 1])) == (0, 2)
    assert interpolation_ends(torch.tensor([4, 4])) == (0, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_evaluation_is_repeatable_and_its_deterministic_numbers_agree_with_the_cpu(tmp_path):
    from aebench.evaluation.runner import evaluate_replicate
    from aebench.evaluation.sample_quality import reference

    params, found = replicates()
    model = make_model(model_config(params, found[("vae", 2)])).eval()
    torch.manual_seed(0)
    classifier = SampleClassifier().eval()
    data = load_prepared(write_prepared_file(tmp_path / "mnist.npz", SIZES))

    history = tmp_path / "history.csv"
    write_history(history, synthetic_history(2, 2))
    convergence = history_convergence(history, params)

    def evaluate(device: str) -> dict:
        real = reference(classifier.to(device), data.split("test")[0], device=device)
        second = (classifier, real)  # the same judge twice: what is compared here is the device
        return evaluate_replicate(model.to(device), data, classifier.to(device), real, params.evaluate, params.figures,
                                  second_judge=second, convergence=convergence, device=device,
                                  log=lambda line: None).metrics

    first, again = evaluate("cuda"), evaluate("cuda")
    assert first == again
    check_metrics(first)
    cpu = evaluate("cpu")
    for key in ("recon_nll", "recon_bce", "recon_mse", "rate"):  # no random draw in these
        assert first["test"][key] == pytest.approx(cpu["test"][key], rel=1e-4), key
    assert first["latent"]["activity"] == pytest.approx(cpu["latent"]["activity"], rel=1e-3)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("evaluate__knn_k", 201,
     "evaluate.knn_k: must be <= 200, the training means the k-NN classifier is fitted on, got 201"),
    ("evaluate__expost_components", 201,
     "evaluate.expost_components: must be <= 200, the training means the ex-post mixture is fitted on, got 201"),
    ("evaluate__precision_recall_k", 40, "evaluate.precision_recall_k: must be < 40, the images compared (the fewest "
                                         "of precision_recall_images 40, sample_count 60, test_images 60), got 40"),
    ("figures__recon_images", 61, "figures.recon_images: must be <= 60, the test images, got 61"),
])
def test_a_value_larger_than_the_data_is_one_line_before_any_work(tmp_path, stage, capsys, key, value, expected):
    """200 training, 60 test images (SIZES): values sklearn would refuse only after the likelihood estimate."""
    root = build_workspace(tmp_path)
    write_params(root / "params.yaml", tiny_raw(**RAW, **{key: value}))
    assert refused(stage, stage_args(root, "--variant", "vae"), capsys) == f"error: {expected}"
    assert_nothing_written(root)
