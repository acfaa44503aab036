"""The claims ledger: each claim's verdict on synthetic models whose answer is known.

Where a claim rests on a metric the evaluation computes (k-NN accuracy, grid roughness, the aggregate
posterior's moments, the classes an interpolation passes, the class entropy of samples), the values fed
to the claim are computed by that metric's own function from inputs whose order is known (separable
clusters against shuffled labels, a smooth grid against noise), so a verdict here follows from data,
not from typed numbers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from report_inputs import UNIFORM, histogram_values, history, model

from aebench.evaluation.geometry import aggregate_posterior_moments, grid_roughness, interpolation_classes, knn_accuracy
from aebench.reporting.claims import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_MEASURED,
    Outcome,
    Setup,
    architecture_decides,
    assess,
    claims,
    emae_samples,
    emae_split,
    fashion_loss,
    interpolation_classes as interpolation_claim,
    no_overfitting,
    prior_disc_2d,
    recognisable_garments,
    separation_2d,
    smooth_grid_2d,
)

FIGURES, COMPARE = Path("reports/figures"), Path("reports/compare")
SEEDS = (0, 1, 2)


def setup(*results, binarize: str = "dynamic") -> Setup:
    return Setup("default study", list(results), figures=FIGURES, compare=COMPARE, binarize=binarize)


def per_seed(make, seeds=SEEDS) -> dict[str, list]:
    """{key: [value at each seed]} from make(seed) -> {key: value}."""
    rows = [make(seed) for seed in seeds]
    return {key: [row[key] for row in rows] for key in rows[0]}


# --- emae-samples: one class against ten --------------------------------------------------------

MOSTLY_ZERO = [273] + [3] * 9  # the EM-AE article's "mostly 0": 91% in class '0'
MOSTLY_ONE = [3, 273] + [3] * 8


def prior_samples(histograms) -> dict[str, list]:
    return per_seed(lambda seed: histogram_values("prior", histograms[seed]))


def samples_study(emae_histograms, vae_histograms) -> Setup:
    return setup(model("mnist", "vae", 4, per_seed=prior_samples(vae_histograms)),
                 model("mnist", "emae", 4, per_seed=prior_samples(emae_histograms)),
                 model("mnist", "emae", 2))  # the claim reads the largest latent size: this one must not matter


@pytest.mark.parametrize(("emae", "vae", "verdict"), [
    ([MOSTLY_ZERO] * 3, [UNIFORM] * 3, HOLDS),
    ([MOSTLY_ONE] * 3, [UNIFORM] * 3, FAILS),  # one class, but not '0'
    ([UNIFORM] * 3, [MOSTLY_ZERO] * 3, FAILS),  # the two swapped
    ([MOSTLY_ZERO] * 3, [MOSTLY_ONE] * 3, FAILS),  # the VAE's samples are not varied
    ([MOSTLY_ZERO, UNIFORM, MOSTLY_ZERO], [UNIFORM] * 3, INCONCLUSIVE),  # the seeds disagree
])
def test_emae_samples_holds_when_the_emae_draws_mostly_zeros_and_the_vae_every_class(emae, vae, verdict):
    outcome = emae_samples(samples_study(emae, vae))
    assert outcome.verdict == verdict
    assert outcome.figure == FIGURES / "mnist" / "emae" / "latent-4" / "samples.png"


def test_emae_samples_numbers_state_the_share_and_the_top_class_of_each_seed():
    outcome = emae_samples(samples_study([MOSTLY_ZERO, MOSTLY_ZERO, MOSTLY_ONE], [UNIFORM] * 3))
    assert outcome.numbers == ("EM-AE part: inconclusive; VAE part: holds. "
                               "EM-AE-4 top-class share 91.0 ± 0.0 (n = 3) %, top class per seed '0', '0', '1'; "
                               "VAE-4 class entropy 1.000 ± 0.000 (n = 3)")


def test_emae_samples_names_the_half_that_fails():
    # The emae profile's outcome: the EM-AE draws zeros as the article says, the VAE's samples are not varied.
    outcome = emae_samples(samples_study([MOSTLY_ZERO] * 3, [MOSTLY_ONE] * 3))
    assert (outcome.verdict, outcome.numbers.split(". ")[0]) == (FAILS, "EM-AE part: holds; VAE part: does not hold")


# --- emae-split: a gap of decades against a spread ---------------------------------------------

SWITCHED_OFF = [[1.0, 0.6, 1e-4, 2e-5], [0.8, 0.7, 3e-4, 1e-5], [1.2, 0.5, 2e-4, 5e-5]]  # two dims off, 3+ decades
SPREAD = [[0.06, 0.05, 0.04, 0.03], [0.07, 0.05, 0.045, 0.03], [0.05, 0.05, 0.04, 0.035]]  # all shrunk alike


@pytest.mark.parametrize(("vae", "emae", "verdict"), [(SWITCHED_OFF, SPREAD, HOLDS), (SPREAD, SWITCHED_OFF, FAILS)])
def test_emae_split_holds_for_a_vae_that_switches_dimensions_off_and_an_emae_that_shrinks_all(vae, emae, verdict):
    study = setup(model("mnist", "vae", 4, activities=vae), model("mnist", "emae", 4, activities=emae))
    outcome = emae_split(study)
    assert outcome.verdict == verdict
    assert outcome.figure == COMPARE / "mnist-emae_mu_lines.png"
    if verdict == HOLDS:
        assert outcome.numbers.startswith("VAE part: holds; EM-AE part: holds. "
                                          "VAE-4: dims below 1% of the largest A_u 2.0 ± 0.0 (n = 3), largest gap ")
        assert "EM-AE-4: 0.0 ± 0.0 (n = 3) dims" in outcome.numbers
    else:  # both halves reversed: each part says so
        assert outcome.numbers.startswith("VAE part: does not hold; EM-AE part: does not hold. ")


# --- the 2-D AE against the 2-D VAE: separation ------------------------------------------------


def knn_of(seed: int, *, separable: bool) -> float:
    """k-NN accuracy of 2-D codes in ten tight clusters, with their true labels or with shuffled ones."""
    rng = np.random.default_rng(seed)
    centres = np.stack([np.cos(np.arange(10) * 0.628), np.sin(np.arange(10) * 0.628)], axis=1) * 5  # (10, 2)
    train_labels, test_labels = rng.integers(0, 10, 400), rng.integers(0, 10, 200)
    train = centres[train_labels] + rng.normal(0, 0.3, (400, 2))
    test = centres[test_labels] + rng.normal(0, 0.3, (200, 2))
    if not separable:
        train_labels = rng.permutation(train_labels)
    return knn_accuracy(train, train_labels, test, test_labels)


def separation_study(vae_separable, ae_separable, seeds=SEEDS) -> Setup:
    def knn(flags):
        return {"latent.knn_accuracy": [knn_of(seed, separable=flag) for seed, flag in zip(seeds, flags)]}

    return setup(model("mnist", "ae", 2, seeds, per_seed=knn(ae_separable)),
                 model("mnist", "vae", 2, seeds, per_seed=knn(vae_separable)))


def test_knn_accuracy_ranks_separable_codes_above_shuffled_labels():
    assert min(knn_of(seed, separable=True) for seed in SEEDS) > 0.95
    assert max(knn_of(seed, separable=False) for seed in SEEDS) < 0.25  # chance is 0.1


@pytest.mark.parametrize(("vae", "ae", "verdict"), [
    ([True] * 3, [False] * 3, HOLDS),
    ([False] * 3, [True] * 3, FAILS),
    ([True, False, True], [False, True, False], INCONCLUSIVE),  # seeds disagree: the interval holds zero
])
def test_separation_claim_follows_the_paired_knn_difference(vae, ae, verdict):
    outcome = separation_2d(separation_study(vae, ae))
    assert outcome.verdict == verdict
    assert outcome.figure == FIGURES / "mnist" / "ae" / "latent-2" / "latent_map.png"
    assert outcome.numbers.startswith("k-NN accuracy in the 2-D latent: AE ")


def test_one_seed_decides_nothing_and_says_so_once():
    outcome = separation_2d(separation_study([True], [False], seeds=(0,)))
    assert outcome.verdict == INCONCLUSIVE  # the difference is large, but one seed gives it no interval
    assert outcome.numbers.count("one seed: no interval") == 1, outcome.numbers
    single = setup(model("mnist", "vae", 2, (0,), per_seed={"aggregate.mean_norm": [0.01]}))
    assert prior_disc_2d(single).verdict == INCONCLUSIVE  # every seed agrees, but there is only one


def test_a_claimed_difference_that_no_seed_shows_does_not_hold():
    same = {"latent.knn_accuracy": [0.4, 0.5, 0.6]}
    outcome = separation_2d(setup(model("mnist", "ae", 2, per_seed=same), model("mnist", "vae", 2, per_seed=same)))
    assert outcome.verdict == FAILS
    assert outcome.numbers.endswith("VAE − AE +0.000 [+0.000, +0.000]")


# --- the 2-D AE against the 2-D VAE: the decoded grid ------------------------------------------


def roughness_of(seed: int, *, smooth: bool) -> float:
    """grid_roughness of a 5 x 5 grid: a blob moving a pixel per step (smooth) or noise images (rough)."""
    rng = np.random.default_rng(seed)
    reference = (rng.random((50, 28, 28)) < 0.2).astype(np.float64)  # (M, H, W) digit-like binary images
    if smooth:
        rows, cols = np.mgrid[0:28, 0:28]
        grid = np.stack([np.exp(-((rows - 10 - i) ** 2 + (cols - 10 - j) ** 2) / 18.0)
                         for i in range(5) for j in range(5)])  # (25, 28, 28)
    else:
        grid = (rng.random((25, 28, 28)) < 0.2).astype(np.float64)
    return grid_roughness(torch.as_tensor(grid), torch.as_tensor(reference),
                          generator=torch.Generator().manual_seed(seed), pairs=500)


def grid_study(*, ae_smooth: bool, vae_smooth: bool, ae_corner: float, vae_corner: float) -> Setup:
    def values(smooth, corner):
        return {"manifold.roughness": [roughness_of(seed, smooth=smooth) for seed in SEEDS],
                "manifold.corner_confidence": [corner + 0.01 * seed for seed in SEEDS]}

    return setup(model("mnist", "ae", 2, per_seed=values(ae_smooth, ae_corner)),
                 model("mnist", "vae", 2, per_seed=values(vae_smooth, vae_corner)))


def test_grid_roughness_ranks_a_smooth_grid_below_noise():
    smooth = [roughness_of(seed, smooth=True) for seed in SEEDS]
    rough = [roughness_of(seed, smooth=False) for seed in SEEDS]
    assert max(smooth) < 0.3 and min(rough) > 0.9


@pytest.mark.parametrize(("ae_smooth", "vae_smooth", "ae_corner", "vae_corner", "verdict"), [
    (False, True, 0.3, 0.9, HOLDS),
    (True, False, 0.3, 0.9, FAILS),  # the AE's grid is the smooth one
    (False, True, 0.9, 0.3, FAILS),  # smooth, but the VAE's corners are the junk
])
def test_grid_claim_needs_a_rougher_ae_grid_and_more_confident_vae_corners(ae_smooth, vae_smooth, ae_corner,
                                                                            vae_corner, verdict):
    outcome = smooth_grid_2d(grid_study(ae_smooth=ae_smooth, vae_smooth=vae_smooth, ae_corner=ae_corner,
                                        vae_corner=vae_corner))
    assert outcome.verdict == verdict
    assert outcome.figure == FIGURES / "mnist" / "ae" / "latent-2" / "manifold.png"


# --- vae-explained: interpolation and the prior disc --------------------------------------------

THROUGH_OTHERS = [0, 0, 6, 6, 2, 3, 3, 7, 7, 7]  # from a 0 to a 7 through 6, 2 and 3
DIRECT = [0, 0, 0, 0, 0, 7, 7, 7, 7, 7]


def frames(labels_per_seed) -> dict[str, list]:
    return {"interpolation.frame_labels": labels_per_seed,
            "interpolation.classes_between": [interpolation_classes(np.array(labels), start_label=0, end_label=7)
                                              for labels in labels_per_seed]}


@pytest.mark.parametrize(("small", "large", "verdict"), [
    ([THROUGH_OTHERS] * 3, [DIRECT] * 3, HOLDS),
    ([DIRECT] * 3, [THROUGH_OTHERS] * 3, FAILS),
    ([THROUGH_OTHERS, DIRECT, THROUGH_OTHERS], [DIRECT, THROUGH_OTHERS, DIRECT], INCONCLUSIVE),
])
def test_interpolation_claim_compares_the_2d_vae_with_the_largest(small, large, verdict):
    study = setup(model("mnist", "vae", 2, per_seed=frames(small)),
                  model("mnist", "vae", 4, per_seed=frames([THROUGH_OTHERS] * 3)),  # neither end: must not matter
                  model("mnist", "vae", 8, per_seed=frames(large)))
    outcome = interpolation_claim(study)
    assert outcome.verdict == verdict
    assert "VAE-2" in outcome.numbers and "VAE-8" in outcome.numbers and "2-D − 8-D" in outcome.numbers
    assert outcome.figure == FIGURES / "mnist" / "vae" / "latent-2" / "interpolation.png"


def test_interpolation_claim_needs_a_2d_and_a_larger_vae():
    assert interpolation_claim(setup(model("mnist", "vae", 2))).verdict == NOT_MEASURED
    assert interpolation_claim(setup(model("mnist", "vae", 4), model("mnist", "vae", 8))).verdict == NOT_MEASURED


def disc(seed: int, *, like_prior: bool) -> dict:
    """The aggregate moments of 2-D training means drawn from N(0, I), or shifted and stretched."""
    codes = np.random.default_rng(seed).normal(size=(2000, 2))
    if not like_prior:
        codes = codes * [3.0, 0.5] + [1.0, -1.0]
    moments = aggregate_posterior_moments(codes)
    return {"aggregate.mean_norm": moments.mean_norm, "aggregate.covariance_error": moments.covariance_error}


@pytest.mark.parametrize(("like_prior", "knn", "verdict"), [
    (True, 0.8, HOLDS),
    (False, 0.8, FAILS),  # not a disc like N(0, I)
    (True, 0.3, FAILS),  # a disc, but same-label images are not together
])
def test_prior_disc_claim_reads_the_moments_of_the_training_means(like_prior, knn, verdict):
    values = per_seed(lambda seed: {**disc(seed, like_prior=like_prior), "latent.knn_accuracy": knn})
    outcome = prior_disc_2d(setup(model("mnist", "vae", 2, per_seed=values)))
    assert outcome.verdict == verdict
    assert outcome.figure == FIGURES / "mnist" / "vae" / "latent-2" / "latent_map.png"


def test_prior_disc_moments_separate_a_standard_normal_from_a_shifted_one():
    assert disc(0, like_prior=True)["aggregate.mean_norm"] < 0.1
    assert disc(0, like_prior=True)["aggregate.covariance_error"] < 0.1
    assert disc(0, like_prior=False)["aggregate.mean_norm"] == pytest.approx(np.sqrt(2), abs=0.1)


# --- plain-ae: no overfitting -------------------------------------------------------------------

TOGETHER = history(4, train=[300.0, 200.0, 150.0], val=[306.0, 204.0, 153.0])
RISING = history(4, train=[300.0, 200.0, 150.0], val=[306.0, 204.0, 160.0 * 1.2])  # validation turns up
GAP = history(4, train=[300.0, 200.0, 150.0], val=[330.0, 230.0, 180.0])  # still falling, but 20% above train


@pytest.mark.parametrize(("histories", "verdict", "falling"), [
    ([TOGETHER] * 3, HOLDS, 3),
    ([RISING] * 3, FAILS, 0),
    ([GAP] * 3, FAILS, 0),
    ([TOGETHER, RISING, TOGETHER], INCONCLUSIVE, 2),
])
def test_no_overfitting_holds_when_both_losses_fall_together(histories, verdict, falling):
    outcome = no_overfitting(setup(model("mnist", "ae", 4, histories=histories)))
    assert outcome.verdict == verdict
    assert f"validation loss at its minimum in the last epoch in {falling} of 3 seeds (3 epochs)" in outcome.numbers
    assert outcome.figure == FIGURES / "mnist" / "ae" / "latent-4" / "loss_curves.png"


def test_no_overfitting_states_the_last_epoch_gap():
    outcome = no_overfitting(setup(model("mnist", "ae", 4, histories=[TOGETHER] * 3)))
    assert outcome.numbers.startswith("AE-4: last-epoch (val − train) / train 2.00 ± 0.00 (n = 3) %")


# --- fashion-vae: garments and the loss ---------------------------------------------------------


@pytest.mark.parametrize(("confidence", "verdict"), [
    ([0.85, 0.86, 0.84], HOLDS),  # ~90% of the classifier's confidence on real images (0.95)
    ([0.50, 0.55, 0.45], FAILS),
    ([0.85, 0.50, 0.86], INCONCLUSIVE),
])
def test_garments_claim_compares_sample_confidence_with_real_images(confidence, verdict):
    vae = model("fashion_mnist", "vae", 4, per_seed={"samples.prior.mean_confidence": confidence})
    outcome = recognisable_garments(setup(vae), real_confidence={"fashion_mnist": 0.95})
    assert outcome.verdict == verdict
    assert outcome.numbers.startswith("classifier confidence on VAE-4's N(0, I) samples / on real test images (0.950)")
    assert recognisable_garments(setup(vae), real_confidence={"mnist": 0.95}).verdict == NOT_MEASURED


def fashion(last_losses) -> list:
    """Histories whose last training loss is each of `last_losses`."""
    return [history(4, train=[400.0, 300.0, loss]) for loss in last_losses]


@pytest.mark.parametrize(("last", "binarize", "verdict"), [
    ([240.0, 250.0, 247.0], "none", HOLDS),  # within 5% of 245
    ([300.0, 310.0, 305.0], "none", FAILS),
    ([240.0, 300.0, 247.0], "none", INCONCLUSIVE),
    ([240.0, 250.0, 247.0], "dynamic", NOT_MEASURED),  # binary pixels: not the article's grey-level loss
])
def test_fashion_loss_is_compared_only_in_a_grey_level_setup(last, binarize, verdict):
    study = setup(model("fashion_mnist", "vae", 4, histories=fashion(last)), binarize=binarize)
    outcome = fashion_loss(study)
    assert outcome.verdict == verdict
    if binarize == "dynamic":
        assert "binarizes its pixels" in outcome.numbers and outcome.figure is None
    else:
        assert "against the article's ~245" in outcome.numbers


# --- the ledger ----------------------------------------------------------------------------------


def test_the_ledger_lists_each_claim_once_in_report_order():
    ledger = claims(real_confidence={"fashion_mnist": 0.9})
    assert [claim.name for claim in ledger] == [
        "emae-samples", "emae-split", "ae-vs-vae-2d-separation", "ae-vs-vae-2d-grid", "vae-explained-interpolation",
        "vae-explained-disc", "plain-ae-no-overfitting", "fashion-vae-garments", "fashion-vae-loss",
    ]
    assert [claim.article for claim in ledger] == ["emae", "emae", "ae-vs-vae-2d", "ae-vs-vae-2d", "vae-explained",
                                                   "vae-explained", "plain-ae", "fashion-vae", "fashion-vae"]


def test_a_setup_without_the_models_measures_nothing():
    for claim in claims(real_confidence={"fashion_mnist": 0.9}):
        outcome = claim.evaluate(setup(model("mnist", "beta4", 4)))
        assert (outcome.verdict, outcome.figure) == (NOT_MEASURED, None), claim.name
        assert outcome.numbers.startswith("needs "), claim.name


@pytest.mark.parametrize(
    ("article", "mlp", "decides"),
    [
        (HOLDS, FAILS, "yes"),
        (FAILS, HOLDS, "yes"),
        (HOLDS, HOLDS, "no"),
        (FAILS, FAILS, "no"),
        (INCONCLUSIVE, INCONCLUSIVE, "no"),
        (HOLDS, INCONCLUSIVE, "unclear"),
        (INCONCLUSIVE, FAILS, "unclear"),
        (NOT_MEASURED, HOLDS, NOT_MEASURED),
        (FAILS, NOT_MEASURED, NOT_MEASURED),
    ],
)
def test_the_architecture_decides_a_claim_only_when_it_holds_with_one_network_and_fails_with_the_other(
        article, mlp, decides):
    answer = architecture_decides(Outcome(article, ""), Outcome(mlp, ""))
    assert answer.split(":")[0] == decides
    if decides in ("yes", "unclear"):  # it says which network gave which verdict
        assert answer.endswith(f"{article} with the article's networks, {mlp} with the MLP")


def test_the_architecture_decides_separation_when_only_one_networks_vae_separates_the_classes():
    # The same AE in both setups; the VAE's codes separate the classes with one network, not with the other.
    book = separation_2d(separation_study([True] * 3, [False] * 3))
    mlp = separation_2d(separation_study([False] * 3, [False, True, False]))
    assert (book.verdict, mlp.verdict) == (HOLDS, FAILS)
    assert architecture_decides(book, mlp).startswith("yes: holds with the article's networks")
    same = separation_2d(separation_study([True] * 3, [False] * 3))
    assert architecture_decides(book, same) == "no: holds with both"


# --- the ledger's assessment: n, provisional verdicts, the seed rule --------------------------------

SEPARATION = next(c for c in claims(real_confidence={}) if c.name == "ae-vs-vae-2d-separation")


def knn_pair(ae, vae, *, seeds=SEEDS, unconverged=None) -> Setup:
    """2-D AE and VAE with the given k-NN accuracies; `unconverged`: (variant, seed) whose model failed its test."""
    def values(variant, accuracies):
        flags = [(variant, seed) != unconverged for seed in seeds]
        return {"latent.knn_accuracy": accuracies, "convergence.converged": flags,
                "convergence.flat": flags}

    return setup(model("mnist", "ae", 2, seeds, per_seed=values("ae", ae)),
                 model("mnist", "vae", 2, seeds, per_seed=values("vae", vae)))


def test_a_decisive_claim_on_converged_models_is_decided_and_states_its_n():
    assessment = assess(SEPARATION, knn_pair([0.5, 0.6, 0.55], [0.9, 1.0, 0.96]), max_seeds=10)
    assert assessment.verdict == HOLDS and assessment.decided
    assert assessment.n == 3 and not assessment.provisional
    assert assessment.note() == "n = 3"


def test_a_verdict_resting_on_an_unconverged_model_is_provisional_and_decides_nothing():
    assessment = assess(SEPARATION, knn_pair([0.5, 0.6, 0.55], [0.9, 1.0, 0.96], unconverged=("vae", 1)),
                        max_seeds=10)
    assert assessment.outcome.verdict == HOLDS  # the numbers alone would decide it
    assert assessment.verdict == "provisional (holds)" and not assessment.decided
    assert assessment.unconverged == ("VAE-2 seed 1",)
    assert assessment.note() == "n = 3; provisional: VAE-2 seed 1 failed the convergence test"


def test_a_claim_near_its_threshold_states_the_seeds_its_spread_needs():
    # VAE - AE = +0.05, +0.15, -0.02 at the three seeds: mean +0.06, sd 0.085; the interval holds zero at n = 3.
    ae, vae = [0.5, 0.5, 0.5], [0.55, 0.65, 0.48]
    assessment = assess(SEPARATION, knn_pair(ae, vae), max_seeds=20)
    assert assessment.verdict == INCONCLUSIVE
    differences = np.subtract(vae, ae)
    mean, sd = differences.mean(), differences.std(ddof=1)
    needed = next(n for n in range(2, 21) if stats_t(n) * sd / np.sqrt(n) < mean)
    assert needed > 3
    assert assessment.seeds_needed == f"{needed} at the observed spread"
    capped = assess(SEPARATION, knn_pair(ae, vae), max_seeds=needed - 1)
    assert capped.seeds_needed == f"more than {needed - 1} (claims.max_seeds) at the observed spread"


def test_the_seed_rule_says_when_more_seeds_cannot_decide_an_every_seed_claim():
    disc = next(c for c in claims(real_confidence={}) if c.name == "vae-explained-disc")
    mixed = setup(model("mnist", "vae", 2, per_seed={"aggregate.mean_norm": [0.01, 0.9, 0.01],
                                                     "latent.knn_accuracy": [0.9, 0.9, 0.9]}))
    assessment = assess(disc, mixed, max_seeds=10)
    assert assessment.verdict == INCONCLUSIVE
    assert assessment.seeds_needed.startswith("none would: the seeds disagree")


def test_a_single_seed_asks_for_a_second():
    assessment = assess(SEPARATION, knn_pair([0.5], [0.9], seeds=(0,)), max_seeds=10)
    assert assessment.verdict == INCONCLUSIVE and assessment.n == 1
    assert assessment.seeds_needed.startswith("at least 2")


def test_not_measured_is_never_provisional():
    assessment = assess(SEPARATION, setup(model("mnist", "beta4", 4)), max_seeds=10)
    assert assessment.verdict == NOT_MEASURED and assessment.n is None and assessment.note() == ""


def stats_t(n: int) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.975, df=n - 1))
