"""Evaluate one trained replicate: every number of its metrics file, and its latent arrays.

The test targets follow the model's training: with `data.binarize: dynamic`
the test (and, for the probe, train) images are binarized once with the
replicate's seed, so every variant of that seed is scored on the same binary
images and the likelihoods compare with the literature; otherwise they stay
grey-level. The encoder sees the same images it is scored on. The sample
classifier judges decoded images against the real grey-level test images it
was trained to read, and so does the second judge (`samples_mlp_judge`): the
same images in another embedding, because the validation ladder trusts some
metrics only there.

Asked for them (the first seed of a model, whose figures are drawn), it also
decodes the figures' pixels (`aebench.evaluation.figure_pixels`), from the
same test images and ex-post codes.

Every random draw comes from a generator seeded from the replicate's seed
(`aebench.common.runtime.generator`), so a rerun gives the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from aebench.common.config import EvaluateParams, FigureParams
from aebench.common.errors import ConfigError
from aebench.common.runtime import derived_seed, generator
from aebench.data.binarize import fixed_targets
from aebench.data.prepared import PreparedData
from aebench.evaluation.classifier import SampleClassifier, classify
from aebench.evaluation.convergence import Convergence
from aebench.evaluation.expost import fit_expost
from aebench.evaluation.figure_pixels import figure_pixels
from aebench.evaluation.geometry import (
    aggregate_posterior_moments,
    grid_roughness,
    interpolation_classes,
    interpolation_ends,
    interpolation_path,
    knn_accuracy,
    manifold_grid,
)
from aebench.evaluation.activity import active_units, activity
from aebench.evaluation.latent import kl_per_dim
from aebench.evaluation.likelihood import estimate_likelihood
from aebench.evaluation.metrics import DETERMINISTIC_NOTE, SAMPLE_SOURCES, SECOND_JUDGE_SAMPLES, check_metrics
from aebench.evaluation.probe import linear_probe
from aebench.evaluation.reconstruction import decoded_images, posterior_means, posterior_pass
from aebench.evaluation.sample_quality import Reference, check_precision_recall_k, judge_samples, prior_codes
from aebench.evaluation.usage import decoder_usage
from aebench.evaluation.usage_split import effective_dimensions, usage_shares, used_units

ENCODE_BATCH = 1000  # images per deterministic encoder/decoder pass: a few MB, fast on CPU and GPU
EXPOST_FIT_IMAGES = 5_000  # training means a density is fitted on: EM on all 55 000 x 30 takes ~10x longer
# Training means the linear probe and the k-NN classifier learn from: on all 55 000, L-BFGS costs ~5x
# more for < 1 point, and the k-NN search ~5x more (2.4 s of a 2-core study's ~18 s evaluation per model).
PROBE_TRAIN_IMAGES = 10_000
FIGURE_SAMPLES = 64  # ex-post codes kept in the latent arrays; the figure pixels decode the first samples_grid^2


@dataclass(frozen=True)
class Evaluation:
    metrics: dict  # follows aebench.evaluation.metrics.METRICS
    latent: dict[str, np.ndarray]  # the latent .npz: mu, labels, activity, expost codes for the figures
    figure_pixels: dict[str, np.ndarray] | None = None  # what the figures draw, when asked for


def check_settings_fit_data(settings: EvaluateParams, data: PreparedData) -> None:
    """Settings larger than the data they count in: a ConfigError naming the key, before any work.

    (sklearn would otherwise refuse them after the likelihood estimate, in a traceback.)
    """
    train, test = len(data.labels["train"]), len(data.labels["test"])
    fitted = min(PROBE_TRAIN_IMAGES, train)
    if settings.knn_k > fitted:
        raise ConfigError(f"evaluate.knn_k: must be <= {fitted}, the training means the k-NN classifier is "
                          f"fitted on, got {settings.knn_k}")
    codes = min(EXPOST_FIT_IMAGES, train)
    if settings.expost_components > codes:
        raise ConfigError(f"evaluate.expost_components: must be <= {codes}, the training means the ex-post "
                          f"mixture is fitted on, got {settings.expost_components}")
    check_precision_recall_k(settings.precision_recall_k, precision_recall_images=settings.precision_recall_images,
                             sample_count=settings.sample_count, test_images=test)


def evaluate_replicate(
    model,
    data: PreparedData,
    classifier: SampleClassifier,
    real: Reference,
    settings: EvaluateParams,
    figures: FigureParams,
    *,
    second_judge: tuple[SampleClassifier, Reference],
    convergence: Convergence,
    device: torch.device | str = "cpu",
    with_figure_pixels: bool = False,
    log: Callable[[str], None] = print,
) -> Evaluation:
    """All metrics of `model` (on `device`, eval mode) on the test split of `data`, and its `convergence`
    test (`aebench.evaluation.convergence`, read from its training history). `classifier` and `real` judge
    the samples (`samples`), `second_judge` (the second classifier and its reference) judges the same
    images again (`samples_mlp_judge`). `with_figure_pixels`: decode the figures' pixels too."""
    device = torch.device(device)
    config = model.config
    seed, binarize = config["seed"], config["data"]["binarize"]

    test_images, test_labels = data.split("test")
    targets = fixed_targets(test_images, binarize, seed=seed, split="test")  # (N, 1, 28, 28)
    posterior = posterior_pass(model, targets, batch_size=ENCODE_BATCH, device=device)
    activities = activity(posterior.mu)

    test = {
        "images": len(targets),
        "recon_nll": float(posterior.recon_nll.mean()),
        "recon_bce": float(posterior.recon_bce.mean()),
        "recon_mse": float(posterior.recon_mse.mean()),
        "distortion": None, "rate": None, "neg_elbo": None, "nll_iw": None, "nll_iw_se": None, "nll_iw_mc_se": None,
        "iw_samples": settings.iw_samples,
        "iw_images": min(settings.iw_images, len(targets)),
        "note": None if model.stochastic else DETERMINISTIC_NOTE,
    }
    kl_dims = None
    if model.stochastic:
        estimates = estimate_likelihood(
            model, targets[: settings.iw_images], samples=settings.iw_samples, batch_images=settings.iw_batch_images,
            max_rows=settings.iw_max_rows, generator=generator(seed, "importance-sampling", device), device=device,
        )
        kl_dims = kl_per_dim(posterior.mu, posterior.logvar)
        test.update(
            distortion=float(estimates.expected_nll.mean()), rate=float(estimates.kl.mean()),
            neg_elbo=float(estimates.neg_elbo.mean()), nll_iw=float(estimates.nll_iw.mean()),
            nll_iw_se=estimates.nll_iw_se(), nll_iw_mc_se=estimates.nll_iw_mc_se(),
        )
        log(f"IW estimate: K={settings.iw_samples} over {test['iw_images']} images")

    train_images, train_labels = data.split("train")
    train_means = posterior_means(
        model, fixed_targets(train_images, binarize, seed=seed, split="train"), batch_size=ENCODE_BATCH, device=device
    )
    probe = linear_probe(train_means[:PROBE_TRAIN_IMAGES].numpy(), train_labels[:PROBE_TRAIN_IMAGES].numpy(),
                         posterior.mu.numpy(), test_labels.numpy())
    usage_codes = posterior.mu[: settings.usage_images]
    usage = decoder_usage(lambda z: model.decode_images(z.to(device)).cpu(), usage_codes,
                          generator=generator(seed, "usage"))
    shares = usage_shares(usage)
    moments = aggregate_posterior_moments(train_means.numpy())

    samples, second_samples, expost_codes = {}, {}, {}
    fit_codes = train_means[:EXPOST_FIT_IMAGES].numpy()
    for source in SAMPLE_SOURCES:
        if source == "prior":
            codes = prior_codes(settings.sample_count, model.latent_dim, generator=generator(seed, "prior-samples", device))
        else:
            density = fit_expost(fit_codes, kind=source, components=settings.expost_components,
                                 seed=derived_seed(seed, f"expost-fit-{source}"))
            codes = torch.from_numpy(density.sample(settings.sample_count, seed=derived_seed(seed, f"expost-{source}")))
            expost_codes[f"expost_{source}"] = codes[:FIGURE_SAMPLES].numpy().astype(np.float32)
        images = decoded_images(model, codes, device=device)
        # The judge's section also holds the two judges' agreement (`agreed_share`), as the ladder has it.
        for judged, (judge, judge_real), partner in ((samples, (classifier, real), second_judge[0]),
                                                     (second_samples, second_judge, None)):
            judged[source] = judge_samples(
                judge, images, judge_real, precision_recall_k=settings.precision_recall_k,
                precision_recall_images=settings.precision_recall_images,
                density_coverage_k=settings.density_coverage_k, partner=partner, device=device,
            )

    metrics = {
        "dataset": config["dataset"],
        "variant": model.variant,
        "objective": config["variant"]["objective"],
        "stochastic": model.stochastic,
        "latent_dim": model.latent_dim,
        "seed": seed,
        "test": test,
        "latent": {
            "activity": [float(a) for a in activities],
            "au_threshold": settings.au_threshold,
            "active_units": active_units(activities, settings.au_threshold),
            "kl_per_dim": None if kl_dims is None else [float(k) for k in kl_dims],
            "usage": [float(u) for u in usage],
            "usage_share": [float(s) for s in shares],
            "usage_threshold": settings.usage_threshold,
            "used_units": used_units(shares, threshold=settings.usage_threshold),
            "effective_dims": effective_dimensions(shares),
            "knn_accuracy": knn_accuracy(train_means[:PROBE_TRAIN_IMAGES].numpy(),
                                         train_labels[:PROBE_TRAIN_IMAGES].numpy(), posterior.mu.numpy(),
                                         test_labels.numpy(), k=settings.knn_k),
        },
        "aggregate": {"mean_norm": moments.mean_norm, "covariance_error": moments.covariance_error},
        "probe": {"method": probe.method, "accuracy": probe.accuracy},
        "samples": samples,
        SECOND_JUDGE_SAMPLES: second_samples,
        "manifold": manifold_metrics(model, classifier, test_images, figures, seed=seed, device=device),
        "interpolation": interpolation_metrics(model, classifier, targets, test_labels, figures, device=device),
        "convergence": convergence.to_metrics(),
    }
    check_metrics(metrics)
    keep = min(settings.latent_images, len(targets))
    latent = {
        "mu": posterior.mu[:keep].numpy().astype(np.float32),
        "labels": test_labels[:keep].numpy().astype(np.int64),
        "activity": activities,
        **expost_codes,
    }
    pixels = (figure_pixels(model, targets, test_labels, figures, expost_codes, seed=seed, device=device)
              if with_figure_pixels else None)
    return Evaluation(metrics=metrics, latent=latent, figure_pixels=pixels)


def manifold_metrics(model, classifier, test_images, figures: FigureParams, *, seed: int, device) -> dict:
    """For a 2-D latent: how smoothly the decoded grid changes, and how digit-like its images are."""
    nothing = {"roughness": None, "mean_confidence": None, "corner_confidence": None}
    if model.latent_dim != 2:
        return nothing
    steps, extent = figures.manifold_steps, figures.manifold_range
    grid = manifold_grid(steps, extent)  # (steps^2, 2), row-major from the top left
    images = decoded_images(model, grid, device=device)  # (steps^2, 1, 28, 28)
    probabilities, _ = classify(classifier, images, device=device)
    confidence = probabilities.max(-1).values.double()
    corners = [0, steps - 1, steps * (steps - 1), steps * steps - 1]
    roughness = grid_roughness(images[:, 0].numpy(), test_images[:, 0].numpy(),
                               generator=generator(seed, "manifold-pairs"))
    return {"roughness": roughness, "mean_confidence": float(confidence.mean()),
            "corner_confidence": float(confidence[corners].mean())}


def interpolation_metrics(model, classifier, targets, labels, figures: FigureParams, *, device) -> dict:
    start, end = interpolation_ends(labels)
    path = interpolation_path(model, targets[[start, end]], figures.interpolation_steps, device=device)
    probabilities, _ = classify(classifier, decoded_images(model, path, device=device), device=device)
    frames = probabilities.argmax(-1).numpy()
    start_label, end_label = int(labels[start]), int(labels[end])
    return {
        "start_label": start_label,
        "end_label": end_label,
        "frame_labels": [int(label) for label in frames],
        "classes_between": interpolation_classes(frames, start_label=start_label, end_label=end_label),
    }
