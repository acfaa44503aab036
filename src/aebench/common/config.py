"""Typed view of params.yaml.

Every section is a frozen dataclass. `load_params` refuses an unknown key, a
missing key, a wrong type or an out-of-range value with a `ConfigError` whose
one-line message names the key (e.g. ``latent_dims[0]: must be >= 1, got -3``).
Defaults live in params.yaml, not here: one place to read, one place to change.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from aebench.common.errors import ConfigError

DatasetName = Literal["mnist", "fashion_mnist"]
ModelName = Literal["ae", "vae", "emae"]


def _min(bound: float, *, strict: bool = False) -> dict:
    """Field metadata: a lower bound checked by the loader."""
    return {"min": bound, "strict": strict}


@dataclass(frozen=True)
class DataParams:
    source_dir: str | None
    val_size: int = field(metadata=_min(1))
    subset: int | None = field(metadata=_min(1))
    binarize: Literal["none", "dynamic"]
    download_timeout: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class ModelParams:
    arch: Literal["mlp", "conv"]
    hidden: tuple[int, ...] = field(metadata=_min(1))
    likelihood: Literal["bernoulli", "gaussian"]
    gaussian_std: float = field(metadata=_min(0, strict=True))
    beta: float = field(metadata=_min(0))
    mc_samples: int = field(metadata=_min(1))


@dataclass(frozen=True)
class TrainParams:
    epochs: int = field(metadata=_min(1))
    batch_size: int = field(metadata=_min(1))
    lr: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class ClassifierParams:
    epochs: int = field(metadata=_min(1))
    batch_size: int = field(metadata=_min(1))
    lr: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class EvaluateParams:
    iw_samples: int = field(metadata=_min(1))
    iw_batch_images: int = field(metadata=_min(1))
    iw_max_rows: int = field(metadata=_min(1))
    au_threshold: float = field(metadata=_min(0))
    latent_images: int = field(metadata=_min(1))
    sample_count: int = field(metadata=_min(1))


@dataclass(frozen=True)
class FigureParams:
    samples_grid: int = field(metadata=_min(1))
    recon_images: int = field(metadata=_min(1))
    manifold_steps: int = field(metadata=_min(2))
    manifold_range: float = field(metadata=_min(0, strict=True))
    interpolation_steps: int = field(metadata=_min(2))
    activity_images: int = field(metadata=_min(1))


@dataclass(frozen=True)
class MlflowParams:
    tracking_uri: str
    experiment: str


@dataclass(frozen=True)
class Params:
    seed: int = field(metadata=_min(0))
    device: Literal["auto", "cpu", "cuda"]
    datasets: tuple[DatasetName, ...]
    models: tuple[ModelName, ...]
    latent_dims: tuple[int, ...] = field(metadata=_min(1))
    data: DataParams
    model: ModelParams
    train: TrainParams
    classifier: ClassifierParams
    evaluate: EvaluateParams
    figures: FigureParams
    mlflow: MlflowParams

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples): what a checkpoint or MLflow stores."""
        return _plain(dataclasses.asdict(self))


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise ConfigError naming the culprit."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as err:
        first_line = str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({first_line})") from None
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Any, *, source: str = "params") -> Params:
    """Validate an already-parsed mapping (tests and `dvc exp` overrides use this)."""
    try:
        return _build(Params, raw, prefix="")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def flatten(nested: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}: the names MLflow params use."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


# --- validation machinery -------------------------------------------------


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (expected one of {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            raise ConfigError(f"{key}: missing")
        values[name] = _convert(raw[name], hints[name], key, spec.metadata)
    return cls(**values)


def _convert(value: Any, hint: Any, key: str, bounds: Any) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        (inner,) = [t for t in options if t is not type(None)]
        return _convert(value, inner, key, bounds)
    if origin is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, choices))}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list) or not value:
            raise ConfigError(f"{key}: expected a non-empty list, got {value!r}")
        inner = typing.get_args(hint)[0]
        items = tuple(_convert(v, inner, f"{key}[{i}]", bounds) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise ConfigError(f"{key}: contains duplicates: {list(items)}")
        return items
    return _check_scalar(value, hint, key, bounds)


def _check_scalar(value: Any, hint: type, key: str, bounds: Any) -> Any:
    # bool is a subclass of int: `epochs: true` must not pass as 1.
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {value!r}")
    if hint is str and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    if bounds and "min" in bounds:
        low, strict = bounds["min"], bounds["strict"]
        if value < low or (strict and value == low):
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}: must be {relation} {low}, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
