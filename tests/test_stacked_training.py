"""Stacked training (several seeds of one model as one, for a GPU) against the unbatched trainer, on the CPU:
the same histories and weights to float tolerance, resume files that continue in either path, one-line refusals,
and the train stage's grouping of jobs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch
from helpers import images, make_model, replicate, tiny_config, write_prepared_file

from aebench.common.errors import TrainingDiverged
from aebench.models.checkpoint import load_model
from aebench.training.stacked import stackable, train_stacked
from aebench.training.trainer import TrainingPaths, TrainingResult, train_replicate

CPU = torch.device("cpu")
SEEDS = (0, 1, 2)
# float32 rounding: a batched matmul sums in another order than the unbatched one, a few ulps (~1e-7 relative)
# per op; measured over these 2 epochs (8 Adam steps) the histories agree to 5e-7 relative and the weights to
# 3e-6 absolute. A different computation (another batch, another noise draw, another model's step) moves a
# weight by about an Adam step, lr = 1e-3, and the terms far beyond 1e-5.
HISTORY_RTOL, HISTORY_ATOL = 1e-5, 1e-6
WEIGHT_ATOL = 2e-5


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return images(200, seed=123), images(64, seed=124)  # train (4 batches of 64, the last of 8), val


def config(variant: str, seed: int, latent_dim: int = 3) -> dict:
    return tiny_config(variant, latent_dim=latent_dim, seed=seed, train__mc_samples=2)


def paths_in(folder: Path) -> TrainingPaths:
    return TrainingPaths(checkpoint=folder / "model.pt", history=folder / "history.csv", resume=folder / "resume.pt")


def label(seed: int) -> str:
    return f"model-seed{seed}"


def alone(variant, data, folder: Path, seed: int, *, stream=None, device=CPU) -> tuple[TrainingResult, TrainingPaths]:
    paths = paths_in(folder / f"seed-{seed}")
    result = train_replicate(make_model(config(variant, seed)), train_images=data[0], val_images=data[1],
                             paths=paths, device=device, label=label(seed), stream=stream or io.StringIO())
    return result, paths


def stacked(variant, data, folder: Path, *, seeds=SEEDS, stream=None,
            device=CPU) -> tuple[list[TrainingResult], list[TrainingPaths]]:
    paths = [paths_in(folder / f"seed-{seed}") for seed in seeds]
    results = train_stacked([make_model(config(variant, seed)) for seed in seeds], train_images=data[0],
                            val_images=data[1], paths=paths, device=device, labels=[label(s) for s in seeds],
                            stream=stream or io.StringIO())
    return results, paths


class StopAfterFirstEpoch(io.StringIO):
    """A progress stream that raises KeyboardInterrupt (a Ctrl-C) once epoch 1 is reported: its resume files exist."""

    def write(self, text: str) -> int:
        if "epoch 1/2 train_loss" in text:
            raise KeyboardInterrupt
        return super().write(text)


def assert_same_training(result: TrainingResult, paths: TrainingPaths, expected: TrainingResult,
                         expected_paths: TrainingPaths) -> None:
    assert [list(row) for row in result.history] == [list(row) for row in expected.history]  # every column
    for row, expected_row in zip(result.history, expected.history, strict=True):
        assert row == pytest.approx(expected_row, rel=HISTORY_RTOL, abs=HISTORY_ATOL)
    torch.testing.assert_close(load_model(paths.checkpoint).state_dict(),
                               load_model(expected_paths.checkpoint).state_dict(), rtol=0, atol=WEIGHT_ATOL)
    assert paths.history.read_text().splitlines()[0] == expected_paths.history.read_text().splitlines()[0]
    assert not paths.resume.exists() and not paths.partial_history.exists()


@pytest.mark.parametrize("variant", ["ae", "vae", "emae"])
def test_stacked_training_gives_each_model_its_unbatched_history_and_weights(data, tmp_path, variant):
    results, paths = stacked(variant, data, tmp_path / "stacked")
    for seed, result, path in zip(SEEDS, results, paths):
        expected, expected_paths = alone(variant, data, tmp_path / "alone", seed)
        assert_same_training(result, path, expected, expected_paths)
        assert load_model(path.checkpoint).config == config(variant, seed)
    assert results[0].history[-1]["train_loss"] != results[1].history[-1]["train_loss"]  # each its own seed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_on_a_gpu_stacked_training_reruns_to_the_same_bytes_and_gives_the_unbatched_results(data, tmp_path, variant):
    """Where the stage uses it: the noise generators on the device, fused Adam on CUDA."""
    gpu = torch.device("cuda")
    first, paths = stacked(variant, data, tmp_path / "first", device=gpu)
    again, again_paths = stacked(variant, data, tmp_path / "again", device=gpu)
    for one, other in zip(paths, again_paths):
        assert one.checkpoint.read_bytes() == other.checkpoint.read_bytes()
    for seed, result, path in zip(SEEDS, first, paths):
        expected, expected_paths = alone(variant, data, tmp_path / "alone", seed, device=gpu)
        assert_same_training(result, path, expected, expected_paths)


@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_a_resume_file_of_the_stacked_path_continues_in_the_unbatched_one_and_back(data, tmp_path, variant):
    straight = [alone(variant, data, tmp_path / "straight", seed) for seed in SEEDS[:2]]

    with pytest.raises(KeyboardInterrupt):  # stacked, killed after epoch 1: each model resumes alone
        stacked(variant, data, tmp_path / "from-stacked", seeds=SEEDS[:2], stream=StopAfterFirstEpoch())
    for seed, (expected, expected_paths) in zip(SEEDS, straight):
        stream = io.StringIO()
        result, paths = alone(variant, data, tmp_path / "from-stacked", seed, stream=stream)
        assert f"resuming from {paths.resume} after epoch 1" in stream.getvalue()
        assert len(result.epoch_seconds) == 1
        assert_same_training(result, paths, expected, expected_paths)

    for seed in SEEDS[:2]:  # each alone, killed after epoch 1: they resume stacked
        with pytest.raises(KeyboardInterrupt):
            alone(variant, data, tmp_path / "from-alone", seed, stream=StopAfterFirstEpoch())
    stream = io.StringIO()
    results, paths = stacked(variant, data, tmp_path / "from-alone", seeds=SEEDS[:2], stream=stream)
    for result, path, (expected, expected_paths) in zip(results, paths, straight):
        assert f"resuming from {path.resume} after epoch 1" in stream.getvalue()
        assert len(result.epoch_seconds) == 1
        assert_same_training(result, path, expected, expected_paths)


def test_models_resumed_after_different_epochs_train_in_turn_to_the_same_result(data, tmp_path):
    straight = [alone("vae", data, tmp_path / "straight", seed) for seed in SEEDS[:2]]
    with pytest.raises(KeyboardInterrupt):  # only seed 0 has a resume file (a kill between two models' files)
        alone("vae", data, tmp_path / "mixed", 0, stream=StopAfterFirstEpoch())
    results, paths = stacked("vae", data, tmp_path / "mixed", seeds=SEEDS[:2])
    assert [len(result.epoch_seconds) for result in results] == [1, 2]
    for result, path, (expected, expected_paths) in zip(results, paths, straight):
        assert_same_training(result, path, expected, expected_paths)


def test_models_of_different_shapes_are_refused_in_one_line_naming_the_model_and_key(data, tmp_path):
    models = [make_model(config("vae", 0, latent_dim=2)), make_model(config("vae", 1, latent_dim=3))]
    refusal = r"cannot train model-seed1 stacked with model-seed0: .* latent_dim \(3 against 2\)"
    with pytest.raises(ValueError, match=refusal) as caught:
        train_stacked(models, train_images=data[0], val_images=data[1], paths=[paths_in(tmp_path / "a"),
                      paths_in(tmp_path / "b")], device=CPU, labels=[label(0), label(1)], stream=io.StringIO())
    assert "\n" not in str(caught.value)
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_network_with_dropout_is_not_stackable(data, tmp_path):
    with_dropout = make_model(tiny_config("vae", latent_dim=3, network__arch="emae_conv"))
    assert not stackable(with_dropout) and stackable(make_model(config("vae", 0)))
    with pytest.raises(ValueError, match="dropout"):
        train_stacked([with_dropout, with_dropout], train_images=data[0], val_images=data[1],
                      paths=[paths_in(tmp_path / "a"), paths_in(tmp_path / "b")], device=CPU,
                      labels=[label(0), label(1)], stream=io.StringIO())


def test_a_nan_loss_raises_training_diverged_naming_the_model_and_writes_no_checkpoint(data, tmp_path):
    models = [make_model(config("ae", seed)) for seed in SEEDS[:2]]
    with torch.no_grad():
        models[1].mean_head.weight.fill_(math.nan)
    paths = [paths_in(tmp_path / f"seed-{seed}") for seed in SEEDS[:2]]
    with pytest.raises(TrainingDiverged, match=r"^model-seed1: loss became nan at epoch 1, step 1 "):
        train_stacked(models, train_images=data[0], val_images=data[1], paths=paths, device=CPU,
                      labels=[label(0), label(1)], stream=io.StringIO())
    assert not any(path.checkpoint.exists() for path in paths)


# --- the train stage's jobs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_stage(load_stage):
    return load_stage("train")


def jobs_of(train_stage, folder: Path, *, device: str, variants=("ae", "vae"), seeds=(0, 1)) -> list:
    data = write_prepared_file(folder / "mnist.npz", {"train": 200, "val": 64, "test": 10})
    return [
        train_stage.TrainJob(
            replicate=r, config=config(r.key.variant, r.seed), data=data, data_sha256="sha", device=device,
            checkpoint=r.path(folder / "models", ".pt"), history=r.path(folder / "history", ".csv"),
            resume=r.path(folder / "resume", ".pt"),
        )
        for r in (replicate(variant, latent_dim=3, seed=seed) for variant in variants for seed in seeds)
    ]


def test_on_a_gpu_the_stage_groups_a_models_seeds_and_on_the_cpu_runs_each_alone(train_stage, tmp_path):
    jobs = jobs_of(train_stage, tmp_path, device="cuda", seeds=(0, 1, 2))
    names = [[job.replicate.name for job in group] for group in train_stage.job_groups(jobs, device_type="cuda")]
    assert names == [[r.name for r in (replicate(v, 3, s) for s in (0, 1, 2))] for v in ("ae", "vae")]
    assert train_stage.job_groups(jobs, device_type="cpu") == [(job,) for job in jobs]


def test_a_stage_group_trained_stacked_gives_what_its_jobs_give_alone(train_stage, tmp_path):
    group = tuple(jobs_of(train_stage, tmp_path / "stacked", device="cpu", variants=("vae",)))
    results = train_stage.train_group(group)  # on the CPU only here: the stage groups jobs on a GPU
    for job, result in zip(group, results, strict=True):
        expected_job = jobs_of(train_stage, tmp_path / "alone", device="cpu", variants=("vae",))[job.replicate.seed]
        expected = train_stage.train_job(expected_job)
        assert_same_training(result, paths_of(job), expected, paths_of(expected_job))


def paths_of(job) -> TrainingPaths:
    return TrainingPaths(checkpoint=job.checkpoint, history=job.history, resume=job.resume)
