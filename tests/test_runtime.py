"""Seeds: one independent 32-bit stream per (replicate seed, purpose); the device choice; subnormal flushing."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from aebench.common.errors import ConfigError
from aebench.common.runtime import derived_seed, flushing_subnormals, generator, resolve_device, seed_everything

PURPOSES = ["init", "data", "noise", "validation-noise", "importance-sampling", "binarize-test", "binarize-val"]


def test_derived_seeds_are_distinct_per_purpose_and_per_seed_and_32_bit():
    seeds = {(seed, purpose): derived_seed(seed, purpose) for seed, purpose in itertools.product(range(20), PURPOSES)}
    assert len(set(seeds.values())) == len(seeds) == 140
    assert all(isinstance(value, int) and 0 <= value < 2**32 for value in seeds.values())
    # What `seed + offset` schemes get wrong: seed 1's stream is never seed 0's other stream.
    assert derived_seed(1, "data") not in {derived_seed(0, purpose) for purpose in PURPOSES}


def test_derived_seeds_are_the_same_in_another_process():
    # A worker process must derive the same streams: nothing may depend on Python's salted str hash.
    code = "from aebench.common.runtime import derived_seed; print(derived_seed(3, 'noise'), derived_seed(0, 'data'))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONHASHSEED": "12345"}, check=True)
    assert result.stdout.split() == [str(derived_seed(3, "noise")), str(derived_seed(0, "data"))]


def test_a_generator_draws_its_purposes_stream():
    first = torch.rand(5, generator=generator(2, "data"))
    assert torch.equal(first, torch.rand(5, generator=torch.Generator().manual_seed(derived_seed(2, "data"))))
    assert torch.equal(first, torch.rand(5, generator=generator(2, "data")))
    assert not torch.equal(first, torch.rand(5, generator=generator(2, "noise")))
    assert not torch.equal(first, torch.rand(5, generator=generator(3, "data")))
    assert generator(0, "data").device == torch.device("cpu")


def test_seed_everything_seeds_python_numpy_and_torch():
    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()

    seed_everything(4)
    first = draws()
    seed_everything(4)
    assert draws() == first
    seed_everything(4, "classifier-init")
    assert draws() != first
    seed_everything(5)
    assert draws() != first


def test_auto_device_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"^device: 'cuda' requested but no CUDA device is available$"):
        resolve_device("cuda")


def test_auto_device_is_the_gpu_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")


def test_training_code_runs_with_subnormals_flushed_and_the_flag_is_restored_after():
    subnormal = torch.tensor([1e-40])  # below float32's smallest normal, 1.2e-38

    @flushing_subnormals
    def scaled(factor: float) -> torch.Tensor:
        if factor < 0:
            raise ValueError("negative")
        return subnormal * factor

    assert scaled(1.0).item() == 0.0  # flushed inside
    assert (subnormal * 1.0).item() > 0.0  # torch's default again outside
    with pytest.raises(ValueError):
        scaled(-1.0)
    assert (subnormal * 1.0).item() > 0.0  # restored after an error too
