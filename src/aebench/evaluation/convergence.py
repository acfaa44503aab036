"""Has a model finished training? A test read from its per-epoch history, not from retraining.

Over the last `window` epochs (convergence.window) of the history:

- the validation objective (the variant's own loss: the -ELBO for the VAE)
  must be flat: its least-squares slope against the epoch, in nats per image
  per epoch, must not fall below -tolerance (convergence.tolerance_nats). A
  rising objective passes this part: it is no longer improving;
- the used set (dimensions whose share of the decoder's usage exceeds
  evaluate.usage_threshold) must be the same at every one of those epochs;
- the active set (dimensions whose A_u exceeds evaluate.au_threshold) too.

A history shorter than the window fails: it cannot show a plateau. A unit that
dies, wakes or flickers across a threshold inside the window fails the set
test, however flat the objective: the metrics that count units would still
move with more training. NumPy only: the report reads it without torch.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aebench.common.config import Params
from aebench.evaluation.usage_split import usage_shares
from aebench.training.history import ACTIVITY_PREFIX, USAGE_PREFIX, dimension_columns

OBJECTIVE_COLUMN = "val_loss"  # the variant's validation objective, nats per image


@dataclass(frozen=True)
class Convergence:
    epochs: int  # epochs in the history
    window: int
    tolerance_nats: float
    slope: float | None  # nats per image per epoch over the window; None when the history is shorter
    flat: bool  # slope >= -tolerance_nats
    used_stable: bool  # one used set over the window
    active_stable: bool  # one active set over the window
    converged: bool
    reason: str  # "passed", or why not, in words

    def to_metrics(self) -> dict:
        """The `convergence` section of the metrics file (documented in METRIC_DOCS)."""
        return {
            "epochs": self.epochs, "window": self.window, "tolerance_nats": self.tolerance_nats,
            "slope": self.slope, "flat": self.flat, "used_stable": self.used_stable,
            "active_stable": self.active_stable, "converged": self.converged, "reason": self.reason,
        }


def read_history_columns(path: str | Path) -> dict[str, np.ndarray]:
    """A history CSV as {column: float64 (epochs,)}; ValueError naming the file when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, "training history not found (run the train stage)", str(path))
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError("it has no epochs")
    try:
        return {name: np.array([float(row[name]) for row in rows]) for name in rows[0]}
    except (TypeError, ValueError):
        raise ValueError("it holds a value that is not a number") from None


def unit_sets(
    history: Mapping[str, Sequence[float]], prefix: str, threshold: float, *, shares: bool
) -> list[frozenset]:
    """Per epoch, the dimensions above `threshold` in the per-dimension columns `prefix` (as shares when asked)."""
    columns = dimension_columns(history, prefix)  # {dimension: column}
    if not columns:
        raise ValueError(f"history has no {prefix}<u> columns")
    values = np.column_stack([np.asarray(history[name], dtype=np.float64) for name in columns.values()])  # (E, D)
    dims = np.array(list(columns))
    sets = []
    for row in values:
        measure = usage_shares(row) if shares else row
        sets.append(frozenset(int(u) for u in dims[measure > threshold]))
    return sets


def objective_slope(objective: Sequence[float]) -> float:
    """Least-squares slope of the values against their epoch index (per epoch)."""
    values = np.asarray(objective, dtype=np.float64)
    epochs = np.arange(len(values), dtype=np.float64)
    return float(np.polyfit(epochs, values, 1)[0])


def convergence_test(
    history: Mapping[str, Sequence[float]],
    *,
    window: int,
    tolerance_nats: float,
    au_threshold: float,
    usage_threshold: float,
) -> Convergence:
    """The test on a history {column: per-epoch values} (`read_history_columns`)."""
    if window < 2:
        raise ValueError(f"convergence window must be >= 2 epochs, got {window}")
    epochs = len(history[OBJECTIVE_COLUMN])
    used = unit_sets(history, USAGE_PREFIX, usage_threshold, shares=True)
    active = unit_sets(history, ACTIVITY_PREFIX, au_threshold, shares=False)
    if epochs < window:
        return Convergence(
            epochs=epochs, window=window, tolerance_nats=tolerance_nats, slope=None, flat=False,
            used_stable=False, active_stable=False, converged=False,
            reason=f"only {epochs} epochs, fewer than the window of {window}",
        )
    slope = objective_slope(history[OBJECTIVE_COLUMN][-window:])
    flat = slope >= -tolerance_nats
    used_stable = len(set(used[-window:])) == 1
    active_stable = len(set(active[-window:])) == 1
    failures = []
    if not flat:
        failures.append(f"objective still falls {-slope:.3g} nats/epoch (tolerance {tolerance_nats:g})")
    for name, stable, sets in (("used", used_stable, used), ("active", active_stable, active)):
        if not stable:
            counts = "/".join(str(len(s)) for s in sets[-window:])
            failures.append(f"{name} set changes over the last {window} epochs ({counts} units)")
    return Convergence(
        epochs=epochs, window=window, tolerance_nats=tolerance_nats, slope=slope, flat=flat,
        used_stable=used_stable, active_stable=active_stable, converged=not failures,
        reason="; ".join(failures) or "passed",
    )


def history_convergence(path: str | Path, params: Params) -> Convergence:
    """The test of the model whose history CSV is `path`, with the thresholds and window of `params`."""
    return convergence_test(
        read_history_columns(path), window=params.convergence.window,
        tolerance_nats=params.convergence.tolerance_nats, au_threshold=params.evaluate.au_threshold,
        usage_threshold=params.evaluate.usage_threshold,
    )
