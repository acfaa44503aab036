"""What the report compares: one `MetricColumn` per quantity, its metrics key, unit and direction.

`COLUMNS` is the single list the comparison table, the comparison figures and
the findings read their values and units from. Every value comes from a
metrics file (`key`, a dotted METRIC_DOCS key), scaled for display (a
fraction shown in %); None is shown as "n/a" (a deterministic code has no
density). Sample-quality columns carry the metric they are, so the report can
drop those the classifier stage found unable to rank controlled degradations.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

MISSING = "n/a"


@dataclass(frozen=True)
class MetricColumn:
    name: str  # short name: panel titles and findings
    key: str  # the dotted metrics key
    unit: str  # shown in the header, e.g. "nats/image"
    digits: int  # decimals shown
    lower_is_better: bool | None  # None: no better direction (a count, a rate)
    scale: float = 1.0  # display = value * scale (fractions as %)
    quality_metric: str | None = None  # the sample-quality metric this is (for the validation gate)

    @property
    def header(self) -> str:
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def display(self, value: float | None) -> float | None:
        return None if value is None else float(value) * self.scale


def _sample_columns(source: str, label: str) -> tuple[MetricColumn, ...]:
    prefix = f"samples.{source}"
    return (
        MetricColumn(f"{label} precision", f"{prefix}.precision", "%", 1, False, 100.0, "precision"),
        MetricColumn(f"{label} recall", f"{prefix}.recall", "%", 1, False, 100.0, "recall"),
        MetricColumn(f"{label} density", f"{prefix}.density", "balls per sample / k", 3, False,
                     quality_metric="density"),
        MetricColumn(f"{label} coverage", f"{prefix}.coverage", "%", 1, False, 100.0, "coverage"),
        MetricColumn(f"{label} Fréchet distance", f"{prefix}.frechet_distance", "squared feature units", 1, True,
                     quality_metric="frechet_distance"),
        MetricColumn(f"{label} confidence", f"{prefix}.mean_confidence", "probability", 3, False,
                     quality_metric="mean_confidence"),
        MetricColumn(f"{label} recognisable", f"{prefix}.confident_share", "%", 1, False, 100.0,
                     quality_metric="confident_share"),
        MetricColumn(f"{label} recognisable by both judges", f"{prefix}.agreed_share", "%", 1, False, 100.0,
                     quality_metric="agreed_share"),
        MetricColumn(f"{label} class entropy", f"{prefix}.class_entropy", "0-1", 3, None),
        MetricColumn(f"{label} top-class share", f"{prefix}.top_class_share", "%", 1, None, 100.0),
    )


COLUMNS: tuple[MetricColumn, ...] = (
    MetricColumn("reconstruction BCE", "test.recon_bce", "nats/image", 2, True),
    MetricColumn("reconstruction squared error", "test.recon_mse", "squared pixels/image", 2, True),
    MetricColumn("-ELBO", "test.neg_elbo", "nats/image", 2, True),
    MetricColumn("IW NLL", "test.nll_iw", "nats/image", 2, True),
    MetricColumn("rate", "test.rate", "nats/image", 2, None),
    MetricColumn("distortion", "test.distortion", "nats/image", 2, True),
    MetricColumn("active units", "latent.active_units", "dimensions", 1, None),
    MetricColumn("used units", "latent.used_units", "dimensions", 1, None),
    MetricColumn("effective dimensions", "latent.effective_dims", "dimensions", 2, None),
    MetricColumn("probe accuracy", "probe.accuracy", "%", 1, False, 100.0),
    MetricColumn("k-NN accuracy", "latent.knn_accuracy", "%", 1, False, 100.0),
    *_sample_columns("prior", "N(0, I) samples:"),
    *_sample_columns("gmm", "GMM ex-post samples:"),
)
COLUMN_BY_KEY = {column.key: column for column in COLUMNS}


def passing_columns(passed: Collection[str]) -> list[MetricColumn]:
    """COLUMNS without the sample-quality columns whose metric is not in `passed` (it failed its validation)."""
    return [column for column in COLUMNS if column.quality_metric is None or column.quality_metric in passed]
