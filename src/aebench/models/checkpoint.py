"""Checkpoints: the trained weights with everything needed to rebuild the model.

A checkpoint is a `torch.save` dict: `format` ("aebench-checkpoint/2"),
`state_dict` (CPU tensors), `config` (`model_config`) and `epochs_done`. It
holds only tensors and plain values, so it loads with `weights_only=True` (no
arbitrary pickled code runs), and nothing that differs between two runs of the
same training (no run id, no time), so a retrain writes the same bytes.

torch.save names the records inside its zip archive after the file it writes
to; serialising into memory first keeps the temporary file's name out of them.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aebench.common.config import flatten
from aebench.common.errors import AebenchError, CheckpointError
from aebench.common.files import write_bytes
from aebench.models.autoencoder import Autoencoder, build_model

FORMAT = "aebench-checkpoint/2"
_REQUIRED = ("state_dict", "config", "epochs_done")


def torch_bytes(payload: Any) -> bytes:
    """`torch.save` into memory: bytes that depend on the payload only, not on a file name."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(path: str | Path, model: Autoencoder, *, epochs_done: int) -> None:
    """Write the model atomically: a reader sees the old file or the complete new one."""
    payload = {
        "format": FORMAT,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "config": model.config,
        "epochs_done": epochs_done,
    }
    write_bytes(path, torch_bytes(payload))


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

    `encode(x) -> (mu, logvar)` (logvar None for a deterministic code),
    `decode(z)` -> the likelihood's parameters, `decode_images(z)` -> pixel
    means; `config`, `variant`, `latent_dim`, `likelihood` describe it.
    """
    payload = read_checkpoint(path)
    try:
        model = build_model(payload["config"])
    except (AebenchError, KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: bad config in checkpoint ({err})") from None
    load_weights(path, model, payload["state_dict"])
    return model.eval()


def load_weights(path: str | Path, model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Copy weights in, refusing any that do not fit the architecture exactly."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, TypeError, AttributeError) as err:
        first_line = str(err).splitlines()[0]
        raise CheckpointError(f"{path}: weights do not match the model's architecture ({first_line})") from None


def check_identity(path: str | Path, config: dict[str, Any], *, expected: dict[str, Any], role: str) -> None:
    """Refuse a checkpoint that is not the model its outputs will be named after.

    `expected` maps flattened config keys (`variant.name`, `latent_dim`...) to
    their values; a copied or mislabelled file would otherwise put one model's
    numbers or pictures under another's name.
    """
    found = flatten(config)
    for key, value in expected.items():
        if found.get(key) != value:
            raise CheckpointError(f"{path}: holds {key} = {found.get(key)!r}, but is {role} as {key} = {value!r}")


IDENTITY_KEYS = ("dataset", "variant.name", "latent_dim", "seed")


def check_checkpoint_config(path: str | Path, expected: dict[str, Any]) -> None:
    """Refuse a checkpoint that is not the model to evaluate, or was trained with other params.

    Its dataset, variant, latent size and seed must be the expected ones
    (`check_identity`), and its whole config what params says now (else it
    was trained with other values, and DVC has not retrained it yet).
    """
    found = read_checkpoint(path)["config"]
    found_flat, expected_flat = flatten(found), flatten(expected)
    check_identity(path, found, expected={key: expected_flat.get(key) for key in IDENTITY_KEYS}, role="evaluated")
    for key in sorted(set(found_flat) | set(expected_flat)):
        if found_flat.get(key) != expected_flat.get(key):
            raise CheckpointError(f"{path}: trained with {key} = {found_flat.get(key)!r}, params now say "
                                  f"{expected_flat.get(key)!r} (retrain it: dvc repro)")
