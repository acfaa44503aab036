"""What a trained model is called, and where its files lie under a stage's folders.

A *model* of the study is one (dataset, variant, latent size): a `ModelKey`,
a row of the comparison table. It is trained once per seed; one of those is a
`Replicate`, one MLflow run. A stage of dvc.yaml handles one (dataset,
variant) at every latent size and seed, so that its jobs can share the cores.

dvc.yaml passes each stage the root folders (`models`, `history`, `metrics`,
`latent`, ...) and declares `<root>/<dataset>/<variant>` as the stage's
output; the layout under a root is fixed here and nowhere else:

    <root>/<dataset>/<variant>/latent-<latent_dim>/seed-<seed><suffix>
    e.g. models/mnist/vae/latent-30/seed-0.pt, metrics/mnist/vae/latent-30/seed-0.json

Beside the latent arrays (`seed-<s>.npz`) of a model's first seed lie the
pixels its figures draw (`seed-<s>.figures.npz`, FIGURE_PIXELS_SUFFIX).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEED_PREFIX = "seed-"
FIGURE_PIXELS_SUFFIX = ".figures.npz"  # under the latent root, first seed only


@dataclass(frozen=True, order=True)
class ModelKey:
    dataset: str
    variant: str
    latent_dim: int

    @property
    def stem(self) -> str:
        """`<dataset>/<variant>/latent-<latent_dim>`: the model's folder under any root."""
        return f"{self.dataset}/{self.variant}/latent-{self.latent_dim}"

    @property
    def name(self) -> str:
        """`<dataset>-<variant>-<latent_dim>`: how logs and MLflow run names call the model."""
        return f"{self.dataset}-{self.variant}-{self.latent_dim}"

    def folder(self, root: str | Path) -> Path:
        return Path(root) / self.stem

    def replicate(self, seed: int) -> Replicate:
        return Replicate(self, seed)


@dataclass(frozen=True, order=True)
class Replicate:
    key: ModelKey
    seed: int

    @property
    def name(self) -> str:
        """`<dataset>-<variant>-<latent_dim>-s<seed>`: the MLflow run name."""
        return f"{self.key.name}-s{self.seed}"

    def path(self, root: str | Path, suffix: str) -> Path:
        """This replicate's file under `root`, e.g. `path("models", ".pt")`."""
        return self.key.folder(root) / f"{SEED_PREFIX}{self.seed}{suffix}"


def selected_keys(params, *, dataset: str | None = None, variant: str | None = None,
                  latent_dim: int | None = None) -> list[ModelKey]:
    """The study's models (datasets x variants x latent sizes of params), narrowed to the given ones.

    In report order: dataset, then latent size, then variant. A selector that
    names something params does not have is a ConfigError.
    """
    from aebench.common.errors import ConfigError

    if dataset is not None and dataset not in params.datasets:
        raise ConfigError(f"datasets: {dataset!r} is not in params ({', '.join(params.datasets)})")
    if variant is not None:
        params.variant(variant)
    if latent_dim is not None and latent_dim not in params.latent_dims:
        raise ConfigError(f"latent_dims: {latent_dim} is not in params ({', '.join(map(str, params.latent_dims))})")
    return [
        ModelKey(d, v, z)
        for d in params.datasets
        for z in params.latent_dims
        for v in params.variants
        if (dataset in (None, d)) and (variant in (None, v)) and (latent_dim in (None, z))
    ]
