"""The evaluation metrics file: every key documented here, and its schema check.

`metrics/<dataset>/<variant>/latent-<D>/seed-<s>.json` is nested by the parts
of each dotted key below (`test.nll_iw` is `payload["test"]["nll_iw"]`). All
numbers are on the test split unless a key says otherwise. Likelihoods and
reconstruction errors are per image: summed over the 784 pixels, averaged
over the images, in nats where they are log-densities. Test images are
binarized once with the replicate's seed when the model was trained with
`data.binarize: dynamic` (the targets of every likelihood, and the encoder's
input), and left grey-level otherwise.

A file is a pure function of the checkpoint, the data and params: it holds no
wall time and no run id (those go to the run-info record and MLflow), so a
rerun writes the same bytes.

`METRIC_DOCS` (key -> one line) is what the report and the README quote;
`check_metrics` is the contract that the report stage relies on. This module
imports no torch: the report stage loads it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from aebench.common.errors import AebenchError
from aebench.data.official import CLASSES

DETERMINISTIC_NOTE = (
    "a deterministic code has no q(z|x), so the model defines no density: "
    "no ELBO, importance-weighted likelihood, rate or KL"
)
_SLACK = 1e-9  # round-off allowed below a lower bound (a KL of -1e-16 is a zero)
NATS = "nats/image"
# Where sample images come from: the prior, and the two ex-post densities fitted on the training means.
SAMPLE_SOURCES = {
    "prior": "z ~ N(0, I)",
    "gaussian": "z from a full-covariance Gaussian fitted on the training means (ex post, Ghosh et al. 2020)",
    "gmm": "z from a Gaussian mixture (evaluate.expost_components components) fitted on the training means (ex post)",
}

# Where the second judge's verdicts go (evaluation.classifier.SECOND_JUDGE, the MLP on the pixels): the same
# metrics of the same samples as under `samples`, measured in its features and by its labels, because the
# validation ladder trusts some metrics only in its embedding; the report decides with (metric, judge) pairs.
SECOND_JUDGE_SAMPLES = "samples_mlp_judge"
# Metrics section -> the judge whose features and labels it holds, as the report names it.
SAMPLE_SECTIONS = {"samples": "cnn", SECOND_JUDGE_SAMPLES: "mlp"}


class MetricsError(AebenchError):
    """A metrics payload does not follow the documented schema."""


@dataclass(frozen=True, kw_only=True)
class Metric:
    kind: str  # str, int, float, int_list, float_list
    doc: str
    unit: str = ""
    null_when_deterministic: bool = False  # null exactly when the model has a deterministic code
    null_unless_2d: bool = False  # null exactly when the latent is not 2-D
    nullable: bool = False  # may be null for any model
    minimum: float | None = None
    maximum: float | None = None


def _sample_metrics(source: str, what: str, section: str = "samples") -> dict[str, Metric]:
    prefix = f"{section}.{source}"
    metrics = {
        f"{prefix}.count": Metric(kind="int", doc=f"images decoded from {what}", unit="images", minimum=1),
        f"{prefix}.class_histogram": Metric(
            kind="int_list", doc="how many of them the dataset's classifier assigns to each of the 10 classes",
            unit="images", minimum=0,
        ),
        f"{prefix}.class_entropy": Metric(
            kind="float", doc="entropy of class_histogram / log(10): 1 = every class equally often, 0 = one class "
            "(diversity of classes, not quality)", minimum=0, maximum=1,
        ),
        f"{prefix}.top_class_share": Metric(
            kind="float", doc="share of the samples in the most frequent class", unit="fraction", minimum=0, maximum=1,
        ),
        f"{prefix}.mean_confidence": Metric(
            kind="float", doc="mean over samples of the classifier's top-class probability", unit="probability",
            minimum=0, maximum=1,
        ),
        f"{prefix}.confident_share": Metric(
            kind="float", doc="recognisability: share of samples the classifier labels with a top-class probability "
            "of at least 0.9 (plainly one digit or garment)", unit="fraction", minimum=0, maximum=1,
        ),
        f"{prefix}.agreed_share": Metric(
            kind="float", doc="recognisability by two judges: share of samples that the judge (the CNN) and the "
            "second judge (the MLP) both label as the same class with a top-class probability of at least 0.9; one "
            "network's confidence on inputs unlike its training data is its own quirk, two networks' agreement is "
            "not", unit="fraction", minimum=0, maximum=1,
        ),
        f"{prefix}.frechet_distance": Metric(
            kind="float", doc="Fréchet distance between Gaussians fitted to the classifier's penultimate features of "
            "the samples and of the test images (lower = closer; mixes fidelity and coverage)",
            unit="squared feature units", minimum=0,
        ),
        f"{prefix}.precision": Metric(
            kind="float", doc="improved precision (Kynkäänniemi et al. 2019): share of samples inside the k-NN ball "
            "of some test image, in the classifier's feature space (fidelity)", unit="fraction", minimum=0, maximum=1,
        ),
        f"{prefix}.recall": Metric(
            kind="float", doc="improved recall: share of test images inside the k-NN ball of some sample (coverage)",
            unit="fraction", minimum=0, maximum=1,
        ),
        f"{prefix}.density": Metric(
            kind="float", doc="density (Naeem et al. 2020): real k-NN balls (evaluate.density_coverage_k) holding a "
            "sample, counted per sample and divided by k; about 1 for real images, not fooled by one outlier's "
            "large ball (fidelity)", unit="balls per sample / k", minimum=0,
        ),
        f"{prefix}.coverage": Metric(
            kind="float", doc="coverage (Naeem et al. 2020): share of test images whose k-NN ball holds some sample "
            "(diversity, judged by the real balls)", unit="fraction", minimum=0, maximum=1,
        ),
    }
    if section == "samples":
        return metrics
    del metrics[f"{prefix}.agreed_share"]  # held once, in the judge's section
    return {key: replace(metric, doc=f"{metric.doc}; judged by the second judge, the MLP on the pixels "
                         "(`samples` holds the CNN judge's)") for key, metric in metrics.items()}


METRICS: dict[str, Metric] = {
    "dataset": Metric(kind="str", doc="dataset the model was trained and evaluated on (mnist, fashion_mnist)"),
    "variant": Metric(kind="str", doc="the model's variant: its name in params `variants`"),
    "objective": Metric(kind="str", doc="the variant's objective (aebench.models.objectives)"),
    "stochastic": Metric(kind="bool", doc="whether the encoder defines q(z|x) (a Gaussian), or a deterministic code"),
    "latent_dim": Metric(kind="int", doc="size D of the latent code", minimum=1),
    "seed": Metric(kind="int", doc="the replicate's seed (initialisation, data order, binarization, noise)", minimum=0),
    "test.images": Metric(kind="int", doc="test images evaluated", unit="images", minimum=1),
    "test.recon_nll": Metric(
        kind="float", doc="-log p(x | z = mu) under the model's own likelihood, the reconstruction decoded at the "
        "posterior mean (the code for the AE)", unit=NATS,
    ),
    "test.recon_bce": Metric(
        kind="float", doc="binary cross-entropy of the reconstruction's pixel means at z = mu against the test image, "
        "summed over pixels (comparable across likelihoods)", unit=NATS, minimum=0,
    ),
    "test.recon_mse": Metric(
        kind="float", doc="squared error of the reconstruction's pixel means (image in [0, 1]) at z = mu, summed "
        "over pixels", unit="squared pixel error/image", minimum=0,
    ),
    "test.distortion": Metric(
        kind="float", doc="distortion D = E_q[-log p(x|z)], Monte Carlo over the iw_samples draws from q, on the "
        "first iw_images test images (Alemi et al. 2018)", unit=NATS, null_when_deterministic=True,
    ),
    "test.rate": Metric(
        kind="float", doc="rate R = KL(q(z|x) || N(0, I)), exact, averaged over the first iw_images test images; "
        "-ELBO = D + R",
        unit=NATS, null_when_deterministic=True, minimum=0,
    ),
    "test.neg_elbo": Metric(
        kind="float", doc="-ELBO with the model's own q: distortion + rate (the EM-AE's q was never trained for "
        "this, so a poor value is a finding)", unit=NATS, null_when_deterministic=True,
    ),
    "test.nll_iw": Metric(
        kind="float", doc="importance-weighted estimate of -log p(x) with iw_samples samples from q (Burda et al. "
        "2015), on the first iw_images test images: an upper bound on the NLL in expectation, tighter as "
        "iw_samples grows", unit=NATS,
        null_when_deterministic=True,
    ),
    "test.nll_iw_se": Metric(
        kind="float", doc="standard error of test.nll_iw as a mean over its iw_images images: the sample standard "
        "deviation of the per-image estimates / sqrt(iw_images); image-to-image spread and Monte-Carlo noise "
        "together (null for a single image)", unit=NATS, null_when_deterministic=True, nullable=True, minimum=0,
    ),
    "test.nll_iw_mc_se": Metric(
        kind="float", doc="Monte-Carlo standard error of test.nll_iw on these images: how far another iw_samples "
        "draws per image would move it; sqrt(sum of per-image delta-method variances (K sum w~^2 - 1) / (K - 1), "
        "w~ the normalised importance weights) / iw_images (null when iw_samples is 1)", unit=NATS,
        null_when_deterministic=True, nullable=True, minimum=0,
    ),
    "test.iw_samples": Metric(
        kind="int", doc="K, samples per image for distortion, neg_elbo and nll_iw (evaluate.iw_samples)",
        unit="samples", minimum=1,
    ),
    "test.iw_images": Metric(
        kind="int", doc="test images of distortion, rate, neg_elbo and nll_iw (evaluate.iw_images, at most all)",
        unit="images", minimum=1,
    ),
    "test.note": Metric(kind="str", doc="why some numbers are null (a deterministic code), else null", nullable=True),
    "latent.activity": Metric(
        kind="float_list", doc="per dimension, the variance over the test set of the posterior mean (the code for "
        "the AE): A_u (Burda et al. 2015); scales with the latent, so compare it within a model",
        unit="latent units squared", minimum=0,
    ),
    "latent.au_threshold": Metric(
        kind="float", doc="activity threshold for an active unit (evaluate.au_threshold; Burda et al.: 0.01)", minimum=0
    ),
    "latent.active_units": Metric(
        kind="int", doc="dimensions whose activity exceeds au_threshold", unit="dimensions", minimum=0
    ),
    "latent.kl_per_dim": Metric(
        kind="float_list", doc="per dimension, KL(q(z_u|x) || N(0, 1)) averaged over test images", unit=NATS,
        null_when_deterministic=True, minimum=0,
    ),
    "latent.usage": Metric(
        kind="float_list", doc="decoder usage per dimension: mean squared change of the decoded image (pixel means) "
        "when the dimension's code is replaced by another test image's, over evaluate.usage_images test images; "
        "scale-free (any rescaling of a dimension is absorbed by the decoder) and zero for an ignored dimension",
        unit="squared pixels/image", minimum=0,
    ),
    "latent.usage_share": Metric(
        kind="float_list", doc="usage / its sum over dimensions: how the decoder's use is split", unit="fraction",
        minimum=0, maximum=1,
    ),
    "latent.usage_threshold": Metric(
        kind="float", doc="share above which a dimension counts as used (evaluate.usage_threshold)", minimum=0
    ),
    "latent.used_units": Metric(
        kind="int", doc="dimensions whose usage share exceeds usage_threshold", unit="dimensions", minimum=0
    ),
    "latent.effective_dims": Metric(
        kind="float", doc="exp(entropy of usage_share): 1 when one dimension carries all use, D when all share it "
        "equally", unit="dimensions", minimum=0,
    ),
    "latent.knn_accuracy": Metric(
        kind="float", doc="test accuracy of a k-NN classifier (evaluate.knn_k neighbours, standardised means) "
        "fitted on the first 10 000 training means (as the probe): how well the latent keeps same-label images together",
        unit="fraction", minimum=0, maximum=1,
    ),
    "aggregate.mean_norm": Metric(
        kind="float", doc="||mean|| of the training split's posterior means (the aggregate posterior; 0 for N(0, I))",
        unit="latent units", minimum=0,
    ),
    "aggregate.covariance_error": Metric(
        kind="float", doc="||Cov - I||_F / ||I||_F of the training means (0 when they are spread like N(0, I))",
        minimum=0,
    ),
    "probe.method": Metric(
        kind="str", doc="the linear probe: logistic regression on the standardized posterior means of the first "
        "10 000 train-split images"
    ),
    "probe.accuracy": Metric(
        kind="float", doc="test accuracy of the probe on test-split posterior means", unit="fraction", minimum=0,
        maximum=1,
    ),
    **{key: metric for source, what in SAMPLE_SOURCES.items() for key, metric in _sample_metrics(source, what).items()},
    **{key: metric for source, what in SAMPLE_SOURCES.items()
       for key, metric in _sample_metrics(source, what, SECOND_JUDGE_SAMPLES).items()},
    "manifold.roughness": Metric(
        kind="float", doc="mean distance between neighbouring images of the decoded latent grid "
        "(figures.manifold_steps points over +-figures.manifold_range) / mean distance between random test-image "
        "pairs: small when the grid changes smoothly", null_unless_2d=True, minimum=0,
    ),
    "manifold.mean_confidence": Metric(
        kind="float", doc="the classifier's mean top-class probability over the decoded grid images",
        unit="probability", null_unless_2d=True, minimum=0, maximum=1,
    ),
    "manifold.corner_confidence": Metric(
        kind="float", doc="the same over the grid's four corner images (far from the prior's mass)",
        unit="probability", null_unless_2d=True, minimum=0, maximum=1,
    ),
    "interpolation.start_label": Metric(kind="int", doc="class of the path's first test image", minimum=0),
    "interpolation.end_label": Metric(kind="int", doc="class of the path's last test image", minimum=0),
    "interpolation.frame_labels": Metric(
        kind="int_list", doc="the classifier's label of each image decoded along the straight path between the two "
        "posterior means (figures.interpolation_steps frames)", minimum=0,
    ),
    "interpolation.classes_between": Metric(
        kind="int", doc="distinct classes other than the two ends among the frame labels", unit="classes", minimum=0,
    ),
    "convergence.epochs": Metric(kind="int", doc="epochs the model trained (rows of its history)", unit="epochs",
                                 minimum=1),
    "convergence.window": Metric(
        kind="int", doc="the last epochs the convergence test judges (convergence.window)", unit="epochs", minimum=2
    ),
    "convergence.tolerance_nats": Metric(
        kind="float", doc="the largest fall per epoch of the validation objective still counted flat "
        "(convergence.tolerance_nats)", unit="nats/image per epoch", minimum=0,
    ),
    "convergence.slope": Metric(
        kind="float", doc="least-squares slope of the validation objective (the variant's own loss; the -ELBO for "
        "the VAE) against the epoch over the window; null when fewer epochs than the window",
        unit="nats/image per epoch", nullable=True,
    ),
    "convergence.flat": Metric(kind="bool", doc="slope >= -tolerance_nats (the objective no longer improves)"),
    "convergence.used_stable": Metric(
        kind="bool", doc="the used set (validation decoder-usage share > evaluate.usage_threshold, on a fixed "
        "subset of validation images) is the same at every epoch of the window",
    ),
    "convergence.active_stable": Metric(
        kind="bool", doc="the active set (validation A_u > evaluate.au_threshold) is the same at every epoch of the "
        "window",
    ),
    "convergence.converged": Metric(
        kind="bool", doc="the model passes the convergence test: at least window epochs, flat, used and active "
        "sets stable; its other numbers describe a trained model, not one still moving",
    ),
    "convergence.reason": Metric(kind="str", doc="'passed', or why the test fails, in words"),
}

METRIC_DOCS: dict[str, str] = {
    key: f"{metric.doc}{f' [{metric.unit}]' if metric.unit else ''}" for key, metric in METRICS.items()
}


def lookup(payload: dict, key: str) -> Any:
    """The value at a dotted key: lookup(payload, "test.nll_iw") is payload["test"]["nll_iw"]."""
    value: Any = payload
    for part in key.split("."):
        value = value[part]
    return value


def check_metrics(payload: Any) -> None:
    """Raise MetricsError (naming the key) unless `payload` follows METRICS exactly."""
    if not isinstance(payload, dict):
        raise MetricsError(f"metrics: expected a mapping, got {type(payload).__name__}")
    _check_tree(payload, _key_tree(), prefix="")
    deterministic = payload["stochastic"] is False
    two_d = payload["latent_dim"] == 2
    for key, metric in METRICS.items():
        _check_value(key, metric, lookup(payload, key), deterministic=deterministic, two_d=two_d)
    _check_consistency(payload)


def _key_tree() -> dict:
    """METRICS' dotted keys as a nested dict of {name: subtree or None}, in METRICS order."""
    tree: dict = {}
    for key in METRICS:
        node = tree
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = None
    return tree


def _check_tree(mapping: Any, tree: dict, prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise MetricsError(f"{prefix.rstrip('.')}: expected a mapping, got {type(mapping).__name__}")
    missing = [k for k in tree if k not in mapping]
    if missing:
        raise MetricsError(f"{prefix}{missing[0]}: missing")
    unknown = sorted(set(mapping) - set(tree))
    if unknown:
        raise MetricsError(f"{prefix}{unknown[0]}: not a documented metric (see METRIC_DOCS)")
    for name, subtree in tree.items():
        if subtree is not None:
            _check_tree(mapping[name], subtree, prefix=f"{prefix}{name}.")


def _check_value(key: str, metric: Metric, value: Any, *, deterministic: bool, two_d: bool) -> None:
    for condition, flag, why in (
        (deterministic, metric.null_when_deterministic, "for a deterministic code"),
        (not two_d, metric.null_unless_2d, "unless the latent is 2-D"),
    ):
        if flag and condition:
            if value is not None:
                raise MetricsError(f"{key}: must be null {why}, got {value!r}")
            return
    if value is None:
        if metric.nullable:
            return
        raise MetricsError(f"{key}: must not be null")
    is_list = metric.kind.endswith("_list")
    if is_list and (not isinstance(value, list) or not value):
        raise MetricsError(f"{key}: expected a non-empty list, got {value!r}")
    base = metric.kind.removesuffix("_list")
    for item in value if is_list else [value]:
        _check_scalar(key, base, item, metric)


def _check_scalar(key: str, kind: str, value: Any, metric: Metric) -> None:
    if kind == "str":
        if not isinstance(value, str) or not value:
            raise MetricsError(f"{key}: expected a non-empty string, got {value!r}")
        return
    if kind == "bool":
        if not isinstance(value, bool):
            raise MetricsError(f"{key}: expected true or false, got {value!r}")
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
    if payload["stochastic"] is False and not (payload["test"]["note"] or "").strip():
        raise MetricsError("test.note: a deterministic model needs a note saying why its likelihoods are null")
    dims = payload["latent_dim"]
    latent = payload["latent"]
    for name in ("activity", "kl_per_dim", "usage", "usage_share"):
        if latent[name] is not None and len(latent[name]) != dims:
            raise MetricsError(f"latent.{name}: expected {dims} values (latent_dim), got {len(latent[name])}")
    for name in ("active_units", "used_units"):
        if latent[name] > dims:
            raise MetricsError(f"latent.{name}: {latent[name]} exceeds latent_dim {dims}")
    test = payload["convergence"]
    if test["converged"] != (test["epochs"] >= test["window"] and test["flat"] and test["used_stable"]
                             and test["active_stable"]):
        raise MetricsError("convergence.converged: disagrees with epochs, window, flat and the stable sets")
    for section in SAMPLE_SECTIONS:
        for source in SAMPLE_SOURCES:
            samples, prefix = payload[section][source], f"{section}.{source}"
            histogram = samples["class_histogram"]
            if len(histogram) != CLASSES:
                raise MetricsError(f"{prefix}.class_histogram: expected {CLASSES} counts, got {len(histogram)}")
            if sum(histogram) != samples["count"]:
                raise MetricsError(f"{prefix}.class_histogram: counts sum to {sum(histogram)}, "
                                   f"not {prefix}.count {samples['count']}")
    for source in SAMPLE_SOURCES:  # the two judges judge the same images
        counts = {section: payload[section][source]["count"] for section in SAMPLE_SECTIONS}
        if len(set(counts.values())) != 1:
            raise MetricsError(f"{SECOND_JUDGE_SAMPLES}.{source}.count: {counts[SECOND_JUDGE_SAMPLES]}, not "
                               f"samples.{source}.count {counts['samples']} (both judges judge the same samples)")


def metric_scalars(payload: dict) -> dict[str, float]:
    """The numeric scalars as flat dotted names (what MLflow logs as metrics); nulls are left out."""
    return {
        key: float(lookup(payload, key))
        for key, metric in METRICS.items()
        if metric.kind in ("int", "float") and lookup(payload, key) is not None
    }


def metric_series(payload: dict) -> dict[str, list[float]]:
    """The per-dimension and per-class lists (MLflow logs each as one metric stepped by index)."""
    return {
        key: [float(v) for v in lookup(payload, key)]
        for key, metric in METRICS.items()
        if metric.kind.endswith("_list") and lookup(payload, key) is not None
    }
