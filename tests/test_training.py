"""The trainer: determinism, resume after a kill, NaN refusal, history, binarization, the stage's errors."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aebench.common.config import load_params
from aebench.common.errors import TrainingDiverged
from aebench.models import build_model, load_model, resolved_config
from aebench.training import TrainingPaths, train_model

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def tiny_config(kind: str = "vae", *, epochs: int = 3, binarize: str = "dynamic", lr: float = 1e-3) -> dict:
    config = resolved_config(load_params(REPO / "params.yaml"), dataset="mnist", model=kind, latent_dim=2)
    config["model"].update(hidden=[32, 16], arch="mlp")
    config["train"].update(epochs=epochs, batch_size=64, lr=lr)
    config["data"]["binarize"] = binarize
    return config


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(123)
    return torch.rand(256, 1, 28, 28, generator=generator), torch.rand(64, 1, 28, 28, generator=generator)


def fresh_model(config: dict):
    torch.manual_seed(config["seed"])  # what the stage does before building
    return build_model(config)


def run_training(config, images, folder: Path, model=None):
    train_images, val_images = images
    paths = TrainingPaths(
        checkpoint=folder / "model.pt", history=folder / "history.csv", resume=folder / "resume" / "state.pt"
    )
    history = train_model(
        model or fresh_model(config), train_images=train_images, val_images=val_images, paths=paths, device=CPU
    )
    return history, paths


def losses(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def assert_same_weights(path_a: Path, path_b: Path):
    a, b = load_model(path_a).state_dict(), load_model(path_b).state_dict()
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class InterruptAt:
    """Wraps a model's loss so that call number `call` raises `error` (a kill, or a NaN)."""

    def __init__(self, model, *, call: int, error: type[BaseException] | None = None):
        self.model, self.call, self.error, self.calls = model, call, error, 0
        self.original = model.loss_terms
        model.loss_terms = self

    def __call__(self, x, *, generator=None):
        if self.model.training:
            self.calls += 1
            if self.calls == self.call:
                if self.error is not None:
                    raise self.error()
                terms = self.original(x, generator=generator)
                return {**terms, "loss": terms["loss"] * float("nan")}
        return self.original(x, generator=generator)


def test_same_params_and_seed_give_identical_weights_and_history(images, tmp_path):
    config = tiny_config("vae")
    first, paths_a = run_training(config, images, tmp_path / "a")
    second, paths_b = run_training(config, images, tmp_path / "b")
    assert_same_weights(paths_a.checkpoint, paths_b.checkpoint)
    assert losses(first) == losses(second)
    assert first[-1]["train_loss"] < first[0]["train_loss"]  # it did learn something
    # A different seed is a different run: determinism is not a frozen model.
    other = tiny_config("vae")
    other["seed"] = 1
    third, _ = run_training(other, images, tmp_path / "c")
    assert losses(third) != losses(first)


@pytest.mark.parametrize("kind", ["vae", "ae"])
def test_killed_run_resumes_to_the_same_checkpoint(images, tmp_path, kind):
    config = tiny_config(kind)
    _, uninterrupted = run_training(config, images, tmp_path / "straight")

    steps_per_epoch = 256 // 64
    model = fresh_model(config)
    InterruptAt(model, call=2 * steps_per_epoch + 2, error=KeyboardInterrupt)  # Ctrl-C in epoch 3
    with pytest.raises(KeyboardInterrupt):
        run_training(config, images, tmp_path / "killed", model=model)
    killed = tmp_path / "killed"
    assert not (killed / "model.pt").exists()
    assert (killed / "resume" / "state.pt").is_file()
    with open(killed / "history.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]  # finished epochs are kept

    resumed_history, paths = run_training(config, images, killed)  # the rerun: a fresh process would do the same
    assert_same_weights(paths.checkpoint, uninterrupted.checkpoint)
    straight_history = list(csv.DictReader(open(uninterrupted.history)))
    assert [r["epoch"] for r in resumed_history] == [1, 2, 3]
    assert losses(resumed_history) == losses([{k: float(v) for k, v in r.items()} for r in straight_history])
    assert not paths.resume.exists()  # removed once the final checkpoint exists


def test_stale_resume_file_from_other_params_is_ignored(images, tmp_path):
    config = tiny_config("vae")
    model = fresh_model(config)
    InterruptAt(model, call=6, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, images, tmp_path / "run", model=model)

    changed = tiny_config("vae", lr=3e-3)
    history, paths = run_training(changed, images, tmp_path / "run")
    _, reference = run_training(changed, images, tmp_path / "reference")  # had the resume file been used, it differs
    reference_history = list(csv.DictReader(open(reference.history)))
    assert losses(history) == losses([{k: float(v) for k, v in r.items()} for r in reference_history])
    assert_same_weights(paths.checkpoint, reference.checkpoint)


def test_nan_loss_stops_with_epoch_and_step_and_writes_no_checkpoint(images, tmp_path):
    config = tiny_config("emae")
    model = fresh_model(config)
    InterruptAt(model, call=256 // 64 + 3)  # epoch 2, step 3
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 3"):
        run_training(config, images, tmp_path, model=model)
    assert not (tmp_path / "model.pt").exists()


def test_really_diverging_training_is_refused(images, tmp_path):
    config = tiny_config("vae", lr=1e12, epochs=4)  # Adam with this step size blows up the log-variance
    config["model"]["likelihood"] = "gaussian"
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, step \d+"):
        run_training(config, images, tmp_path)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(("kind", "extra"), [("ae", []), ("vae", ["kl"]), ("emae", ["mu_penalty"])])
def test_history_lists_every_term_per_epoch(images, tmp_path, kind, extra):
    run_training(tiny_config(kind, epochs=2), images, tmp_path)
    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    terms = ["loss", "recon", *extra]
    assert list(rows[0]) == ["epoch", "seconds", *[f"train_{t}" for t in terms], *[f"val_{t}" for t in terms]]
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        assert float(row["train_loss"]) == pytest.approx(sum(float(row[f"train_{t}"]) for t in terms[1:]), rel=1e-5)


def test_dynamic_binarization_draws_new_binary_pixels_every_epoch(images, tmp_path):
    config = tiny_config("ae", epochs=2)
    model = fresh_model(config)
    seen: list[torch.Tensor] = []
    original = model.loss_terms

    def spy(x, *, generator=None):
        if model.training:
            seen.append(x.clone())
        return original(x, generator=generator)

    model.loss_terms = spy
    run_training(config, images, tmp_path, model=model)
    assert all(set(batch.unique().tolist()) <= {0.0, 1.0} for batch in seen)
    epoch_1, epoch_2 = torch.cat(seen[:4]), torch.cat(seen[4:])
    # The same images in another order and with fresh pixels: sorted sums differ.
    assert not torch.equal(epoch_1.sum(dim=(1, 2, 3)).sort().values, epoch_2.sum(dim=(1, 2, 3)).sort().values)


def test_grey_level_training_sees_the_images_unchanged(images, tmp_path):
    config = tiny_config("ae", epochs=1, binarize="none")
    model = fresh_model(config)
    seen = []
    original = model.loss_terms
    model.loss_terms = lambda x, *, generator=None: (seen.append(x.clone()) if model.training else None) or original(
        x, generator=generator
    )
    run_training(config, images, tmp_path, model=model)
    assert torch.equal(torch.cat(seen).sum(dim=(1, 2, 3)).sort().values, images[0].sum(dim=(1, 2, 3)).sort().values)


def test_stage_refuses_an_unknown_model_in_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "stages" / "train.py"), "--dataset", "mnist", "--model", "gan",
         "--latent-dim", "2", "--data", str(tmp_path / "none.npz"), "--checkpoint", str(tmp_path / "m.pt"),
         "--history", str(tmp_path / "h.csv"), "--resume", str(tmp_path / "r.pt"),
         "--params", str(REPO / "params.yaml")],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: model.name: unknown model 'gan' (expected one of ae, vae, emae)"]
    assert not (tmp_path / "m.pt").exists()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_off_a_terminal_and_bars_on_one(images, tmp_path):
    config = tiny_config("ae", epochs=2)
    plain = io.StringIO()
    train_model(fresh_model(config), train_images=images[0], val_images=images[1], device=CPU, stream=plain,
                paths=TrainingPaths(checkpoint=tmp_path / "a.pt", history=tmp_path / "a.csv", resume=tmp_path / "a.r"))
    lines = plain.getvalue().splitlines()
    assert [line.split(" train_loss")[0] for line in lines] == ["train: epoch 1/2", "train: epoch 2/2"]
    assert "\r" not in plain.getvalue()

    terminal = Terminal()
    train_model(fresh_model(config), train_images=images[0], val_images=images[1], device=CPU, stream=terminal,
                paths=TrainingPaths(checkpoint=tmp_path / "b.pt", history=tmp_path / "b.csv", resume=tmp_path / "b.r"))
    assert "\r" in terminal.getvalue() and "2/2" in terminal.getvalue()  # tqdm redraws its bars in place
