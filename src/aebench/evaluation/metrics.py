"""The evaluation metrics file: every key documented here, and its schema check.

`metrics/<dataset>/<model>-<latent_dim>.json` is nested by the first part of
each dotted key below (`test.nll_iw` is `payload["test"]["nll_iw"]`). All
numbers are on the test split. Likelihoods and reconstruction errors are per
image: summed over the 784 pixels, averaged over the images, in nats where
they are log-densities. Test images are binarized once with the study's seed
when the model was trained with `data.binarize: dynamic` (the targets of every
likelihood, and the encoder's input), and left grey-level otherwise.

`METRIC_DOCS` (key -> one line) is what the report and the README quote;
`check_metrics` is the contract that the report stage can rely on. This
module imports no torch: the report stage loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from aebench.common.errors import AebenchError

AE_NOTE = (
    "the AE has a deterministic code and no q(z|x), so it defines no density: "
    "no ELBO, importance-weighted likelihood or KL"
)
CLASSES = 10
_SLACK = 1e-9  # round-off allowed below a lower bound (a KL of -1e-16 is a zero)


class MetricsError(AebenchError):
    """A metrics payload does not follow the documented schema."""


@dataclass(frozen=True, kw_only=True)
class Metric:
    kind: str  # str, int, float, int_list, float_list
    doc: str
    unit: str = ""
    null_for_ae: bool = False  # null exactly when the model is the AE
    nullable: bool = False  # may be null for any model
    minimum: float | None = None
    maximum: float | None = None


NATS = "nats/image"

METRICS: dict[str, Metric] = {
    "dataset": Metric(kind="str", doc="dataset the model was trained and evaluated on (mnist, fashion_mnist)"),
    "model": Metric(kind="str", doc="objective: ae, vae or emae"),
    "latent_dim": Metric(kind="int", doc="size D of the latent code", minimum=1),
    "mlflow_run_id": Metric(
        kind="str", doc="MLflow run of the model's training, where these numbers are logged too", nullable=True
    ),
    "test.images": Metric(kind="int", doc="test images evaluated", unit="images", minimum=1),
    "test.recon_bce": Metric(
        kind="float",
        doc="binary cross-entropy of the reconstruction decoded at z = mu (the code for the AE), summed over pixels",
        unit=NATS,
        minimum=0,
    ),
    "test.recon_mse": Metric(
        kind="float",
        doc="squared error of the reconstruction (image in [0, 1]) decoded at z = mu, summed over pixels",
        unit="squared pixel error/image",
        minimum=0,
    ),
    "test.neg_elbo": Metric(
        kind="float",
        doc="-ELBO with the model's own q: E_q[-log p(x|z)] over the iw_samples draws plus the exact KL "
        "(the EM-AE's q was never trained for this, so a poor value is a finding)",
        unit=NATS,
        null_for_ae=True,
    ),
    "test.nll_iw": Metric(
        kind="float",
        doc="importance-weighted estimate of -log p(x) with iw_samples samples from q (Burda et al. 2015): "
        "an upper bound on the NLL in expectation, tighter as iw_samples grows",
        unit=NATS,
        null_for_ae=True,
    ),
    "test.iw_samples": Metric(
        kind="int", doc="K, samples per image for neg_elbo and nll_iw (evaluate.iw_samples)", unit="samples", minimum=1
    ),
    "test.note": Metric(kind="str", doc="why some numbers are null (the AE), else null", nullable=True),
    "latent.active_units": Metric(
        kind="int", doc="dimensions whose activity exceeds au_threshold", unit="dimensions", minimum=0
    ),
    "latent.au_threshold": Metric(
        kind="float", doc="activity threshold for an active unit (Burda et al.: 0.01)", minimum=0
    ),
    "latent.kl_total": Metric(
        kind="float", doc="KL(q(z|x) || N(0, I)) averaged over test images", unit=NATS, null_for_ae=True, minimum=0
    ),
    "latent.activity": Metric(
        kind="float_list",
        doc="per dimension, the variance over the test set of the posterior mean (the code for the AE): A_u",
        unit="latent units squared",
        minimum=0,
    ),
    "latent.kl_per_dim": Metric(
        kind="float_list", doc="per dimension, the KL averaged over test images", unit=NATS, null_for_ae=True, minimum=0
    ),
    "probe.method": Metric(
        kind="str", doc="the linear probe: logistic regression on standardized train-split posterior means"
    ),
    "probe.accuracy": Metric(
        kind="float", doc="test accuracy of the probe on test-split posterior means", unit="fraction", minimum=0, maximum=1
    ),
    "samples.count": Metric(
        kind="int", doc="images decoded from z ~ N(0, I) with the study's seed", unit="images", minimum=1
    ),
    "samples.class_histogram": Metric(
        kind="int_list",
        doc="how many samples the dataset's classifier assigns to each of the 10 classes",
        unit="images",
        minimum=0,
    ),
    "samples.class_entropy": Metric(
        kind="float",
        doc="entropy of class_histogram / log(10): 1 = every class equally often, 0 = one class only",
        minimum=0,
        maximum=1,
    ),
    "samples.mean_confidence": Metric(
        kind="float",
        doc="mean over samples of the classifier's top-class probability",
        unit="probability",
        minimum=0,
        maximum=1,
    ),
    "samples.frechet_distance": Metric(
        kind="float",
        doc="Fréchet distance between Gaussians fitted to the classifier's penultimate features of the samples "
        "and of the test images (lower = closer to real images)",
        unit="squared feature units",
        minimum=0,
    ),
    "timing.seconds": Metric(
        kind="float", doc="wall time of the evaluation, after loading its inputs", unit="seconds", minimum=0
    ),
}

METRIC_DOCS: dict[str, str] = {
    key: f"{metric.doc}{f' [{metric.unit}]' if metric.unit else ''}" for key, metric in METRICS.items()
}


def _nested_keys() -> dict[str | None, list[str]]:
    """Section (None for the top level) -> its keys, in METRICS order."""
    sections: dict[str | None, list[str]] = {None: []}
    for key in METRICS:
        section, _, name = key.rpartition(".")
        if section:
            if section not in sections:
                sections[section] = []
                sections[None].append(section)
            sections[section].append(name)
        else:
            sections[None].append(name)
    return sections


def check_metrics(payload: Any) -> None:
    """Raise MetricsError (naming the key) unless `payload` follows METRICS exactly."""
    if not isinstance(payload, dict):
        raise MetricsError(f"metrics: expected a mapping, got {type(payload).__name__}")
    sections = _nested_keys()
    _check_keys(payload, sections[None], None)
    for section, names in sections.items():
        if section is not None:
            if not isinstance(payload[section], dict):
                raise MetricsError(f"{section}: expected a mapping, got {type(payload[section]).__name__}")
            _check_keys(payload[section], names, section)
    is_ae = payload["model"] == "ae"
    for key, metric in METRICS.items():
        _check_value(key, metric, _lookup(payload, key), is_ae)
    _check_consistency(payload)


def _check_keys(mapping: dict, expected: list[str], section: str | None) -> None:
    prefix = f"{section}." if section else ""
    missing = [k for k in expected if k not in mapping]
    if missing:
        raise MetricsError(f"{prefix}{missing[0]}: missing")
    unknown = sorted(set(mapping) - set(expected))
    if unknown:
        raise MetricsError(f"{prefix}{unknown[0]}: not a documented metric (see METRIC_DOCS)")


def _lookup(payload: dict, key: str) -> Any:
    value: Any = payload
    for part in key.split("."):
        value = value[part]
    return value


def _check_value(key: str, metric: Metric, value: Any, is_ae: bool) -> None:
    if metric.null_for_ae and is_ae:
        if value is not None:
            raise MetricsError(f"{key}: must be null for the AE, got {value!r}")
        return
    if value is None:
        if metric.nullable:
            return
        raise MetricsError(f"{key}: must not be null")
    items = value if metric.kind.endswith("_list") else [value]
    if metric.kind.endswith("_list") and (not isinstance(value, list) or not value):
        raise MetricsError(f"{key}: expected a non-empty list, got {value!r}")
    base = metric.kind.removesuffix("_list")
    for item in items:
        _check_scalar(key, base, item, metric)


def _check_scalar(key: str, kind: str, value: Any, metric: Metric) -> None:
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise MetricsError(f"{key}: expected a non-empty string, got {value!r}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind == "int" and not isinstance(value, int)):
        raise MetricsError(f"{key}: expected {kind}, got {value!r}")
    if not math.isfinite(value):
        raise MetricsError(f"{key}: must be finite, got {value!r}")
    if metric.minimum is not None and value < metric.minimum - _SLACK:
        raise MetricsError(f"{key}: must be >= {metric.minimum}, got {value!r}")
    if metric.maximum is not None and value > metric.maximum + _SLACK:
        raise MetricsError(f"{key}: must be <= {metric.maximum}, got {value!r}")


def _check_consistency(payload: dict) -> None:
    if payload["model"] == "ae" and not (payload["test"]["note"] or "").strip():
        raise MetricsError("test.note: the AE needs a note saying why its likelihoods are null")
    dims = payload["latent_dim"]
    latent = payload["latent"]
    for name in ("activity", "kl_per_dim"):
        if latent[name] is not None and len(latent[name]) != dims:
            raise MetricsError(f"latent.{name}: expected {dims} values (latent_dim), got {len(latent[name])}")
    if latent["active_units"] > dims:
        raise MetricsError(f"latent.active_units: {latent['active_units']} exceeds latent_dim {dims}")
    histogram = payload["samples"]["class_histogram"]
    if len(histogram) != CLASSES:
        raise MetricsError(f"samples.class_histogram: expected {CLASSES} counts, got {len(histogram)}")
    if sum(histogram) != payload["samples"]["count"]:
        raise MetricsError(f"samples.class_histogram: counts sum to {sum(histogram)}, not samples.count {payload['samples']['count']}")


def metric_scalars(payload: dict) -> dict[str, float]:
    """The numeric scalars as flat dotted names (what MLflow logs as metrics); nulls are left out."""
    flat = {}
    for key, metric in METRICS.items():
        value = _lookup(payload, key)
        if metric.kind in ("int", "float") and value is not None:
            flat[key] = float(value)
    return flat


def metric_series(payload: dict) -> dict[str, list[float]]:
    """The per-dimension and per-class lists (MLflow logs each as one metric stepped by index)."""
    return {
        key: [float(v) for v in _lookup(payload, key)]
        for key, metric in METRICS.items()
        if metric.kind.endswith("_list") and _lookup(payload, key) is not None
    }
