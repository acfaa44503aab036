"""Reading what the earlier stages wrote, refusing anything malformed by name.

The file layout under each root folder is `aebench.common.layout`'s; the
roots arrive as arguments. Which models exist comes from params (datasets x
variants x latent sizes, each at every seed), so a stale file of an earlier
study never slips into the report. No torch here: the report stage reads files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aebench.common.errors import AebenchError
from aebench.common.files import read_npz
from aebench.common.layout import ModelKey, Replicate, selected_keys
from aebench.evaluation.metrics import MetricsError, check_metrics, lookup  # the schema module: no torch
from aebench.training.history import ACTIVITY_PREFIX, USAGE_PREFIX, dimension_columns

class ReportInputError(AebenchError):
    """A metrics, history, latent or data-info file is missing or malformed."""


@dataclass(frozen=True)
class LatentArrays:
    mu: np.ndarray  # (N, D) posterior means of the first N test images
    labels: np.ndarray  # (N,)
    activity: np.ndarray  # (D,) A_u over the whole test set


@dataclass(frozen=True)
class ReplicateResult:
    replicate: Replicate
    metrics: dict[str, Any]
    history: pd.DataFrame
    latent: LatentArrays

    def value(self, dotted: str) -> Any:
        """A metric by its dotted key (`test.nll_iw`); None when the model defines none."""
        return lookup(self.metrics, dotted)

    def vector(self, dotted: str) -> np.ndarray:
        """A per-dimension metric (`latent.activity`, `latent.usage`) as float64 (D,)."""
        return np.asarray(self.value(dotted), dtype=np.float64)

    @property
    def seed(self) -> int:
        return self.replicate.seed

    def usage_history(self) -> pd.DataFrame:
        """Decoder usage per epoch (rows) and dimension (columns, 0-based); empty columns for an older history."""
        return self._per_dimension(USAGE_PREFIX)

    def activity_history(self) -> pd.DataFrame:
        """(epochs x D) validation activity per epoch: unit death over training."""
        return self._per_dimension(ACTIVITY_PREFIX)

    def _per_dimension(self, prefix: str) -> pd.DataFrame:
        columns = dimension_columns(self.history.columns, prefix)  # {dimension: column}
        return self.history.set_index("epoch")[list(columns.values())].set_axis(list(columns), axis=1)


@dataclass(frozen=True)
class ModelResults:
    """Every seed of one model: a row of the comparison table."""

    key: ModelKey
    replicates: list[ReplicateResult]  # in seed order

    def values(self, dotted: str) -> list[Any]:
        """The metric at each seed, in seed order."""
        return [r.value(dotted) for r in self.replicates]

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.replicates]

    @property
    def first(self) -> ReplicateResult:
        """The replicate the per-model figures show (the first seed of params)."""
        return self.replicates[0]

    @property
    def stochastic(self) -> bool:
        return bool(self.first.value("stochastic"))

    @property
    def unconverged_seeds(self) -> list[int]:
        """The seeds whose model failed the convergence test (`convergence.converged`); numbers of a model still
        moving are provisional."""
        return [r.seed for r in self.replicates if not r.value("convergence.converged")]


def read_json(path: str | Path, *, what: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: {what} not found")
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(payload, dict):
        raise ReportInputError(f"{path}: expected a JSON object, got {type(payload).__name__}")
    return payload


def read_metrics(path: str | Path) -> dict[str, Any]:
    """A replicate's metrics JSON, checked against the evaluation's schema (`check_metrics`)."""
    metrics = read_json(path, what="metrics file")
    try:
        check_metrics(metrics)
    except MetricsError as err:
        raise ReportInputError(f"{path}: {err}") from None
    return metrics


def read_history(path: str | Path) -> pd.DataFrame:
    """The per-epoch history CSV: `epoch`, `train_<term>`, `val_<term>`, `val_activity_<u>`."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: training history not found")
    try:
        history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: unreadable history CSV ({str(err).splitlines()[0]})") from None
    missing = [column for column in ("epoch", "train_loss", "val_loss") if column not in history]
    if missing:
        raise ReportInputError(f"{path}: history lacks column {missing[0]}")
    if history.empty:
        raise ReportInputError(f"{path}: history has no epochs")
    numeric = history.apply(pd.to_numeric, errors="coerce")
    bad = [column for column in history if numeric[column].isna().any()]
    if bad:
        raise ReportInputError(f"{path}: column {bad[0]} holds a missing or non-numeric value")
    return numeric


def loss_terms(history: pd.DataFrame) -> list[str]:
    """The loss terms a history records (`loss`, `recon`, `kl`...), in column order.

    The per-dimension columns (`val_activity_<u>`, `val_usage_<u>`) share the `val_` prefix but are no loss term.
    """
    terms = []
    for column in history.columns:
        if column.startswith((ACTIVITY_PREFIX, USAGE_PREFIX)):
            continue
        for split in ("train_", "val_"):
            if column.startswith(split) and column[len(split):] not in terms:
                terms.append(column[len(split):])
    return terms


def read_latent(path: str | Path) -> LatentArrays:
    """The evaluate stage's latent npz: `mu` (N, D), `labels` (N,), `activity` (D,) (its ex-post codes unread)."""
    path = Path(path)
    arrays = read_npz(path, error=ReportInputError, missing="latent arrays not found",
                      unreadable="unreadable latent file")
    for key in ("mu", "labels", "activity"):
        if key not in arrays:
            raise ReportInputError(f"{path}: missing array {key}")
    mu, labels, activity = arrays["mu"], arrays["labels"], arrays["activity"]
    if mu.ndim != 2 or labels.shape != (mu.shape[0],) or activity.shape != (mu.shape[1],) or len(mu) == 0:
        raise ReportInputError(
            f"{path}: expected mu (N > 0, D), labels (N,), activity (D,); got {mu.shape}, {labels.shape}, {activity.shape}"
        )
    return LatentArrays(mu=mu.astype(np.float64), labels=labels.astype(np.int64), activity=activity.astype(np.float64))


def check_identity(path: str | Path, metrics: dict[str, Any], replicate: Replicate) -> None:
    """A metrics file must describe the replicate its name says (a copied file would mislead)."""
    found = (metrics["dataset"], metrics["variant"], metrics["latent_dim"], metrics["seed"])
    key = replicate.key
    expected = (key.dataset, key.variant, key.latent_dim, replicate.seed)
    if found != expected:
        raise ReportInputError(f"{path}: describes {found}, expected {expected} (dataset, variant, latent_dim, seed)")


@dataclass(frozen=True)
class Roots:
    """The stage outputs a report reads, by root folder."""

    metrics: Path
    history: Path
    latent: Path


def load_replicate(replicate: Replicate, roots: Roots) -> ReplicateResult:
    metrics_path = replicate.path(roots.metrics, ".json")
    metrics = read_metrics(metrics_path)
    check_identity(metrics_path, metrics, replicate)
    latent_path = replicate.path(roots.latent, ".npz")
    latent = read_latent(latent_path)
    if latent.mu.shape[1] != replicate.key.latent_dim:
        raise ReportInputError(f"{latent_path}: mu has {latent.mu.shape[1]} dimensions, expected "
                               f"{replicate.key.latent_dim}")
    return ReplicateResult(replicate=replicate, metrics=metrics,
                           history=read_history(replicate.path(roots.history, ".csv")), latent=latent)


def load_results(params, roots: Roots, keys: list[ModelKey] | None = None) -> list[ModelResults]:
    """Every model of params (or of `keys`) at every seed, in report order."""
    return [
        ModelResults(key=key, replicates=[load_replicate(key.replicate(seed), roots) for seed in params.seeds])
        for key in (keys if keys is not None else selected_keys(params))
    ]


def _per_dataset(datasets, folder: Path, *, what: str, keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`<folder>/<dataset>.json` of each dataset, refused when it lacks one of `keys`."""
    found = {}
    for dataset in datasets:
        path = Path(folder) / f"{dataset}.json"
        found[dataset] = read_json(path, what=what)
        missing = [key for key in keys if key not in found[dataset]]
        if missing:
            raise ReportInputError(f"{path}: missing key {missing[0]}")
    return found


def load_data_infos(datasets, prepared_dir: Path) -> dict[str, dict[str, Any]]:
    """Each dataset's info JSON from `prepare`: checksums, split sizes, label counts."""
    return _per_dataset(datasets, prepared_dir, what="data info", keys=("files", "splits"))


def load_classifier_metrics(datasets, classifiers_dir: Path) -> dict[str, dict[str, Any]]:
    """The sample classifier's metrics per dataset: accuracy, real-image confidence, the metric validation."""
    return _per_dataset(datasets, classifiers_dir, what="classifier metrics",
                        keys=("test_accuracy", "real_mean_confidence", "sample_metric_validation"))
