"""Typed view of a params file (params.yaml, or a profile under replicate/).

Every section is a frozen dataclass. `load_params` refuses an unknown key, a
missing key, a wrong type, a non-finite number or an out-of-range value with a
`ConfigError` whose one-line message names the key (e.g.
``latent_dims[0]: must be >= 1, got -3``). Defaults live in the params file,
not here: one place to read, one place to change.

The file is read with YAML 1.2 rules (ruamel.yaml), as DVC reads it: `1e-3`
is a float here exactly when it is a float to `dvc status` (PyYAML's YAML 1.1
would read it as a string, and DVC and aebench would disagree about a value).

`variants` maps a model's name to its objective and that objective's weights
(`vae: {objective: kl_split, beta: 1.0, gamma: 1.0}`). This module checks only
their shape; which objectives exist and which weights each takes is decided by
`aebench.models.objectives`, which the stages that build models consult before
any work. (This module stays free of torch, so the report stage loads fast.)
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aebench.common.errors import ConfigError

DatasetName = Literal["mnist", "fashion_mnist"]
# A variant's name becomes part of stage names and file paths (`train@mnist-vae-30`, `vae-30/`).
VARIANT_NAME = re.compile(r"[a-z][a-z0-9_]*")  # matched whole (fullmatch): `$` would let "ab\n" through


def _min(bound: float, *, strict: bool = False, allow_empty: bool = False, unique: bool = True) -> dict:
    """Field metadata: a lower bound checked by the loader; for lists, whether [] and repeats are allowed."""
    return {"min": bound, "strict": strict, "allow_empty": allow_empty, "unique": unique}


def _max(bound: float, why: str) -> dict:
    """Field metadata: an upper bound, with the reason the error message gives."""
    return {"max": bound, "why": why}


# A code as large as the image is no compression; larger ones have met only hour-long stages and gigabytes.
LATENT_DIMS_MAX = _max(784, "the images' dimension, 28 x 28 pixels: a larger code compresses nothing")


@dataclass(frozen=True)
class Variant:
    """One model of the study: an objective and its keyword arguments (weights)."""

    objective: str
    weights: Mapping[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {"objective": self.objective, **self.weights}


@dataclass(frozen=True)
class DataParams:
    source_dir: str | None
    split_seed: int = field(metadata=_min(0))
    val_size: int = field(metadata=_min(1))
    subset: int | None = field(metadata=_min(1))
    binarize: Literal["none", "dynamic"]
    download_timeout: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class NetworkParams:
    arch: Literal["mlp", "conv", "emae_conv", "gdl_conv"]  # the names of aebench.models.backbones.BACKBONES
    hidden: tuple[int, ...] = field(metadata=_min(1, allow_empty=True, unique=False))  # layer sizes may repeat
    activation: Literal["relu", "tanh"]
    init: Literal["default", "xavier_uniform"]
    code_activation: Literal["none", "relu"]


@dataclass(frozen=True)
class LikelihoodParams:
    name: Literal["bernoulli", "gaussian"]
    gaussian_std: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class TrainParams:
    epochs: int = field(metadata=_min(1))
    batch_size: int = field(metadata=_min(1))
    drop_last: bool
    lr: float = field(metadata=_min(0, strict=True))
    mc_samples: int = field(metadata=_min(1))


@dataclass(frozen=True)
class ClassifierParams:
    seed: int = field(metadata=_min(0))
    epochs: int = field(metadata=_min(1))
    batch_size: int = field(metadata=_min(1))
    lr: float = field(metadata=_min(0, strict=True))


@dataclass(frozen=True)
class EvaluateParams:
    iw_samples: int = field(metadata=_min(1))
    iw_images: int = field(metadata=_min(1))
    iw_batch_images: int = field(metadata=_min(1))
    iw_max_rows: int = field(metadata=_min(1))
    au_threshold: float = field(metadata=_min(0))
    usage_images: int = field(metadata=_min(2))
    usage_threshold: float = field(metadata=_min(0))
    knn_k: int = field(metadata=_min(1))
    latent_images: int = field(metadata=_min(1))
    sample_count: int = field(metadata=_min(1))
    precision_recall_k: int = field(metadata=_min(1))
    precision_recall_images: int = field(metadata=_min(2))
    density_coverage_k: int = field(metadata=_min(1))
    expost_components: int = field(metadata=_min(1))


@dataclass(frozen=True)
class ConvergenceParams:
    window: int = field(metadata=_min(2))  # the last epochs judged (a slope needs two points)
    tolerance_nats: float = field(metadata=_min(0))  # the largest validation-objective fall per epoch still "flat"


@dataclass(frozen=True)
class ClaimParams:
    max_seeds: int = field(metadata=_min(2))  # the cap of the seeds a non-decisive claim is said to need


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
    seeds: tuple[int, ...] = field(metadata=_min(0))
    datasets: tuple[DatasetName, ...]
    latent_dims: tuple[int, ...] = field(metadata=_min(1) | LATENT_DIMS_MAX)
    variants: dict[str, Variant]
    device: Literal["auto", "cpu", "cuda"]
    data: DataParams
    network: NetworkParams
    likelihood: LikelihoodParams
    train: TrainParams
    classifier: ClassifierParams
    evaluate: EvaluateParams
    convergence: ConvergenceParams
    claims: ClaimParams
    figures: FigureParams
    mlflow: MlflowParams

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, not tuples), as in the file: what a checkpoint or MLflow stores."""
        return _plain(self)

    def variant(self, name: str) -> Variant:
        """The variant called `name`; a ConfigError naming the known ones otherwise."""
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(f"variants: no variant {name!r} (params has {', '.join(self.variants)})") from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with YAML 1.2 rules, as DVC does; ConfigError naming the file otherwise."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        return YAML(typ="safe", pure=True).load(text)
    except YAMLError as err:
        first_line = str(err).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML ({first_line})") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise ConfigError naming the culprit."""
    return params_from_dict(read_yaml(path), source=str(path))


def params_from_dict(raw: Any, *, source: str = "params") -> Params:
    """Validate an already-parsed mapping (tests and `dvc exp` overrides use this)."""
    try:
        return _build(Params, raw, prefix="")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'train': {'lr': 1e-3}} -> {'train.lr': 1e-3}: the names MLflow params use."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


# --- validation machinery -------------------------------------------------


def _build(cls: type, raw: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "params"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_shown(raw)}")
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


def _build_variants(raw: Any, key: str) -> dict[str, Variant]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{key}: expected a non-empty mapping of variant name -> objective, got {_shown(raw)}")
    variants = {}
    for name, entry in raw.items():
        where = f"{key}.{name}"
        if not isinstance(name, str) or not VARIANT_NAME.fullmatch(name):
            raise ConfigError(f"{key}: {name!r} is not a variant name: lowercase letters, digits and _ (it names files)")
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with `objective` and its weights, got {_shown(entry)}")
        if "objective" not in entry:
            raise ConfigError(f"{where}.objective: missing")
        objective = _check_scalar(entry["objective"], str, f"{where}.objective", None)
        weights = {
            weight: _check_scalar(value, float, f"{where}.{weight}", _min(0))
            for weight, value in entry.items()
            if weight != "objective"
        }
        variants[name] = Variant(objective=objective, weights=weights)
    return variants


def _convert(value: Any, hint: Any, key: str, bounds: Any) -> Any:
    origin = typing.get_origin(hint)
    if hint == dict[str, Variant]:
        return _build_variants(value, key)
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
        bounds = bounds or {}
        allow_empty = bool(bounds.get("allow_empty"))
        if not isinstance(value, list) or (not value and not allow_empty):
            raise ConfigError(f"{key}: expected a {'' if allow_empty else 'non-empty '}list, got {_shown(value)}")
        inner = typing.get_args(hint)[0]
        items = tuple(_convert(v, inner, f"{key}[{i}]", bounds) for i, v in enumerate(value))
        if bounds.get("unique", True) and len(set(items)) != len(items):
            raise ConfigError(f"{key}: contains duplicates: {list(items)}")
        return items
    return _check_scalar(value, hint, key, bounds)


def _check_scalar(value: Any, hint: type, key: str, bounds: Any) -> Any:
    # bool is a subclass of int: `epochs: true` must not pass as 1.
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, hint) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {hint.__name__}, got {_shown(value)}")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{key}: must be a finite number, got {value!r}")
    if hint is str and not value.strip():
        raise ConfigError(f"{key}: must not be empty")
    if bounds and "min" in bounds:
        low, strict = bounds["min"], bounds["strict"]
        if value < low or (strict and value == low):
            relation = ">" if strict else ">="
            raise ConfigError(f"{key}: must be {relation} {low}, got {value!r}")
    if bounds and "max" in bounds and value > bounds["max"]:
        raise ConfigError(f"{key}: must be <= {bounds['max']} ({bounds['why']}), got {value!r}")
    return value


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, (str, int, float, bool, type(None), list)) else type(value).__name__


def _plain(value: Any) -> Any:
    if isinstance(value, Variant):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
