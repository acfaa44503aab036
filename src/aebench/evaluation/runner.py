"""Evaluate one trained model: every number of the metrics file, and the latent arrays for the figures.

The test targets follow the model's training: with `data.binarize: dynamic`
the test (and, for the probe, train) images are binarized once with the
study's seed, so every model is scored on the same binary images and the
likelihoods compare with the literature; otherwise they stay grey-level. The
encoder sees the same images it is scored on. The sample classifier judges
decoded prior samples against the real grey-level test images it was trained
to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from aebench.common.config import EvaluateParams
from aebench.data import PreparedData, fixed_targets
from aebench.evaluation.classifier import SampleClassifier
from aebench.evaluation.latent import active_units, activity, kl_per_dim
from aebench.evaluation.likelihood import estimate_likelihood, pixel_log_likelihood
from aebench.evaluation.metrics import AE_NOTE, check_metrics
from aebench.evaluation.probe import linear_probe
from aebench.evaluation.reconstruction import posterior_means, posterior_pass
from aebench.evaluation.sample_quality import prior_samples, sample_quality

ENCODE_BATCH = 1000  # images per deterministic encoder/decoder pass: a few MB, fast on CPU and GPU


@dataclass(frozen=True)
class Evaluation:
    metrics: dict  # follows aebench.evaluation.metrics.METRICS
    latent_mu: np.ndarray  # float32 (latent_images, D): posterior means of the first test images
    latent_labels: np.ndarray  # int64 (latent_images,)
    activity: np.ndarray  # float64 (D,) over the whole test set


def evaluate_model(
    model,
    data: PreparedData,
    classifier: SampleClassifier,
    settings: EvaluateParams,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
) -> Evaluation:
    """All metrics of `model` (on `device`, eval mode) on the test split of `data`."""
    started = time.perf_counter()
    device = torch.device(device)
    config = model.config
    likelihood = model.likelihood
    binarize = config["data"]["binarize"]

    test_images, test_labels = data.split("test")
    targets = fixed_targets(test_images, binarize, seed=seed)  # (N, 1, 28, 28)
    posterior = posterior_pass(model, targets, likelihood=likelihood, batch_size=ENCODE_BATCH, device=device)
    activities = activity(posterior.mu)
    stochastic = posterior.logvar is not None

    neg_elbo = nll_iw = kl_total = kl_dims = None
    if stochastic:
        iw_started = time.perf_counter()
        estimates = estimate_likelihood(
            model,
            targets,
            log_likelihood=pixel_log_likelihood(likelihood, model.gaussian_std),
            samples=settings.iw_samples,
            batch_images=settings.iw_batch_images,
            max_rows=settings.iw_max_rows,
            generator=torch.Generator(device=device).manual_seed(seed),
            device=device,
        )
        neg_elbo, nll_iw = float(estimates.neg_elbo.mean()), float(estimates.nll_iw.mean())
        kl_dims = kl_per_dim(posterior.mu, posterior.logvar)
        kl_total = float(kl_dims.sum())
        log(f"IW estimate: K={settings.iw_samples} over {len(targets)} images in {time.perf_counter() - iw_started:.1f}s")

    train_images, train_labels = data.split("train")
    train_means = posterior_means(
        model, fixed_targets(train_images, binarize, seed=seed), batch_size=ENCODE_BATCH, device=device
    )
    probe = linear_probe(train_means.numpy(), train_labels.numpy(), posterior.mu.numpy(), test_labels.numpy())

    samples = prior_samples(
        model,
        settings.sample_count,
        likelihood=likelihood,
        generator=torch.Generator(device=device).manual_seed(seed),
        batch_size=ENCODE_BATCH,
        device=device,
    )
    quality = sample_quality(classifier, samples, test_images, device=device)

    metrics = {
        "dataset": config["dataset"],
        "model": model.kind,
        "latent_dim": model.latent_dim,
        "mlflow_run_id": model.mlflow_run_id,
        "test": {
            "images": len(targets),
            "recon_bce": float(posterior.recon_bce.mean()),
            "recon_mse": float(posterior.recon_mse.mean()),
            "neg_elbo": neg_elbo,
            "nll_iw": nll_iw,
            "iw_samples": settings.iw_samples,
            "note": None if stochastic else AE_NOTE,
        },
        "latent": {
            "active_units": active_units(activities, settings.au_threshold),
            "au_threshold": settings.au_threshold,
            "kl_total": kl_total,
            "activity": [float(a) for a in activities],
            "kl_per_dim": None if kl_dims is None else [float(k) for k in kl_dims],
        },
        "probe": {"method": probe.method, "accuracy": probe.accuracy},
        "samples": {
            "count": quality.count,
            "class_histogram": quality.class_histogram,
            "class_entropy": quality.class_entropy,
            "mean_confidence": quality.mean_confidence,
            "frechet_distance": quality.frechet_distance,
        },
        "timing": {"seconds": time.perf_counter() - started},
    }
    check_metrics(metrics)
    keep = min(settings.latent_images, len(targets))
    return Evaluation(
        metrics=metrics,
        latent_mu=posterior.mu[:keep].numpy().astype(np.float32),
        latent_labels=test_labels[:keep].numpy().astype(np.int64),
        activity=activities,
    )
