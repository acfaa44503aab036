"""Tiny params, models, prepared data and MLflow stores shared by the unit tests.

Everything here is scaled down so a test trains or evaluates in well under a
second: an MLP with one hidden layer of 32 units, a few hundred synthetic
images, a handful of samples. Tests import what they need:
`from helpers import tiny_params, tiny_config, ...` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import atexit
import copy
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from aebench.common.config import Params, params_from_dict, read_yaml
from aebench.common.layout import ModelKey, Replicate
from aebench.common.runtime import seed_everything
from aebench.data.prepared import PreparedData, save_prepared

REPO = Path(__file__).resolve().parents[1]
SPLIT_SIZES = {"train": 128, "val": 32, "test": 60}


# --- params ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _repository_raw() -> dict:
    return read_yaml(REPO / "params.yaml")  # YAML 1.2, as DVC and load_params read it


def repository_raw() -> dict:
    """The repository's params.yaml as a plain nested dict (a fresh copy each call)."""
    return copy.deepcopy(_repository_raw())


def set_dotted(raw: dict, dotted: str, value: Any) -> dict:
    """Set raw["a"]["b"] for "a.b" in place; returns raw."""
    *parents, leaf = dotted.split(".")
    node = raw
    for name in parents:
        node = node[name]
    node[leaf] = value
    return raw


TINY_VARIANTS = {
    "ae": {"objective": "deterministic"},
    "vae": {"objective": "kl_split", "beta": 1.0, "gamma": 1.0},
    "emae": {"objective": "kl_split", "beta": 1.0, "gamma": 0.0},
}


def tiny_raw(**dotted: Any) -> dict:
    """The repository's params scaled down: one dataset, one seed, latent size 2, a [32] MLP, CPU.

    Every value a test's expectation depends on is pinned here (the variants, the network, the
    likelihood, the training), so a change of the study's params.yaml does not change the tests.
    Keyword arguments override dotted keys, with `__` for the dots: `train__lr=2e-3`.
    """
    raw = repository_raw()
    raw.update(seeds=[0], datasets=["mnist"], latent_dims=[2], device="cpu", variants=copy.deepcopy(TINY_VARIANTS))
    raw["data"].update(binarize="dynamic", subset=None)
    raw["network"].update(arch="mlp", hidden=[32], activation="relu", init="default", code_activation="none")
    raw["likelihood"].update(name="bernoulli", gaussian_std=0.1)
    raw["train"].update(epochs=2, batch_size=64, drop_last=False, lr=0.001, mc_samples=1)
    raw["evaluate"].update(
        iw_samples=8, iw_batch_images=20, iw_max_rows=160, usage_images=40, latent_images=20, sample_count=60,
        precision_recall_k=3, precision_recall_images=40, density_coverage_k=5, expost_components=2,
    )
    raw["figures"].update(manifold_steps=4, interpolation_steps=5)
    raw["mlflow"]["tracking_uri"] = "sqlite:///mlflow.db"
    for key, value in dotted.items():
        set_dotted(raw, key.replace("__", "."), value)
    return raw


def tiny_params(**dotted: Any) -> Params:
    return params_from_dict(tiny_raw(**dotted))


def write_params(path: Path, raw: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def replicate(variant: str = "vae", latent_dim: int = 2, seed: int = 0, dataset: str = "mnist") -> Replicate:
    return ModelKey(dataset, variant, latent_dim).replicate(seed)


def tiny_config(variant: str = "vae", latent_dim: int = 2, seed: int = 0, **dotted: Any) -> dict:
    """`model_config` of one replicate under tiny params (`dotted` as for `tiny_raw`)."""
    from aebench.models.autoencoder import model_config

    raw = tiny_raw(**dotted)
    raw["latent_dims"] = sorted({*raw["latent_dims"], latent_dim})
    raw["seeds"] = sorted({*raw["seeds"], seed})
    return model_config(params_from_dict(raw), replicate(variant, latent_dim, seed))


def make_model(config: dict):
    """A freshly initialised model, seeded as the train stage seeds it."""
    from aebench.models.autoencoder import build_model

    seed_everything(config["seed"])
    return build_model(config)


# --- data --------------------------------------------------------------------


def synthetic_prepared(sizes: dict[str, int] | None = None, *, seed: int = 0) -> PreparedData:
    """Digit-like random images (dark background, a few bright pixels) and random labels."""
    rng = np.random.default_rng(seed)
    sizes = sizes or SPLIT_SIZES
    images = {split: (rng.random((n, 28, 28)) ** 3 * 255).astype(np.uint8) for split, n in sizes.items()}
    labels = {split: rng.integers(0, 10, n).astype(np.int64) for split, n in sizes.items()}
    return PreparedData(images=images, labels=labels)


def write_prepared_file(path: Path, sizes: dict[str, int] | None = None, *, seed: int = 0) -> Path:
    save_prepared(path, synthetic_prepared(sizes, seed=seed))
    return path


def images(count: int, *, seed: int) -> torch.Tensor:
    """Grey-level images (count, 1, 28, 28) in [0, 1]."""
    return torch.rand(count, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


# --- stage scripts -----------------------------------------------------------


# --- MLflow ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _store_template() -> Path:
    """A sqlite store with the `aebench` experiment, made once per process (a new database costs ~3 s)."""
    from aebench.common.tracking import open_store

    folder = Path(tempfile.mkdtemp(prefix="aebench-store-template-"))
    atexit.register(shutil.rmtree, folder, True)
    open_store("sqlite:///mlflow.db", "aebench", workspace=folder)
    return folder / "mlflow.db"


def seed_store(workspace: Path) -> Path:
    """Put a ready sqlite store at <workspace>/mlflow.db (what `sqlite:///mlflow.db` in params names)."""
    workspace.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(_store_template(), workspace / "mlflow.db"))


def new_store(workspace: Path, experiment: str = "aebench"):
    """An opened store at <workspace>/mlflow.db (copied from the template, so relocated to this workspace)."""
    from aebench.common.tracking import open_store

    seed_store(workspace)
    return open_store("sqlite:///mlflow.db", experiment, workspace=workspace)


# --- the parallel runner's tasks (module-level: pickled to worker processes) ----


def train_steps_task(seed: int) -> tuple[int, bytes]:
    """Train a tiny VAE for a few gradient steps; returns (pid, the bytes of its state_dict).

    Plain gradient descent by hand: constructing any torch optimizer imports torch._dynamo (~2.5 s a process).
    """
    import os

    from aebench.models.checkpoint import torch_bytes

    model = make_model(tiny_config("vae", seed=seed))
    data = images(64, seed=100 + seed)
    noise = torch.Generator().manual_seed(seed)
    for step in range(5):
        batch = data[16 * (step % 4) : 16 * (step % 4 + 1)]
        loss = model.loss_terms(batch, generator=noise)["loss"]
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for parameter in model.parameters():
                parameter -= 1e-3 * parameter.grad
    return os.getpid(), torch_bytes(model.state_dict())


def failing_task(job: float) -> float:
    """Fails at once for a negative job, else sleeps `job` seconds."""
    import time

    if job < 0:
        raise ValueError(f"job {job} failed")
    time.sleep(job)
    return job


def threads_task(seed: int) -> tuple[int, list[tuple[str, int]], bytes]:
    """numpy, scipy and sklearn at work; returns (pid, (library, threads) of every thread pool, the bytes computed).

    Each of the three numbers below changes in its last bits with the number of BLAS threads on this machine.
    """
    import os

    import numpy as np
    import scipy.linalg
    from sklearn.decomposition import PCA
    from threadpoolctl import threadpool_info

    rng = np.random.default_rng(seed)
    x = rng.standard_normal(2_000_000)
    a = rng.standard_normal((300, 300))
    covariance = a.T @ a / 300
    numbers = [np.dot(x, x[::-1]), scipy.linalg.sqrtm(covariance @ covariance.T).real, np.linalg.eigh(covariance)[0],
               PCA(n_components=5, random_state=0).fit_transform(a)]
    pools = [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()]
    return os.getpid(), pools, b"".join(np.ascontiguousarray(number).tobytes() for number in numbers)
