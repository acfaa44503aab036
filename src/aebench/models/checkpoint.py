"""Checkpoints: the trained weights with everything needed to rebuild the model.

A checkpoint is a `torch.save` dict: `format` ("aebench-checkpoint/1"),
`state_dict` (CPU tensors), `config` (the resolved config), `mlflow_run_id`,
`epochs_done`. It holds only tensors and plain values, so it loads with
`weights_only=True` (no arbitrary pickled code runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from aebench.common.errors import AebenchError, CheckpointError
from aebench.common.files import atomic_path
from aebench.models.autoencoder import Autoencoder, build_model

FORMAT = "aebench-checkpoint/1"
_REQUIRED = ("state_dict", "config", "mlflow_run_id", "epochs_done")


def save_checkpoint(
    path: str | Path,
    model: Autoencoder,
    *,
    mlflow_run_id: str | None,
    epochs_done: int,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the model atomically: a reader sees the old file or the complete new one."""
    payload = {
        "format": FORMAT,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "config": model.config,
        "mlflow_run_id": mlflow_run_id,
        "epochs_done": epochs_done,
        **(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict, checked for format; CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch's unpickler raises many types (even IndexError) on junk
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: not an aebench checkpoint (expected format {FORMAT!r}, found {found!r})")
    missing = [key for key in _REQUIRED if key not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return payload


def load_model(path: str | Path) -> Autoencoder:
    """The trained model of a checkpoint, in eval mode on the CPU.

    `encode(x) -> (mu, logvar)` (logvar None for the AE), `decode(z) -> logits`
    (or Gaussian means); `kind`, `latent_dim`, `likelihood`, `config`,
    `mlflow_run_id` describe it.
    """
    payload = read_checkpoint(path)
    try:
        model = build_model(payload["config"])
    except AebenchError as err:
        raise CheckpointError(f"{path}: bad config in checkpoint ({err})") from None
    load_weights(path, model, payload["state_dict"])
    model.mlflow_run_id = payload["mlflow_run_id"]
    return model.eval()


def load_weights(path: str | Path, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy weights in, refusing any that do not fit the architecture exactly."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first_line = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the model's architecture ({first_line})") from None
