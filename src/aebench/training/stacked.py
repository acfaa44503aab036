"""Several seeds of one model trained as one stacked model: on a GPU, one process for many models.

One 784-256-128-30 MLP at batch 128 leaves a GPU mostly idle, so on a GPU
the train stage trains a model's seeds together: their parameters stacked
(N, ...) by `torch.func.stack_module_state`, one forward and backward for
all N through `torch.func.vmap` of the model's own `loss_terms` (called by
`functional_call`), and one fused Adam over the stacked tensors. Adam is
elementwise and the gradient of the summed losses is each model's own, so
every model takes its own step.

It is the computation `trainer.train_replicate` does for each model, up to
float rounding (batched matmuls sum in another order): each model keeps its
own "data" generator (permutations, dynamic binarization) and its own
"noise" generator, from which its eps is drawn outside vmap, in the order
and shape its objective would draw it, and passed in (`loss_terms(noise=)`);
vmap runs with randomness="error", so no draw can hide inside. After every
epoch the stacked weights are copied back into the N models, which record
their history rows and write their partial histories and resume files
through `trainer.ReplicateTraining`, with each model's slice of the Adam
state as a single model's fused Adam holds it: a resume file of either path
continues in the other. Models whose layers draw random numbers (dropout)
are not `stackable`: under vmap they could not draw each model's masks.
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from aebench.common.errors import TrainingDiverged
from aebench.common.runtime import flushing_subnormals
from aebench.models.autoencoder import Autoencoder
from aebench.training.progress import make_progress
from aebench.training.trainer import (
    ReplicateTraining,
    TrainingPaths,
    TrainingResult,
    accumulate,
    adam,
    epoch_data,
    start_training,
    steps_per_epoch,
)

# Layers that draw from torch's global RNG while training: under vmap each model would get other draws.
_RANDOM_LAYERS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def stackable(model: Autoencoder) -> bool:
    """Whether copies of `model` can train stacked to the same result as one by one: no layer draws at random."""
    return not any(isinstance(module, _RANDOM_LAYERS) for module in model.modules())


def check_stackable(models: Sequence[Autoencoder], labels: Sequence[str]) -> None:
    """ValueError naming the model and the key unless the models are one config but the seed, without dropout."""
    first = models[0].config
    for model, label in zip(models[1:], labels[1:]):
        differing = sorted(key for key in {*first, *model.config} - {"seed"} if first.get(key) != model.config.get(key))
        if differing:
            raise ValueError(f"cannot train {label} stacked with {labels[0]}: their configs differ in "
                             f"{differing[0]} ({model.config.get(differing[0])!r} against {first.get(differing[0])!r})")
    if not stackable(models[0]):
        raise ValueError(f"cannot train {labels[0]} stacked: its network draws dropout masks, which vmap cannot "
                         "draw as each model's own training would")


class _LossOf(nn.Module):
    """A model whose forward is its training loss terms, so that `functional_call` can swap in stacked weights."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return self.model.loss_terms(x, noise=noise)


class StackedModels:
    """N models of one config as one: parameters stacked (N, ...) and their loss terms computed together."""

    def __init__(self, models: Sequence[Autoencoder]) -> None:
        self.models = list(models)
        self._losses = [_LossOf(model) for model in self.models]
        # Copies of the weights (leaves that require grad); `write_back` copies them into the models.
        self.params, self.buffers = stack_module_state(self._losses)
        base = copy.deepcopy(self._losses[0]).to("meta")  # its structure only; the weights come from params
        base.train()

        def terms(params: dict, buffers: dict, x: torch.Tensor, noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
            return functional_call(base, (params, buffers), (x, noise))

        noise_dim = 0 if self.models[0].stochastic else None  # a deterministic objective gets noise None
        # randomness="error": every draw happens outside, from each model's own generators.
        self._terms = vmap(terms, in_dims=(0, 0, 0, noise_dim), randomness="error")

    def loss_terms(self, x: torch.Tensor, noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Each model's terms on its own batch: x (N, B, 1, 28, 28), noise (N, k, B, D) or None -> {term: (N,)}."""
        return self._terms(self.params, self.buffers, x, noise)

    def draw_noise(self, batch_size: int, generators: Sequence[torch.Generator]) -> torch.Tensor | None:
        """Each model's eps from its own generator, as its unbatched training draws it: (N, k, B, D), or None."""
        noise = [model.draw_noise(batch_size, generator=g) for model, g in zip(self.models, generators)]
        return None if noise[0] is None else torch.stack(noise)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked weights into the N models."""
        for index, loss in enumerate(self._losses):
            for name, tensor in (*loss.named_parameters(), *loss.named_buffers()):
                tensor.copy_((self.params if name in self.params else self.buffers)[name][index])


def model_optimizer_state(stacked_state: dict[str, Any], index: int) -> dict[str, Any]:
    """Model `index`'s part of a stacked Adam's state_dict: what a single model's Adam would hold.

    Per parameter, the moments are sliced out (copied, so that saving them does not save all N); the step
    count, a scalar, is every model's.
    """
    state = {
        param: {name: value[index].clone() if value.dim() > 0 else value.clone() for name, value in moments.items()}
        for param, moments in stacked_state["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(stacked_state["param_groups"])}


def stacked_optimizer_state(model_states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The inverse of `model_optimizer_state`: N single-model Adam state_dicts as one stacked one."""
    first = model_states[0]
    state = {
        param: {
            name: torch.stack([s["state"][param][name] for s in model_states]) if value.dim() > 0 else value.clone()
            for name, value in moments.items()
        }
        for param, moments in first["state"].items()
    }
    return {"state": state, "param_groups": copy.deepcopy(first["param_groups"])}


@flushing_subnormals
def train_stacked(
    models: Sequence[Autoencoder],
    *,
    train_images: torch.Tensor,
    val_images: torch.Tensor,
    paths: Sequence[TrainingPaths],
    device: torch.device,
    labels: Sequence[str],
    data_fingerprint: str = "",
    stream: TextIO | None = None,
) -> list[TrainingResult]:
    """Train `models` (one config but the seed) together; for each, what `train_replicate` returns and writes.

    Models resumed after different epochs (a kill between two models' resume files) train in groups of equal
    progress, one group after the other. A model's `epoch_seconds` are its share of each stacked epoch's wall
    time (divided by the models stacked), so that summed over the models they are the time the training took.
    """
    stream = stream or sys.stderr
    check_stackable(models, labels)
    started = [
        start_training(model, val_images=val_images, paths=path, device=device, data_fingerprint=data_fingerprint,
                       label=label, stream=stream)
        for model, path, label in zip(models, paths, labels)
    ]
    epoch_seconds: list[list[float]] = [[] for _ in models]
    by_progress: dict[int, list[int]] = {}
    for index, (training, _) in enumerate(started):
        by_progress.setdefault(len(training.history), []).append(index)
    for group in by_progress.values():
        seconds = _train_together(
            [started[i][0] for i in group], [started[i][1] for i in group], [labels[i] for i in group],
            train_images=train_images, device=device, stream=stream,
        )
        for i in group:
            epoch_seconds[i] = [wall / len(group) for wall in seconds]
    return [training.finish(seconds) for (training, _), seconds in zip(started, epoch_seconds)]


def _train_together(
    trainings: list[ReplicateTraining],
    optimizer_states: list[dict[str, Any] | None],
    labels: list[str],
    *,
    train_images: torch.Tensor,
    device: torch.device,
    stream: TextIO,
) -> list[float]:
    """The remaining epochs of models that have done as many; returns each stacked epoch's wall time."""
    settings = trainings[0].model.config["train"]
    stack = StackedModels([training.model for training in trainings])
    optimizer = adam(stack.params.values(), lr=settings["lr"], device=device)
    if optimizer_states[0] is not None:
        optimizer.load_state_dict(stacked_optimizer_state(optimizer_states))

    first_epoch, epochs = len(trainings[0].history), settings["epochs"]
    label = labels[0] if len(labels) == 1 else f"{labels[0]} and {len(labels) - 1} more, stacked"
    progress = make_progress(epochs=epochs, first_epoch=first_epoch, label=label, stream=stream)
    epoch_seconds: list[float] = []
    try:
        for epoch in range(first_epoch + 1, epochs + 1):
            started = time.perf_counter()
            train_terms = _train_epoch(stack, optimizer, trainings, labels, train_images, epoch=epoch,
                                       device=device, progress=progress)
            stack.write_back()
            rows = [training.record_epoch(epoch, terms) for training, terms in zip(trainings, train_terms)]
            epoch_seconds.append(time.perf_counter() - started)
            stacked_state = optimizer.state_dict()
            for index, training in enumerate(trainings):
                training.save_progress(model_optimizer_state(stacked_state, index))
            mean = {name: sum(row[name] for row in rows) / len(rows) for name in ("train_loss", "val_loss")}
            progress.end_epoch(epoch, mean, seconds=epoch_seconds[-1])
    finally:
        progress.close()
    return epoch_seconds


def _train_epoch(
    stack: StackedModels,
    optimizer: torch.optim.Optimizer,
    trainings: list[ReplicateTraining],
    labels: list[str],
    images: torch.Tensor,
    *,
    epoch: int,
    device: torch.device,
    progress,
) -> list[dict[str, float]]:
    """One pass of every model over its own shuffle of the split (`trainer._train_epoch`, N at once);
    returns each model's mean of each term over the images seen (nats per image)."""
    config = trainings[0].model.config
    mode, batch_size = config["data"]["binarize"], config["train"]["batch_size"]
    data = [epoch_data(images, mode=mode, data_generator=t.data_generator, device=device) for t in trainings]
    steps = steps_per_epoch(len(images), batch_size=batch_size, drop_last=config["train"]["drop_last"])
    noise_generators = [training.noise_generator for training in trainings]
    progress.start_epoch(epoch, steps)
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    for step in range(1, steps + 1):
        batch = torch.stack([targets[order[(step - 1) * batch_size : step * batch_size]] for targets, order in data])
        count = batch.shape[1]  # (N, B, 1, 28, 28)
        terms = stack.loss_terms(batch, stack.draw_noise(count, noise_generators))  # {term: (N,)}
        losses = terms["loss"].tolist()  # one host sync for all N, as the unbatched loop's .item()
        for label, loss in zip(labels, losses):
            if not math.isfinite(loss):
                raise TrainingDiverged(f"{label}: loss became {loss} at epoch {epoch}, step {step} of its stacked "
                                       "training; no checkpoint written")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].sum().backward()  # the models are independent: each one's gradient is its own loss's
        optimizer.step()
        accumulate(sums, terms, count)
        seen += count
        progress.step(sum(losses) / len(losses))
    return [{name: total[index].item() / seen for name, total in sums.items()} for index in range(len(trainings))]
