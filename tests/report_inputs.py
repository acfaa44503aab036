"""Synthetic inputs for the reporting tests: metrics that pass `check_metrics`, and the results the report reads.

`metrics_payload` builds one replicate's metrics file from a plain, valid
default with chosen dotted keys replaced (`{"test.nll_iw": 91.0}`), and checks
it against the evaluation's schema, so a test cannot feed the report a file
the evaluate stage could never write. `model` builds a `ModelResults` with
per-seed values, activities and histories; `write_model` puts one on disk at
the layout's paths (metrics JSON, history CSV, latent npz, small PNGs for the
per-model figures), as the earlier stages leave them for the report stage.
Tests import what they need: `from report_inputs import model, ...`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from aebench.common.layout import ModelKey
from aebench.evaluation.metrics import SAMPLE_SOURCES, SECOND_JUDGE_SAMPLES, check_metrics
from aebench.reporting.results import LatentArrays, ModelResults, ReplicateResult
from aebench.training.history import ACTIVITY_PREFIX, USAGE_PREFIX

SAMPLES = 300  # samples judged per source
UNIFORM = [SAMPLES // 10] * 10  # a class histogram with every class equally often
INTERPOLATION_FRAMES = 10
MU_IMAGES = 40  # posterior means stored per replicate
DETERMINISTIC_NOTE = "a deterministic code defines no density"


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"test.rate": 1} -> {"test": {"rate": 1}}: metrics files are nested by the parts of the dotted keys."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return tree


def histogram_values(source: str, histogram: Sequence[int]) -> dict[str, Any]:
    """The sample metrics a class histogram decides, as the evaluation computes them: count, entropy, top share."""
    from aebench.evaluation.geometry import normalised_class_entropy, top_class_share

    prefix = f"samples.{source}"
    return {
        f"{prefix}.count": int(sum(histogram)),
        f"{prefix}.class_histogram": [int(c) for c in histogram],
        f"{prefix}.class_entropy": normalised_class_entropy(histogram),
        f"{prefix}.top_class_share": top_class_share(histogram),
    }


def default_activity(latent_dim: int) -> np.ndarray:
    """(D,) activities 1, 1/2, 1/3...: every dimension active at 0.01 up to D = 100."""
    return 1.0 / np.arange(1, latent_dim + 1)


def metrics_payload(key: ModelKey, seed: int, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One replicate's metrics file, with `values` (dotted keys) replacing the defaults; checked by `check_metrics`."""
    dims, stochastic, two_d = key.latent_dim, key.variant != "ae", key.latent_dim == 2
    activity = default_activity(dims)
    flat: dict[str, Any] = {
        "dataset": key.dataset, "variant": key.variant, "objective": "kl_split" if stochastic else "deterministic",
        "stochastic": stochastic, "latent_dim": dims, "seed": seed,
        "test.images": 600, "test.recon_nll": 100.0, "test.recon_bce": 100.0, "test.recon_mse": 20.0,
        "test.distortion": 95.0 if stochastic else None, "test.rate": 10.0 if stochastic else None,
        "test.neg_elbo": 105.0 if stochastic else None, "test.nll_iw": 102.0 if stochastic else None,
        "test.nll_iw_se": 0.5 if stochastic else None, "test.nll_iw_mc_se": 0.01 if stochastic else None,
        "test.iw_samples": 8, "test.iw_images": 100, "test.note": None if stochastic else DETERMINISTIC_NOTE,
        "latent.activity": activity.tolist(), "latent.au_threshold": 0.01,
        "latent.active_units": int(np.count_nonzero(activity > 0.01)),
        "latent.kl_per_dim": [1.0] * dims if stochastic else None,
        "latent.usage": [0.5] * dims, "latent.usage_share": [1.0 / dims] * dims, "latent.usage_threshold": 0.01,
        "latent.used_units": dims, "latent.effective_dims": float(dims), "latent.knn_accuracy": 0.5,
        "aggregate.mean_norm": 0.1, "aggregate.covariance_error": 0.2,
        "probe.method": "logistic regression", "probe.accuracy": 0.5,
        "manifold.roughness": 0.2 if two_d else None, "manifold.mean_confidence": 0.8 if two_d else None,
        "manifold.corner_confidence": 0.7 if two_d else None,
        "interpolation.start_label": 0, "interpolation.end_label": 7,
        "interpolation.frame_labels": [0] * (INTERPOLATION_FRAMES // 2) + [7] * (INTERPOLATION_FRAMES // 2),
        "interpolation.classes_between": 0,
        "convergence.epochs": 3, "convergence.window": 2, "convergence.tolerance_nats": 0.1,
        "convergence.slope": -0.05, "convergence.flat": True, "convergence.used_stable": True,
        "convergence.active_stable": True, "convergence.converged": True, "convergence.reason": "passed",
    }
    for source in SAMPLE_SOURCES:
        flat |= histogram_values(source, UNIFORM)
        flat |= {f"samples.{source}.mean_confidence": 0.8, f"samples.{source}.frechet_distance": 10.0,
                 f"samples.{source}.precision": 0.5, f"samples.{source}.recall": 0.5,
                 f"samples.{source}.confident_share": 0.6, f"samples.{source}.density": 0.9,
                 f"samples.{source}.coverage": 0.5}
    # The second judge's section: the same defaults, set apart by `values` where a test needs it.
    flat |= {f"{SECOND_JUDGE_SAMPLES}.{key.removeprefix('samples.')}": value for key, value in flat.items()
             if key.startswith("samples.")}
    for source in SAMPLE_SOURCES:  # the two judges' agreement: once, in the judge's section
        flat[f"samples.{source}.agreed_share"] = 0.5
    unknown = sorted(set(values or {}) - set(flat))
    if unknown:
        raise KeyError(f"not a metrics key: {unknown[0]}")
    flat |= dict(values or {})
    payload = nest(flat)
    check_metrics(payload)
    return payload


def history(latent_dim: int, *, train: Sequence[float] = (300.0, 200.0, 150.0),
            val: Sequence[float] | None = None, activity: Sequence[Sequence[float]] | None = None) -> pd.DataFrame:
    """A per-epoch history as `read_history` returns it: epoch, train/val loss and recon, validation A_u and usage."""
    val = [v * 1.02 for v in train] if val is None else val
    epochs = len(train)
    frame = pd.DataFrame({
        "epoch": np.arange(1, epochs + 1), "train_loss": np.asarray(train, dtype=np.float64),
        "train_recon": np.asarray(train, dtype=np.float64), "val_loss": np.asarray(val, dtype=np.float64),
        "val_recon": np.asarray(val, dtype=np.float64),
    })
    rows = activity if activity is not None else [default_activity(latent_dim)] * epochs
    for unit in range(latent_dim):
        frame[f"{ACTIVITY_PREFIX}{unit:03d}"] = [float(row[unit]) for row in rows]
    for unit in range(latent_dim):  # the decoder's usage follows the activity
        frame[f"{USAGE_PREFIX}{unit:03d}"] = [float(row[unit]) for row in rows]
    return frame


def replicate_result(key: ModelKey, seed: int, values: Mapping[str, Any] | None = None, *,
                     activity: Sequence[float] | None = None, history_frame: pd.DataFrame | None = None,
                     mu: np.ndarray | None = None, labels: np.ndarray | None = None) -> ReplicateResult:
    """One seed of a model; `activity` (D,) sets both the metrics' `latent.activity` and the latent arrays'."""
    values = dict(values or {})
    if activity is not None:
        activity = np.asarray(activity, dtype=np.float64)
        values.setdefault("latent.activity", activity.tolist())
        values.setdefault("latent.active_units", int(np.count_nonzero(activity > 0.01)))
    metrics = metrics_payload(key, seed, values)
    activity = np.asarray(metrics["latent"]["activity"], dtype=np.float64)
    rng = np.random.default_rng([seed, key.latent_dim])
    if mu is None:
        mu = rng.normal(size=(MU_IMAGES, key.latent_dim)) * np.sqrt(activity)  # (N, D): variance ~ A_u
    if labels is None:
        labels = np.arange(len(mu)) % 10
    latent = LatentArrays(mu=np.asarray(mu, dtype=np.float64), labels=np.asarray(labels, dtype=np.int64),
                          activity=activity)
    frame = history(key.latent_dim) if history_frame is None else history_frame
    return ReplicateResult(replicate=key.replicate(seed), metrics=metrics, history=frame, latent=latent)


def model(dataset: str, variant: str, latent_dim: int, seeds: Sequence[int] = (0, 1, 2), *,
          per_seed: Mapping[str, Sequence[Any]] | None = None, activities: Sequence[Sequence[float]] | None = None,
          histories: Sequence[pd.DataFrame] | None = None) -> ModelResults:
    """A model with one replicate per seed; `per_seed` maps a dotted metrics key to its value at each seed."""
    key = ModelKey(dataset, variant, latent_dim)
    per_seed = per_seed or {}
    for name, values in per_seed.items():
        if len(values) != len(seeds):
            raise ValueError(f"{name}: {len(values)} values for {len(seeds)} seeds")
    replicates = [
        replicate_result(
            key, seed, {name: values[i] for name, values in per_seed.items()},
            activity=None if activities is None else activities[i],
            history_frame=None if histories is None else histories[i],
        )
        for i, seed in enumerate(seeds)
    ]
    return ModelResults(key=key, replicates=replicates)


# --- on disk, at the layout's paths ------------------------------------------------------------


def png_bytes(width: int = 12, height: int = 8, shade: int = 0) -> bytes:
    """A small grey PNG (the report embeds per-model figures; it does not draw them)."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width), shade, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_model(results: ModelResults, root: Path) -> None:
    """Each replicate's metrics JSON, history CSV and latent npz under root/{metrics,history,latent}; the
    first seed's per-model figures as small PNGs under root/reports/figures."""
    from aebench.reporting.figures import figure_path, figures_for

    for replicate in results.replicates:
        metrics_path = replicate.replicate.path(root / "metrics", ".json")
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(replicate.metrics))
        history_path = replicate.replicate.path(root / "history", ".csv")
        history_path.parent.mkdir(parents=True, exist_ok=True)
        replicate.history.to_csv(history_path, index=False)
        latent_path = replicate.replicate.path(root / "latent", ".npz")
        latent_path.parent.mkdir(parents=True, exist_ok=True)
        latent = replicate.latent
        np.savez(latent_path, mu=latent.mu.astype(np.float32), labels=latent.labels, activity=latent.activity)
    for index, figure in enumerate(figures_for(results.key)):
        path = figure_path(root / "reports" / "figures", results.key, figure)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(12 + index, 8, shade=20 * index))


def data_info(dataset: str) -> dict[str, Any]:
    """A prepare stage's data-info JSON: checksums, split sizes, label counts."""
    files = {
        name: {"bytes": 1000 + i, "md5": f"{i:032x}", "sha256": f"{i:064x}"}
        for i, name in enumerate(["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"])
    }
    return {"dataset": dataset, "files": files, "splits": {"train": 600, "val": 600, "test": 600},
            "label_counts": {split: [60] * 10 for split in ("train", "val", "test")}, "split_seed": 0,
            "subset": 600}


def ladder(passes: Mapping[str, bool]) -> dict[str, Any]:
    """A sample-metric validation: a metric that fails ranks the patchwork above the blurred images."""
    validation = {}
    for name, passed in passes.items():
        patchwork = 0.3 if passed else 0.15
        validation[name] = {
            "values": {"real": 0.1, "blur": 0.2, "patchwork": patchwork, "salt_and_pepper": 0.25, "shuffled": 0.4,
                       "binarized": 0.15, "binarized_patchwork": 0.35},
            "higher_is_better": False, "misordered": [] if passed else [["blur", "patchwork"]], "passes": passed,
        }
    return validation


def classifier_metrics(dataset: str, passes: Mapping[str, bool], *, real_confidence: float = 0.95,
                       second_passes: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """The classifier stage's metrics: accuracy, confidence on real images, the ladder in both judges."""
    second = {"architecture": "mlp", "test_accuracy": 0.97, "real_mean_confidence": 0.9,
              "sample_metric_validation": ladder(passes if second_passes is None else second_passes)}
    return {"dataset": dataset, "architecture": "cnn", "test_accuracy": 0.9876, "real_mean_confidence": real_confidence,
            "sample_metric_validation": ladder(passes), "test_images": 600, "train_images": 600, "epochs": 1,
            "second_judge": second}
