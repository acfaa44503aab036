"""The comparison table: one row per dataset x model x latent size, one column per metric.

`COLUMNS` is the single list of what the report compares: the table, the
comparison bar charts and the findings all read their values and units here.
Every value comes from a metrics JSON or a history CSV; None is shown as "n/a".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aebench.reporting.catalog import dataset_label, model_label
from aebench.reporting.inputs import ModelResult

MISSING = "n/a"


@dataclass(frozen=True)
class MetricColumn:
    name: str  # short name: panel titles and findings
    unit: str  # shown in the header, e.g. "nats/image"
    value: Callable[[ModelResult], float | None]
    digits: int  # decimals shown
    source: str  # where the value comes from (the metrics key or the history column)
    lower_is_better: bool | None  # None: no direction (a count, a time)
    plotted: bool = True  # drawn in the per-dataset comparison figure

    @property
    def header(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def format(self, result: ModelResult) -> str:
        return format_number(self.value(result), self.digits)


def format_number(value: float | None, digits: int) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def _key(dotted: str, scale: float = 1.0) -> Callable[[ModelResult], float | None]:
    def read(result: ModelResult) -> float | None:
        value = result.value(dotted)
        return None if value is None else float(value) * scale

    return read


COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn("reconstruction BCE", "nats/image", _key("test.recon_bce"), 2, "test.recon_bce", True),
    MetricColumn("reconstruction squared error", "squared pixels/image", _key("test.recon_mse"), 2, "test.recon_mse",
                 True),
    MetricColumn("-ELBO", "nats/image", _key("test.neg_elbo"), 2, "test.neg_elbo", True),
    MetricColumn("IW NLL", "nats/image", _key("test.nll_iw"), 2, "test.nll_iw", True),
    MetricColumn("KL", "nats/image", _key("latent.kl_total"), 2, "latent.kl_total", None),
    MetricColumn("active units", "dimensions", _key("latent.active_units"), 0, "latent.active_units", None),
    MetricColumn("probe accuracy", "%", _key("probe.accuracy", 100.0), 1, "probe.accuracy", False),
    MetricColumn("sample class entropy", "0-1", _key("samples.class_entropy"), 3, "samples.class_entropy", False),
    MetricColumn("sample confidence", "probability", _key("samples.mean_confidence"), 3, "samples.mean_confidence",
                 False),
    MetricColumn("Frechet distance", "squared feature units", _key("samples.frechet_distance"), 2,
                 "samples.frechet_distance", True),
    MetricColumn("training time", "s", lambda r: r.train_seconds, 1, "history: sum of `seconds`", None, plotted=False),
    MetricColumn("evaluation time", "s", _key("timing.seconds"), 1, "timing.seconds", None, plotted=False),
)
COLUMN_BY_NAME = {column.name: column for column in COLUMNS}

ROW_HEADER = ("dataset", "model", "latent size D")


def comparison_table(results: list[ModelResult]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): the identifying columns, then one column per metric with its unit."""
    header = list(ROW_HEADER) + [column.header for column in COLUMNS]
    rows = []
    for result in results:
        key = result.key
        cells = [dataset_label(key.dataset), model_label(key.model), str(key.latent_dim)]
        for column in COLUMNS:
            cells.append(column.format(result))
        rows.append(cells)
    return header, rows


def missing_notes(results: list[ModelResult]) -> list[str]:
    """Why some cells are n/a: each distinct `test.note` of the metrics, with the models it concerns."""
    notes: dict[str, list[str]] = {}
    for result in results:
        note = result.metrics.get("test", {}).get("note")
        if note:
            notes.setdefault(str(note), []).append(f"{model_label(result.key.model)}-{result.key.latent_dim}")
    return [f"{', '.join(sorted(set(models)))}: {note}" for note, models in notes.items()]
