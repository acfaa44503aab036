"""Device choice and seeding, so every stage resolves them the same way.

A replicate's seed drives several independent random streams (initial
weights, data order and binarization, reparameterization noise, the
evaluation's draws...). Each stream gets its own generator seeded from
(seed, purpose) through NumPy's SeedSequence, so streams never overlap: with
plain `seed + 1` offsets, seed 1's data order would be seed 0's noise.

torch is imported by the functions that use it: `derived_seed` also seeds
the figures' t-SNE and jitter, in a stage that never loads torch.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from aebench.common.errors import ConfigError

if TYPE_CHECKING:
    import torch

Result = TypeVar("Result")


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def derived_seed(seed: int, purpose: str) -> int:
    """A 32-bit seed (what every library accepts) for one random stream of a replicate: derived_seed(1, "data")."""
    entropy = [seed, zlib.crc32(purpose.encode())]
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])


def generator(seed: int, purpose: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on `device` for the stream `purpose` of replicate `seed`."""
    import torch

    return torch.Generator(device=device).manual_seed(derived_seed(seed, purpose))


def seed_everything(seed: int, purpose: str = "init") -> None:
    """Seed Python, NumPy and torch's global RNG (weight initialisation draws from it)."""
    import torch

    value = derived_seed(seed, purpose)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def flushing_subnormals(function: Callable[..., Result]) -> Callable[..., Result]:
    """Run `function` with subnormal floats flushed to zero on the CPU (torch's default, off, restored after).

    Adam's first moment of a weight whose gradient is always zero (a pixel that
    is black in every image) decays by 0.9 a step into the subnormal range and
    sticks at its smallest values; CPU arithmetic on subnormals is 10-100x
    slower, so an epoch's optimizer steps slowed down as training went on. The
    flag is the process's, so every training of a model, a resume included,
    runs under the same setting: its bytes stay reproducible.
    """

    import torch

    @functools.wraps(function)
    def flushed(*args, **kwargs) -> Result:
        torch.set_flush_denormal(True)
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_flush_denormal(False)

    return flushed
