"""The claims ledger: what the source articles say about their results, as measurable statements.

Each `Claim` names its article (by short name, also its profile's name),
quotes what the article says, states the metric and threshold that decide it,
and evaluates it on a `Setup`: the default study's models, or the article's
own profile's. Verdicts: "holds" (every seed satisfies the threshold, or the
paired 95% t-interval excludes zero in the claimed direction), "does not hold"
(no seed does, or the interval excludes zero the other way), "inconclusive"
(seeds disagree, the interval contains zero, or a single seed), "not
measured" (the setup lacks the models). `assess` adds n (the fewest seeds of
the models read), "provisional" (one of them failed its convergence test: the
verdict may still move, and decides nothing) and, for a claim that is not
decisive, the seeds its spread needs (`statistics.seeds_needed`, up to
`claims.max_seeds`). Every number is read from the metrics and history files;
nothing here is typed from a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from aebench.evaluation.activity import activity_split
from aebench.reporting.labels import class_names, model_label
from aebench.reporting.results import ModelResults
from aebench.reporting.statistics import paired_difference, seeds_needed, summarize

HOLDS, FAILS, INCONCLUSIVE, NOT_MEASURED = "holds", "does not hold", "inconclusive", "not measured"
PROVISIONAL = "provisional"
# The paired differences each interval-decided part of the claim being assessed compared (see `assess`).
_DIFFERENCES: ContextVar[list[list[float]] | None] = ContextVar("claim_differences", default=None)


@dataclass(frozen=True)
class Setup:
    """One setup's models, and where its figures are (for the ledger's links)."""

    name: str  # "default study", or a profile's name
    results: list[ModelResults]
    figures: Path  # per-model figures root: <figures>/<dataset>/<variant>/latent-<D>/<name>.png
    compare: Path  # comparison figures: <compare>/<dataset>-<name>.png
    binarize: str  # the setup's data.binarize: "dynamic" (binary pixels) or "none" (grey levels)
    read: list[ModelResults] = field(default_factory=list, compare=False, repr=False)  # what `model` gave out

    def model(self, dataset: str, variant: str, size: str | int = "largest") -> ModelResults | None:
        """The model of this dataset and variant at the smallest, largest or a given latent size."""
        candidates = [r for r in self.results if r.key.dataset == dataset and r.key.variant == variant]
        if size in ("smallest", "largest"):
            found = (min if size == "smallest" else max)(candidates, key=lambda r: r.key.latent_dim, default=None)
        else:
            found = next((r for r in candidates if r.key.latent_dim == size), None)
        if found is not None:
            self.read.append(found)
        return found

    def model_figure(self, results: ModelResults, name: str) -> Path:
        from aebench.reporting.figures import figure_named, figure_path

        return figure_path(self.figures, results.key, figure_named(name))

    def compare_figure(self, dataset: str, name: str) -> Path:
        return self.compare / f"{dataset}-{name}.png"


@dataclass(frozen=True)
class Outcome:
    verdict: str
    numbers: str
    figure: Path | None = None


@dataclass(frozen=True)
class Claim:
    name: str
    article: str  # the source article's short name, which is also its profile's name
    says: str  # the article's claim, in words
    measure: str  # the measurable statement: metric and threshold
    evaluate: Callable[[Setup], Outcome] = field(repr=False)


@dataclass(frozen=True)
class Assessment:
    """A claim's outcome on a setup with what the ledger states beside it."""

    outcome: Outcome
    n: int | None  # seeds of the models the claim read (the fewest); None when it read none
    unconverged: tuple[str, ...]  # "VAE-30 seed 1": the models it read that failed the convergence test
    seeds_needed: str  # the seed rule's answer for a claim that is not decisive; "" when it is

    @property
    def provisional(self) -> bool:
        return bool(self.unconverged) and self.outcome.verdict != NOT_MEASURED

    @property
    def verdict(self) -> str:
        """The verdict as the ledger states it: a provisional one is never "holds" or "does not hold"."""
        return f"{PROVISIONAL} ({self.outcome.verdict})" if self.provisional else self.outcome.verdict

    @property
    def decided(self) -> bool:
        return self.verdict in (HOLDS, FAILS)

    def note(self) -> str:
        """n, and why the verdict is provisional or how many seeds would decide it."""
        parts = [f"n = {self.n}"] if self.n is not None else []
        if self.provisional:
            parts.append(f"provisional: {', '.join(self.unconverged)} failed the convergence test")
        if self.seeds_needed:
            parts.append(f"seeds needed: {self.seeds_needed}")
        return "; ".join(parts)


def assess(claim: Claim, setup: Setup, *, max_seeds: int) -> Assessment:
    """Evaluate `claim` on `setup`, recording the models it reads and the differences it compares."""
    recording = dataclasses.replace(setup, read=[])
    token = _DIFFERENCES.set([])
    try:
        outcome = claim.evaluate(recording)
        differences = _DIFFERENCES.get()
    finally:
        _DIFFERENCES.reset(token)
    models = list({id(m): m for m in recording.read}.values())
    n = min((len(m.replicates) for m in models), default=None)
    unconverged = tuple(f"{model_label(m.key)} seed {seed}" for m in models for seed in m.unconverged_seeds)
    return Assessment(outcome=outcome, n=n, unconverged=unconverged,
                      seeds_needed=_seed_rule(outcome.verdict, differences, n=n, max_seeds=max_seeds))


def _seed_rule(verdict: str, differences: list[list[float]], *, n: int | None, max_seeds: int) -> str:
    """For a claim that is not decisive, the seeds that would decide it at the observed spread (see `assess`)."""
    if verdict != INCONCLUSIVE:
        return ""
    if n == 1:
        return "at least 2 (one seed gives no spread to judge)"
    open_parts = [d for d in differences if not paired_difference([0.0] * len(d), d).excludes_zero]
    if not open_parts:
        return "none would: the seeds disagree, and the claim asks every seed to agree"
    needed = [seeds_needed(d, cap=max_seeds) for d in open_parts]
    if any(count is None for count in needed):
        return f"more than {max_seeds} (claims.max_seeds) at the observed spread"
    return f"{max(needed)} at the observed spread"


# --- verdict helpers -------------------------------------------------------------------


def _all_or_none(satisfied: Sequence[bool]) -> str:
    if len(satisfied) < 2:  # one seed: nothing to agree with
        return INCONCLUSIVE
    if all(satisfied):
        return HOLDS
    if not any(satisfied):
        return FAILS
    return INCONCLUSIVE


def _combined(*verdicts: str) -> str:
    """A claim made of several parts holds when all parts hold, fails when any part fails."""
    if NOT_MEASURED in verdicts:
        return NOT_MEASURED
    if FAILS in verdicts:
        return FAILS
    return HOLDS if all(v == HOLDS for v in verdicts) else INCONCLUSIVE


def _parts(**verdicts: str) -> str:
    """Each part's own verdict, so a claim that fails on one half says which half: "EM-AE part: holds; ..."."""
    return "; ".join(f"{name.replace('_', '-')} part: {verdict}" for name, verdict in verdicts.items()) + ". "


def _directional(low: Sequence[float], high: Sequence[float]) -> tuple[str, str]:
    """Verdict on "high exceeds low" from the paired difference high - low; and its interval text."""
    difference = paired_difference(low, high)
    recorded = _DIFFERENCES.get()
    if recorded is not None:
        recorded.append([float(h) - float(l) for l, h in zip(low, high)])
    if difference.n == 1:
        return INCONCLUSIVE, difference.interval(3)  # which says "(one seed: no interval)"
    if difference.excludes_zero:
        return (HOLDS if difference.mean > 0 else FAILS), difference.interval(3)
    if all(h <= l for l, h in zip(low, high)):  # no seed shows the claimed difference at all
        return FAILS, difference.interval(3)
    return INCONCLUSIVE, difference.interval(3)


def _spread(values: Sequence[float], digits: int = 3, scale: float = 1.0) -> str:
    summary = summarize([v * scale for v in values])
    return f"{summary.format(digits)} (n = {summary.n})"


def _missing(*models: ModelResults | None) -> bool:
    return any(m is None for m in models)


# --- the claims ------------------------------------------------------------------------


def emae_samples(setup: Setup) -> Outcome:
    vae, emae = setup.model("mnist", "vae"), setup.model("mnist", "emae")
    if _missing(vae, emae):
        return Outcome(NOT_MEASURED, "needs the VAE and the EM-AE on MNIST")
    share = emae.values("samples.prior.top_class_share")
    top = [max(range(10), key=h.__getitem__) for h in emae.values("samples.prior.class_histogram")]
    names = class_names("mnist")
    mostly_zero = _all_or_none([s > 0.5 and t == 0 for s, t in zip(share, top)])
    varied = _all_or_none([e > 0.9 for e in vae.values("samples.prior.class_entropy")])
    verdict = _combined(mostly_zero, varied)
    tops = ", ".join(f"'{names[t]}'" for t in top)
    numbers = (_parts(EM_AE=mostly_zero, VAE=varied)
               + f"{model_label(emae.key)} top-class share {_spread(share, 1, 100)} %, top class per seed {tops}; "
               f"{model_label(vae.key)} class entropy {_spread(vae.values('samples.prior.class_entropy'))}")
    return Outcome(verdict, numbers, setup.model_figure(emae, "samples"))


def emae_split(setup: Setup) -> Outcome:
    vae, emae = setup.model("mnist", "vae"), setup.model("mnist", "emae")
    if _missing(vae, emae):
        return Outcome(NOT_MEASURED, "needs the VAE and the EM-AE on MNIST")
    vae_splits = [activity_split(r.latent.activity) for r in vae.replicates]
    emae_splits = [activity_split(r.latent.activity) for r in emae.replicates]
    vae_splits_dims = _all_or_none([s.low_dims >= 1 and s.largest_log_gap >= 1.0 for s in vae_splits])
    emae_spreads = _all_or_none([s.low_dims == 0 and s.largest_log_gap < 1.0 for s in emae_splits])
    numbers = (_parts(VAE=vae_splits_dims, EM_AE=emae_spreads)
               + f"{model_label(vae.key)}: dims below 1% of the largest A_u "
               f"{_spread([s.low_dims for s in vae_splits], 1)}, "
               f"largest gap {_spread([s.largest_log_gap for s in vae_splits], 2)} decades; "
               f"{model_label(emae.key)}: {_spread([s.low_dims for s in emae_splits], 1)} dims, "
               f"gap {_spread([s.largest_log_gap for s in emae_splits], 2)} decades")
    return Outcome(_combined(vae_splits_dims, emae_spreads), numbers, setup.compare_figure("mnist", "emae_mu_lines"))


def separation_2d(setup: Setup) -> Outcome:
    ae, vae = setup.model("mnist", "ae", 2), setup.model("mnist", "vae", 2)
    if _missing(ae, vae):
        return Outcome(NOT_MEASURED, "needs 2-D AE and VAE on MNIST")
    verdict, interval = _directional(ae.values("latent.knn_accuracy"), vae.values("latent.knn_accuracy"))
    numbers = (f"k-NN accuracy in the 2-D latent: AE {_spread(ae.values('latent.knn_accuracy'), 1, 100)} %, "
               f"VAE {_spread(vae.values('latent.knn_accuracy'), 1, 100)} %; VAE − AE {interval}")
    return Outcome(verdict, numbers, setup.model_figure(ae, "latent_map"))


def smooth_grid_2d(setup: Setup) -> Outcome:
    ae, vae = setup.model("mnist", "ae", 2), setup.model("mnist", "vae", 2)
    if _missing(ae, vae):
        return Outcome(NOT_MEASURED, "needs 2-D AE and VAE on MNIST")
    smoother, rough_interval = _directional(vae.values("manifold.roughness"), ae.values("manifold.roughness"))
    corners, corner_interval = _directional(ae.values("manifold.corner_confidence"),
                                            vae.values("manifold.corner_confidence"))
    numbers = (f"grid roughness AE {_spread(ae.values('manifold.roughness'))}, VAE "
               f"{_spread(vae.values('manifold.roughness'))} (AE − VAE {rough_interval}); corner confidence AE "
               f"{_spread(ae.values('manifold.corner_confidence'))}, VAE "
               f"{_spread(vae.values('manifold.corner_confidence'))} (VAE − AE {corner_interval})")
    return Outcome(_combined(smoother, corners), numbers, setup.model_figure(ae, "manifold"))


def interpolation_classes(setup: Setup) -> Outcome:
    small, large = setup.model("mnist", "vae", "smallest"), setup.model("mnist", "vae", "largest")
    if _missing(small, large) or small.key.latent_dim != 2 or large.key.latent_dim <= 2:
        return Outcome(NOT_MEASURED, "needs a 2-D and a larger VAE on MNIST")
    fewer, interval = _directional(large.values("interpolation.classes_between"),
                                   small.values("interpolation.classes_between"))
    numbers = (f"classes between the ends: {model_label(small.key)} "
               f"{_spread(small.values('interpolation.classes_between'), 1)}, "
               f"{model_label(large.key)} {_spread(large.values('interpolation.classes_between'), 1)}; "
               f"2-D − {large.key.latent_dim}-D {interval}")
    return Outcome(fewer, numbers, setup.model_figure(small, "interpolation"))


MEAN_NORM_LIMIT, COVARIANCE_LIMIT, KNN_FLOOR = 0.25, 0.5, 0.5


def prior_disc_2d(setup: Setup) -> Outcome:
    vae = setup.model("mnist", "vae", 2)
    if vae is None:
        return Outcome(NOT_MEASURED, "needs a 2-D VAE on MNIST")
    norms, errors = vae.values("aggregate.mean_norm"), vae.values("aggregate.covariance_error")
    knn = vae.values("latent.knn_accuracy")
    verdict = _all_or_none([n < MEAN_NORM_LIMIT and e < COVARIANCE_LIMIT and k > KNN_FLOOR
                            for n, e, k in zip(norms, errors, knn)])
    numbers = (f"training means: ||mean|| {_spread(norms)}, ||Cov − I||_F/||I||_F {_spread(errors)}; "
               f"k-NN accuracy {_spread(knn, 1, 100)} %")
    return Outcome(verdict, numbers, setup.model_figure(vae, "latent_map"))


OVERFIT_GAP = 0.05  # validation above training by more than 5% at the end counts as overfitting


def no_overfitting(setup: Setup) -> Outcome:
    ae = setup.model("mnist", "ae")
    if ae is None:
        return Outcome(NOT_MEASURED, "needs an AE on MNIST")
    falling, gaps = [], []
    for replicate in ae.replicates:
        history = replicate.history
        val = history["val_loss"].to_numpy()
        gap = (val[-1] - history["train_loss"].to_numpy()[-1]) / abs(history["train_loss"].to_numpy()[-1])
        falling.append(bool(val[-1] <= val.min() * 1.001) and gap < OVERFIT_GAP)
        gaps.append(gap)
    numbers = (f"{model_label(ae.key)}: last-epoch (val − train) / train {_spread(gaps, 2, 100)} %; "
               "validation loss at "
               f"its minimum in the last epoch in {sum(falling)} of {len(falling)} seeds "
               f"({len(ae.first.history)} epochs)")
    return Outcome(_all_or_none(falling), numbers, setup.model_figure(ae, "loss_curves"))


CONFIDENCE_RATIO = 0.8  # samples judged at least 80% as confidently as real test images


def recognisable_garments(setup: Setup, *, real_confidence: dict[str, float]) -> Outcome:
    vae = setup.model("fashion_mnist", "vae")
    if vae is None or "fashion_mnist" not in real_confidence:
        return Outcome(NOT_MEASURED, "needs a VAE on Fashion-MNIST")
    real = real_confidence["fashion_mnist"]
    ratios = [c / real for c in vae.values("samples.prior.mean_confidence")]
    numbers = (f"classifier confidence on {model_label(vae.key)}'s N(0, I) samples / on real test images ({real:.3f}): "
               f"{_spread(ratios, 3)}")
    return Outcome(_all_or_none([r >= CONFIDENCE_RATIO for r in ratios]), numbers, setup.model_figure(vae, "samples"))


ARTICLE_LOSS = 245.0  # fashion-vae's last printed batch loss, 23 490 over 96 images, in nats per image
LOSS_TOLERANCE = 0.05


def fashion_loss(setup: Setup) -> Outcome:
    vae = setup.model("fashion_mnist", "vae")
    if vae is None:
        return Outcome(NOT_MEASURED, "needs a VAE on Fashion-MNIST")
    if setup.binarize != "none":
        return Outcome(NOT_MEASURED, "this setup binarizes its pixels: its loss is not the article's grey-level BCE")
    losses = [float(r.history["train_loss"].iloc[-1]) for r in vae.replicates]
    close = _all_or_none([abs(loss - ARTICLE_LOSS) / ARTICLE_LOSS <= LOSS_TOLERANCE for loss in losses])
    numbers = f"last-epoch training loss {_spread(losses, 1)} nats/image against the article's ~{ARTICLE_LOSS:g}"
    return Outcome(close, numbers, setup.model_figure(vae, "loss_curves"))


def architecture_decides(article: Outcome, mlp: Outcome) -> str:
    """Whether a claim's verdict changes when the study's MLP replaces the article's networks.

    "yes" when it holds with one and does not hold with the other; "no" when both give the same
    verdict; "unclear" when they differ but one is inconclusive or provisional; "not measured" when either is.
    """
    verdicts = (article.verdict, mlp.verdict)
    if NOT_MEASURED in verdicts:
        return NOT_MEASURED
    if article.verdict == mlp.verdict:
        return f"no: {article.verdict} with both"
    both = f"{article.verdict} with the article's networks, {mlp.verdict} with the MLP"
    # Only two decided verdicts can disagree: an inconclusive or provisional one decides nothing.
    return f"yes: {both}" if set(verdicts) == {HOLDS, FAILS} else f"unclear: {both}"


def claims(*, real_confidence: dict[str, float]) -> tuple[Claim, ...]:
    """Every claim of the ledger, in report order."""
    return (
        Claim("emae-samples", "emae", "Samples from N(0, I) are varied digits for the VAE, mostly '0' for the EM-AE.",
              "EM-AE: the most frequent class of its N(0, I) samples is '0' and holds > 50% of them; VAE: "
              "normalised class entropy > 0.9 (classifier labels of the evaluate.sample_count samples)", emae_samples),
        Claim("emae-split", "emae", "The VAE's mu dimensions split into feature-carrying ones and ones that stay "
              "near 0; the EM-AE spreads a little activity over all 30.",
              "VAE: >= 1 dimension with A_u below 1% of the largest and a gap of >= 1 decade in the sorted log "
              "activities; EM-AE: no such dimension and no such gap (scale-free)", emae_split),
        Claim("ae-vs-vae-2d-separation", "ae-vs-vae-2d", "The AE's 2-D latent mixes the classes; the VAE's "
              "separates them.", "k-NN accuracy (k = evaluate.knn_k) of test means from training means: VAE − AE "
              "> 0 (paired 95% t-interval)", separation_2d),
        Claim("ae-vs-vae-2d-grid", "ae-vs-vae-2d", "The VAE's decoded grid changes smoothly, the AE's does not; "
              "the AE draws non-digits in the grid's corners.",
              "grid roughness (neighbour distance / random test-pair distance) AE − VAE > 0, and classifier "
              "confidence on the four corner images VAE − AE > 0 (paired 95% t-intervals)", smooth_grid_2d),
        Claim("vae-explained-interpolation", "vae-explained", "With a 2-D latent the interpolation from a 0 to a 7 "
              "passes through other digits; with 20 dimensions through fewer.",
              "classes other than 0 and 7 among the classifier labels of the decoded path: 2-D − larger-D > 0 "
              "(paired 95% t-interval)", interpolation_classes),
        Claim("vae-explained-disc", "vae-explained", "The 2-D training means fill a disc like N(0, I), with "
              "same-label images together.", f"VAE-2: ||mean of training means|| < {MEAN_NORM_LIMIT}, "
              f"||Cov − I||_F/||I||_F < {COVARIANCE_LIMIT}, k-NN accuracy > {KNN_FLOOR:.0%} (chance: 10%)",
              prior_disc_2d),
        Claim("plain-ae-no-overfitting", "plain-ae", "Training and validation losses fall together over 20 epochs, "
              "with no overfitting.", f"AE: validation loss at its minimum in the last epoch, and (val − train) / "
              f"train < {OVERFIT_GAP:.0%} at the end", no_overfitting),
        Claim("fashion-vae-garments", "fashion-vae", "The VAE's samples are recognisable garments.",
              f"classifier confidence on N(0, I) samples >= {CONFIDENCE_RATIO:.0%} of its confidence on real test "
              "images", lambda setup: recognisable_garments(setup, real_confidence=real_confidence)),
        Claim("fashion-vae-loss", "fashion-vae", "The loss ends near 23 490 per batch of 96, ~245 nats per image "
              "(grey-level BCE + KL).", f"last-epoch training loss within {LOSS_TOLERANCE:.0%} of "
              f"{ARTICLE_LOSS:g} nats/image", fashion_loss),
    )
