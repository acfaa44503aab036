"""The training loop: Adam on a model's own objective, one epoch at a time.

The whole split sits in memory as one tensor (no per-sample DataLoader work);
each epoch draws a permutation and, with `data.binarize: dynamic`, fresh binary
pixels, both from the replicate's "data" generator; the reparameterization
noise comes from its "noise" generator on the training device. Saving the
model, Adam's state, both generators and the history after every epoch (the
resume file) is therefore enough to continue a killed run bit for bit: the
checkpoint after a resume equals the one of an uninterrupted run.

After every epoch the resume file is rewritten, and beside it the history so
far as a CSV (loss terms, then per dimension the activity of the posterior
means on the validation split and the decoder's usage on its first
USAGE_IMAGES images: unit death over training; columns named in
`aebench.training.history`), to watch. Only after the last epoch is the
history CSV written into its DVC output, with the checkpoint, and the resume
state removed: an interrupted training leaves no partial history where `dvc
plots` would draw it as a result. A NaN or infinite loss raises
TrainingDiverged naming the epoch and step, before any final checkpoint
exists. Wall times are returned (for MLflow and the run-info
file), never written into the history, so a retrain writes the same bytes.
Training does not talk to MLflow: the stage logs what it returns
(`aebench.training.tracking`), so training runs in worker processes that
never import it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import torch

from aebench.common.errors import TrainingDiverged
from aebench.common.files import atomic_path, file_sha256, write_text
from aebench.common.runtime import flushing_subnormals, generator
from aebench.data.binarize import binarize, fixed_targets
from aebench.evaluation.usage import decoder_usage
from aebench.models.autoencoder import Autoencoder
from aebench.models.checkpoint import save_checkpoint, torch_bytes
from aebench.training.history import ACTIVITY_PREFIX, USAGE_PREFIX, dimension_column
from aebench.training.progress import make_progress

RESUME_FORMAT = "aebench-resume/2"
VAL_BATCH = 1000  # validation batches are forward-only: larger is faster and changes nothing
# Validation images whose codes measure decoder usage after each epoch (the same images every epoch): D + 1
# decoder passes each. Measured for the MLP VAE-30 on one thread (as the study's workers run): 1000 images
# took 0.82 s against a 10.7 s epoch (7.7%); 500 take half, ~4%.
USAGE_IMAGES = 500


@dataclass(frozen=True)
class TrainingPaths:
    checkpoint: Path  # the final model (a DVC out)
    history: Path  # per-epoch CSV (a DVC out and plot)
    resume: Path  # per-epoch resume state; must live outside DVC outs, which DVC deletes before a rerun

    @property
    def partial_history(self) -> Path:
        """The history of an unfinished training: kept with its resume state, not among the outputs."""
        return self.resume.with_suffix(".history.csv")


@dataclass(frozen=True)
class TrainingResult:
    history: list[dict[str, float]]
    epoch_seconds: list[float]  # wall time of each epoch trained in this process (a resume trains fewer)
    checkpoint_sha256: str


def resume_key(config: dict[str, Any], data_fingerprint: str) -> str:
    """What a resume file must match to be used: the model's config and the training data."""
    blob = json.dumps({"config": config, "data": data_fingerprint}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ReplicateTraining:
    """One model's training between epochs: everything its resume file holds but the optimizer's state.

    `train_replicate` drives one; `aebench.training.stacked` drives several at once, so both paths start,
    record their epochs, save their resume files and finish in the same way, with the same bytes.
    """

    model: Autoencoder
    paths: TrainingPaths
    key: str  # what the resume file must match (`resume_key`)
    data_generator: torch.Generator  # permutations and dynamic binarization, on the CPU
    noise_generator: torch.Generator  # reparameterization noise, on the training device
    val_targets: torch.Tensor  # (N, 1, 28, 28) on the device: the same images every epoch
    history: list[dict[str, float]]

    @property
    def seed(self) -> int:
        return self.model.config["seed"]

    def record_epoch(self, epoch: int, train_terms: dict[str, float]) -> dict[str, float]:
        """The epoch's history row (training terms, then the model now on the validation images), appended."""
        model, seed = self.model, self.seed
        val_terms = evaluate_terms(model, self.val_targets, seed=seed)
        row: dict[str, float] = {"epoch": epoch}
        row.update({f"train_{name}": value for name, value in train_terms.items()})
        row.update({f"val_{name}": value for name, value in val_terms.items()})
        row.update(validation_activity(model, self.val_targets))
        row.update(validation_usage(model, self.val_targets[:USAGE_IMAGES], seed=seed))
        self.history.append(row)
        return row

    def save_progress(self, optimizer_state: dict[str, Any]) -> None:
        """The history so far and the resume file, with `optimizer_state` (a single model's Adam state_dict)."""
        write_history(self.paths.partial_history, self.history)
        save_resume(
            self.paths.resume, key=self.key, model=self.model, optimizer_state=optimizer_state, history=self.history,
            data_generator=self.data_generator, noise_generator=self.noise_generator,
        )

    def finish(self, epoch_seconds: list[float]) -> TrainingResult:
        """The history and the checkpoint into their outputs; the resume state removed."""
        paths = self.paths
        write_history(paths.history, self.history)  # also when a resume file already held every epoch
        save_checkpoint(paths.checkpoint, self.model, epochs_done=len(self.history))
        checkpoint_sha256 = file_sha256(paths.checkpoint)
        paths.resume.unlink(missing_ok=True)
        paths.partial_history.unlink(missing_ok=True)
        return TrainingResult(history=self.history, epoch_seconds=epoch_seconds, checkpoint_sha256=checkpoint_sha256)


def start_training(
    model: Autoencoder,
    *,
    val_images: torch.Tensor,
    paths: TrainingPaths,
    device: torch.device,
    data_fingerprint: str,
    label: str,
    stream: TextIO,
) -> tuple[ReplicateTraining, dict[str, Any] | None]:
    """The model on `device`, its generators seeded and, from a matching resume file, the model, generators and
    history restored; with the optimizer state to load (None for a fresh start)."""
    config = model.config
    seed, mode = config["seed"], config["data"]["binarize"]
    model.to(device)
    training = ReplicateTraining(
        model=model,
        paths=paths,
        key=resume_key(config, data_fingerprint),
        data_generator=generator(seed, "data"),
        noise_generator=generator(seed, "noise", device),
        val_targets=fixed_targets(val_images, mode, seed=seed, split="val").to(device),
        history=[],
    )
    state = load_resume(paths.resume, training.key, stream=stream)
    if state is None:
        return training, None
    model.load_state_dict(state["model"])
    training.data_generator.set_state(state["data_generator"])
    training.noise_generator.set_state(state["noise_generator"])
    training.history = state["history"]
    print(f"{label}: resuming from {paths.resume} after epoch {len(training.history)}", file=stream)
    return training, state["optimizer"]


def adam(parameters, *, lr: float, device: torch.device) -> torch.optim.Adam:
    """The optimizer of every training."""
    # The fused kernel updates all parameters in one pass: ~6x faster steps than the per-tensor loop on CPU.
    return torch.optim.Adam(parameters, lr=lr, fused=device.type in ("cpu", "cuda"))


@flushing_subnormals
def train_replicate(
    model: Autoencoder,
    *,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    paths: TrainingPaths,
    device: torch.device,
    data_fingerprint: str = "",
    label: str = "train",
    stream: TextIO | None = None,
) -> TrainingResult:
    """Train `model` per its config; train_images, val_images: float (N, 1, 28, 28) in [0, 1] on the CPU."""
    stream = stream or sys.stderr
    settings = model.config["train"]
    training, optimizer_state = start_training(
        model, val_images=val_images, paths=paths, device=device, data_fingerprint=data_fingerprint, label=label,
        stream=stream,
    )
    optimizer = adam(model.parameters(), lr=settings["lr"], device=device)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)

    epochs = settings["epochs"]
    epoch_seconds: list[float] = []
    progress = make_progress(epochs=epochs, first_epoch=len(training.history), label=label, stream=stream)
    try:
        for epoch in range(len(training.history) + 1, epochs + 1):
            started = time.perf_counter()
            train_terms = _train_epoch(
                model, optimizer, train_images, mode=model.config["data"]["binarize"],
                batch_size=settings["batch_size"], drop_last=settings["drop_last"], epoch=epoch,
                data_generator=training.data_generator, noise_generator=training.noise_generator, device=device,
                progress=progress,
            )
            row = training.record_epoch(epoch, train_terms)
            epoch_seconds.append(time.perf_counter() - started)
            training.save_progress(optimizer.state_dict())
            progress.end_epoch(epoch, row, seconds=epoch_seconds[-1])
    finally:
        progress.close()
    return training.finish(epoch_seconds)


def epoch_data(
    images: torch.Tensor, *, mode: str, data_generator: torch.Generator, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """An epoch's targets (N, 1, 28, 28) (fresh binary pixels with `dynamic`) and order (N,), on `device`."""
    targets = binarize(images, generator=data_generator) if mode == "dynamic" else images  # (N, 1, 28, 28)
    order = torch.randperm(len(images), generator=data_generator)
    return targets.to(device), order.to(device)


def steps_per_epoch(images: int, *, batch_size: int, drop_last: bool) -> int:
    """How many batches an epoch has; TrainingDiverged when drop_last leaves none."""
    steps = images // batch_size if drop_last else math.ceil(images / batch_size)
    if steps == 0:
        raise TrainingDiverged(f"train.batch_size {batch_size} exceeds the {images} training images "
                               "and train.drop_last drops the only batch")
    return steps


def _train_epoch(
    model: Autoencoder,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    *,
    mode: str,
    batch_size: int,
    drop_last: bool,
    epoch: int,
    data_generator: torch.Generator,
    noise_generator: torch.Generator,
    device: torch.device,
    progress,
) -> dict[str, float]:
    """One pass over the shuffled split; returns each term's mean over the images seen (nats per image)."""
    model.train()
    targets, order = epoch_data(images, mode=mode, data_generator=data_generator, device=device)
    steps = steps_per_epoch(len(images), batch_size=batch_size, drop_last=drop_last)
    progress.start_epoch(epoch, steps)
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    for step in range(1, steps + 1):
        batch = targets[order[(step - 1) * batch_size : step * batch_size]]  # (B, 1, 28, 28)
        terms = model.loss_terms(batch, generator=noise_generator)
        loss = terms["loss"].item()
        if not math.isfinite(loss):
            raise TrainingDiverged(f"loss became {loss} at epoch {epoch}, step {step}; no checkpoint written")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        accumulate(sums, terms, len(batch))
        seen += len(batch)
        progress.step(loss)
    return {name: total.item() / seen for name, total in sums.items()}


@torch.no_grad()
def evaluate_terms(model: Autoencoder, targets: torch.Tensor, *, seed: int) -> dict[str, float]:
    """The objective's terms on fixed targets, with noise reseeded so every epoch sees the same draws."""
    was_training = model.training
    model.eval()
    noise = generator(seed, "validation-noise", targets.device)
    sums: dict[str, torch.Tensor] = {}
    for start in range(0, len(targets), VAL_BATCH):
        batch = targets[start : start + VAL_BATCH]
        accumulate(sums, model.loss_terms(batch, generator=noise), len(batch))
    model.train(was_training)
    return {name: total.item() / len(targets) for name, total in sums.items()}


@torch.no_grad()
def validation_activity(model: Autoencoder, targets: torch.Tensor) -> dict[str, float]:
    """A_u = Var over the validation images of each dimension's posterior mean, as history columns."""
    was_training = model.training
    model.eval()
    means = torch.cat([model.encode(targets[i : i + VAL_BATCH])[0] for i in range(0, len(targets), VAL_BATCH)])
    model.train(was_training)
    variances = means.double().var(dim=0, unbiased=True) if len(means) > 1 else torch.zeros(means.shape[1])
    return {dimension_column(ACTIVITY_PREFIX, u): float(v) for u, v in enumerate(variances.cpu())}


@torch.no_grad()
def validation_usage(model: Autoencoder, targets: torch.Tensor, *, seed: int) -> dict[str, float]:
    """Decoder usage of each dimension (`aebench.evaluation.usage`) on `targets`, as history columns.

    The pairing is drawn from a generator reseeded every epoch, so epochs differ only by the model,
    and the training generators are untouched (a resumed run stays bit-exact).
    """
    was_training = model.training
    model.eval()
    codes = model.encode(targets)[0]  # (N, D) posterior means
    if len(codes) < 2:  # no pair to swap: nothing measured
        usage = [0.0] * codes.shape[1]
    else:
        usage = decoder_usage(model.decode_images, codes, generator=generator(seed, "validation-usage"))
    model.train(was_training)
    return {dimension_column(USAGE_PREFIX, u): float(v) for u, v in enumerate(usage)}


def accumulate(sums: dict[str, torch.Tensor], terms: dict[str, torch.Tensor], count: int) -> None:
    """Add each term times `count` (the images it averages) to `sums`; terms of any shape (stacked: (N,))."""
    # Summed on the device in float64: no host sync per step, no drift over 430 steps.
    for name, value in terms.items():
        weighted = value.detach().double() * count
        sums[name] = sums[name] + weighted if name in sums else weighted


def write_history(path: Path, history: list[dict[str, float]]) -> None:
    """The per-epoch CSV: epoch, train_<term>..., val_<term>..., val_activity_<u>..., val_usage_<u>... (`history`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(history[0]) if history else ["epoch"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    write_text(path, buffer.getvalue())


def save_resume(
    path: Path,
    *,
    key: str,
    model: Autoencoder,
    optimizer_state: dict[str, Any],
    history: list[dict[str, float]],
    data_generator: torch.Generator,
    noise_generator: torch.Generator,
) -> None:
    state = {
        "format": RESUME_FORMAT,
        "key": key,
        "model": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "optimizer": optimizer_state,
        "data_generator": data_generator.get_state(),
        "noise_generator": noise_generator.get_state(),
        "history": history,
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(torch_bytes(state))


def load_resume(path: Path, key: str, *, stream: TextIO) -> dict[str, Any] | None:
    """The saved state when it belongs to this config and data; None (and a note) otherwise.

    The resume file is a cache: an unreadable or stale one is ignored and
    removed, never an error.
    """
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file just means "start over"
        print(f"ignoring unreadable resume file {path} ({type(err).__name__})", file=stream)
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT or state.get("key") != key:
        print(f"ignoring resume file {path}: written for other params or data", file=stream)
        path.unlink(missing_ok=True)
        return None
    return state
