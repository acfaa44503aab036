"""Reading what the earlier stages wrote, refusing anything malformed by name.

The file layout under each folder is the contract of CONTRIBUTING.md
(`<folder>/<dataset>/<model>-<latent_dim>.<ext>`); the folders themselves
arrive as arguments. Which models exist comes from params (datasets x models x
latent_dims), so a stale file of an earlier study never slips into the report.
No torch here: the report stage reads files only.
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
from aebench.evaluation.metrics import MetricsError, check_metrics  # the schema module: no torch


class ReportInputError(AebenchError):
    """A metrics, history, latent or data-info file is missing or malformed."""


@dataclass(frozen=True, order=True)
class ModelKey:
    dataset: str
    model: str
    latent_dim: int

    @property
    def stem(self) -> str:
        """`<dataset>/<model>-<latent_dim>`: the contract's per-model file name, without suffix."""
        return f"{self.dataset}/{self.model}-{self.latent_dim}"


@dataclass(frozen=True)
class LatentMeans:
    mu: np.ndarray  # (N, D) posterior means of the first N test images
    labels: np.ndarray  # (N,)
    activity: np.ndarray  # (D,) A_u over the whole test set


@dataclass(frozen=True)
class ModelResult:
    key: ModelKey
    metrics: dict[str, Any]
    history: pd.DataFrame
    latent: LatentMeans

    def value(self, dotted: str) -> Any:
        """A metric by its dotted key (`test.nll_iw`); None when the model defines none."""
        return lookup(self.metrics, dotted)

    @property
    def train_seconds(self) -> float:
        """Wall time of training: the history's per-epoch `seconds`, summed."""
        return float(self.history["seconds"].sum())

    @property
    def eval_seconds(self) -> float:
        return float(self.metrics["timing"]["seconds"])


def lookup(mapping: dict[str, Any], dotted: str) -> Any:
    value: Any = mapping
    for part in dotted.split("."):
        value = value[part]
    return value


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
    """A model's metrics JSON, checked against the evaluation's schema (`check_metrics`)."""
    metrics = read_json(path, what="metrics file")
    try:
        check_metrics(metrics)
    except MetricsError as err:
        raise ReportInputError(f"{path}: {err}") from None
    return metrics


def read_history(path: str | Path) -> pd.DataFrame:
    """The per-epoch history CSV: `epoch`, `seconds`, `train_<term>`, `val_<term>`."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: training history not found")
    try:
        history = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: unreadable history CSV ({str(err).splitlines()[0]})") from None
    missing = [column for column in ("epoch", "seconds", "train_loss", "val_loss") if column not in history]
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
    """The terms a history records (`loss`, `recon`, `kl`...), in column order."""
    terms = []
    for column in history.columns:
        for split in ("train_", "val_"):
            if column.startswith(split) and column[len(split):] not in terms:
                terms.append(column[len(split):])
    return terms


def read_latent(path: str | Path) -> LatentMeans:
    """The evaluate stage's latent npz: `mu` (N, D), `labels` (N,), `activity` (D,)."""
    path = Path(path)
    arrays = read_npz(path, error=ReportInputError, missing="latent means not found", unreadable="unreadable latent file")
    for key in ("mu", "labels", "activity"):
        if key not in arrays:
            raise ReportInputError(f"{path}: missing array {key}")
    mu, labels, activity = arrays["mu"], arrays["labels"], arrays["activity"]
    if mu.ndim != 2 or labels.shape != (mu.shape[0],) or activity.shape != (mu.shape[1],):
        raise ReportInputError(
            f"{path}: expected mu (N, D), labels (N,), activity (D,); got {mu.shape}, {labels.shape}, {activity.shape}"
        )
    if len(mu) == 0:
        raise ReportInputError(f"{path}: holds no images")
    return LatentMeans(mu=mu.astype(np.float64), labels=labels.astype(np.int64), activity=activity.astype(np.float64))


def check_identity(path: str | Path, metrics: dict[str, Any], key: ModelKey) -> None:
    """A metrics file must describe the model its name says (a copied file would mislead)."""
    found = ModelKey(str(metrics["dataset"]), str(metrics["model"]), metrics["latent_dim"])
    if found != key:
        raise ReportInputError(f"{path}: describes {found.stem}, expected {key.stem}")


def load_result(key: ModelKey, *, metrics_dir: Path, history_dir: Path, latent_dir: Path) -> ModelResult:
    metrics_path = Path(metrics_dir) / f"{key.stem}.json"
    metrics = read_metrics(metrics_path)
    check_identity(metrics_path, metrics, key)
    latent_path = Path(latent_dir) / f"{key.stem}.npz"
    latent = read_latent(latent_path)
    if latent.mu.shape[1] != key.latent_dim:
        raise ReportInputError(f"{latent_path}: mu has {latent.mu.shape[1]} dimensions, expected {key.latent_dim}")
    return ModelResult(
        key=key,
        metrics=metrics,
        history=read_history(Path(history_dir) / f"{key.stem}.csv"),
        latent=latent,
    )


def study_keys(params) -> list[ModelKey]:
    """Every trained model of the study, in report order: dataset, then latent size, then model."""
    return [
        ModelKey(dataset, model, latent_dim)
        for dataset in params.datasets
        for latent_dim in params.latent_dims
        for model in params.models
    ]


def load_results(params, *, metrics_dir: Path, history_dir: Path, latent_dir: Path) -> list[ModelResult]:
    return [
        load_result(key, metrics_dir=metrics_dir, history_dir=history_dir, latent_dir=latent_dir)
        for key in study_keys(params)
    ]


def load_data_infos(datasets, prepared_dir: Path) -> dict[str, dict[str, Any]]:
    """Each dataset's info JSON from `prepare`: source, file checksums, split sizes."""
    infos = {}
    for dataset in datasets:
        path = Path(prepared_dir) / f"{dataset}.json"
        info = read_json(path, what="data info")
        for key in ("source", "files", "splits"):
            if key not in info:
                raise ReportInputError(f"{path}: missing key {key}")
        infos[dataset] = info
    return infos


def load_classifier_accuracies(datasets, metrics_dir: Path) -> dict[str, float | None]:
    """The sample-quality classifier's test accuracy per dataset (None if absent)."""
    accuracies: dict[str, float | None] = {}
    for dataset in datasets:
        path = Path(metrics_dir) / "classifiers" / f"{dataset}.json"
        found = path.is_file()
        accuracies[dataset] = read_json(path, what="classifier metrics").get("test_accuracy") if found else None
    return accuracies
