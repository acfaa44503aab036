"""Controlled degradations: each does what it says, and validate_metric tells monotone scores from others."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from aebench.evaluation.degradations import (
    DEGRADATIONS,
    LADDER_ORDER,
    binarize,
    gaussian_blur,
    misorderings,
    patchwork,
    salt_and_pepper,
    shuffle_pixels,
    validate_metric,
)

PIXELS = 28 * 28


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def digit_like(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 1, 28, 28) in [0, 1]: a few soft blobs on a black background, as strokes of a digit."""
    generator = seeded(seed)
    grid = torch.arange(28, dtype=torch.float32)
    centres = 8 + 12 * torch.rand((count, 4, 2), generator=generator)  # (N, blobs, yx)
    spreads = 1.0 + torch.rand((count, 4, 1, 1), generator=generator)
    dy = (grid[None, None, :, None] - centres[..., 0, None, None]) ** 2  # (N, blobs, 28, 1)
    dx = (grid[None, None, None, :] - centres[..., 1, None, None]) ** 2  # (N, blobs, 1, 28)
    return (1.5 * torch.exp(-(dx + dy) / (2 * spreads**2))).sum(1, keepdim=True).clamp(0.0, 1.0)


def grey(count: int, seed: int = 0) -> torch.Tensor:
    """(count, 1, 28, 28) uniform in [0.01, 0.99]: no pixel is 0 or 1 already."""
    return 0.01 + 0.98 * torch.rand((count, 1, 28, 28), generator=seeded(seed))


def total_variation(images: torch.Tensor) -> float:
    return float(images.diff(dim=-1).abs().sum() + images.diff(dim=-2).abs().sum())


def test_registry_holds_the_rungs_and_the_order_puts_blur_above_sharp_non_digits():
    assert list(DEGRADATIONS) == ["real", "blur", "patchwork", "salt_and_pepper", "shuffled", "binarized",
                                  "binarized_patchwork"]
    assert {rung for chain in LADDER_ORDER for rung in chain} == set(DEGRADATIONS)
    pairs = {pair for chain in LADDER_ORDER for pair in zip(chain, chain[1:])}
    # The contrast the study is about, at the sharpness of real strokes and at full contrast.
    assert ("blur", "patchwork") in pairs and ("blur", "binarized_patchwork") in pairs

    def share_a_chain(a, b):
        return any(a in chain and b in chain for chain in LADDER_ORDER)

    # Orders that are a matter of taste are not required.
    assert not share_a_chain("blur", "salt_and_pepper")
    assert not share_a_chain("real", "binarized") and not share_a_chain("patchwork", "binarized_patchwork")


@pytest.mark.parametrize("value", [0.0, 0.37, 1.0])
def test_blur_leaves_a_constant_image_constant(value):
    images = torch.full((2, 1, 28, 28), value)
    torch.testing.assert_close(gaussian_blur(images), images, atol=1e-6, rtol=0)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_equals_scipy_gaussian_filter_with_mirror_padding(sigma):
    images = grey(3).double()
    expected = np.stack([gaussian_filter(image[0].numpy(), sigma, mode="mirror", truncate=4.0) for image in images])
    np.testing.assert_allclose(gaussian_blur(images, sigma=sigma)[:, 0].numpy(), expected, atol=1e-12)


def test_blur_keeps_the_mass_of_an_image_away_from_the_border_and_lowers_total_variation():
    images = torch.zeros((4, 1, 28, 28))
    images[:, :, 9:19, 9:19] = torch.rand((4, 1, 10, 10), generator=seeded(1))  # blurred, it stays in 5..22
    blurred = gaussian_blur(images)
    # Float32 round-off only: the relative change of each image's sum is below 1e-6.
    torch.testing.assert_close(blurred.double().sum((1, 2, 3)), images.double().sum((1, 2, 3)), rtol=1e-6, atol=0)
    assert blurred[:, :, :5].abs().max() == 0.0
    assert total_variation(blurred) < total_variation(images)
    # Independent pixels lose most of their variation (measured: 13% is left); smooth strokes keep most.
    noise = grey(4)
    assert total_variation(gaussian_blur(noise)) < 0.2 * total_variation(noise)
    strokes = digit_like(16)
    assert total_variation(gaussian_blur(strokes)) < total_variation(strokes)


def test_salt_and_pepper_sets_a_fifth_of_each_image_to_zero_or_one():
    images = grey(100)
    noisy = salt_and_pepper(images, generator=seeded(2))
    changed = noisy != images  # (100, 1, 28, 28); every set pixel changes, as none was 0 or 1
    assert changed.sum((1, 2, 3)).tolist() == [round(0.2 * PIXELS)] * 100  # 157 of 784 in each image
    set_values = noisy[changed]
    assert torch.all((set_values == 0) | (set_values == 1))
    # 15 700 fair coins: the share of ones has standard error 0.004; 0.02 is five of them.
    assert float(set_values.mean()) == pytest.approx(0.5, abs=0.02)
    assert salt_and_pepper(images, fraction=0.0, generator=seeded(2)).equal(images)


def test_shuffling_keeps_each_images_pixel_values_and_permutes_each_image_its_own_way():
    ramp = (torch.arange(PIXELS, dtype=torch.float64) / (PIXELS - 1)).reshape(1, 1, 28, 28)
    images = torch.cat([ramp, ramp, digit_like(3).double()])
    shuffled = shuffle_pixels(images, generator=seeded(3))
    assert torch.equal(shuffled.flatten(1).sort(dim=1).values, images.flatten(1).sort(dim=1).values)
    positions = (shuffled[:2].flatten(1) * (PIXELS - 1)).round().long()  # (2, 784): where each pixel came from
    assert not torch.equal(positions[0], positions[1])  # the two equal images got different permutations
    assert int((positions[0] == torch.arange(PIXELS)).sum()) < 10  # a random permutation fixes ~1 position


def test_patchwork_takes_each_quadrant_from_a_different_other_image_and_lends_each_once():
    count = 12
    # Image i is the constant (i + 1) / 16 in every pixel: each quadrant of the patchwork names its source.
    images = ((torch.arange(count, dtype=torch.float64) + 1) / 16).view(count, 1, 1, 1).expand(count, 1, 28, 28)
    assembled = patchwork(images, generator=seeded(9))
    quadrants = [(slice(0, 14), slice(0, 14)), (slice(0, 14), slice(14, 28)),
                 (slice(14, 28), slice(0, 14)), (slice(14, 28), slice(14, 28))]
    sources = torch.stack([(16 * assembled[:, 0, rows, cols]).round().long() - 1 for rows, cols in quadrants], 1)
    for rows, cols in quadrants:  # each quadrant is one source image's quadrant, copied whole
        block = assembled[:, 0, rows, cols]
        assert torch.equal(block, block[:, :1, :1].expand_as(block))
    sources = sources[:, :, 0, 0]  # (N, 4): which image lent each quadrant
    for image, lenders in enumerate(sources.tolist()):
        assert image not in lenders and len(set(lenders)) == 4
    for quadrant in range(4):  # every image lends each quadrant exactly once
        assert sorted(sources[:, quadrant].tolist()) == list(range(count))


def test_patchwork_of_real_strokes_keeps_each_positions_pixel_values_and_needs_five_images():
    images = digit_like(20)
    assembled = patchwork(images, generator=seeded(10))
    assert torch.equal(assembled.sort(dim=0).values, images.sort(dim=0).values)  # per position, as a set
    assert not torch.equal(assembled, images)
    with pytest.raises(ValueError, match="needs more than 4 images"):
        patchwork(images[:4], generator=seeded(10))


def test_misorderings_name_each_pair_of_the_order_ranked_wrongly():
    good = {"real": 5.0, "blur": 4.0, "patchwork": 2.0, "salt_and_pepper": 3.0, "shuffled": 1.0,
            "binarized": 4.5, "binarized_patchwork": 1.5}
    assert misorderings(good, higher_is_better=True) == []
    # Blur below salt and pepper: not required either way.
    assert misorderings({**good, "blur": 2.5}, higher_is_better=True) == []
    sharp_wins = {**good, "patchwork": 4.5}  # what a sharpness detector does
    assert misorderings(sharp_wins, higher_is_better=True) == [("blur", "patchwork"), ("salt_and_pepper", "patchwork")]
    assert misorderings({name: -value for name, value in good.items()}, higher_is_better=False) == []
    assert misorderings({**good, "shuffled": float("nan")}, higher_is_better=True) == [
        ("patchwork", "shuffled"), ("binarized_patchwork", "shuffled")]
    contrast_wins = {**good, "binarized_patchwork": 4.2}  # what a contrast detector does
    assert misorderings(contrast_wins, higher_is_better=True) == [("blur", "binarized_patchwork")]
    assert misorderings({**good, "blur": 5.0}, higher_is_better=True) == [("real", "blur")]  # a tie fails


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_every_degradation_keeps_shape_dtype_range_and_input(name, dtype):
    images = digit_like(5).to(dtype)
    before = images.clone()
    degraded = DEGRADATIONS[name](images, generator=seeded(4))
    assert degraded.shape == images.shape and degraded.dtype == dtype
    assert float(degraded.min()) >= 0.0 and float(degraded.max()) <= 1.0
    assert torch.equal(images, before)  # the input is not modified in place


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_every_degradation_is_deterministic_given_the_generator_seed(name):
    images = digit_like(5)
    first = DEGRADATIONS[name](images, generator=seeded(5))
    assert torch.equal(DEGRADATIONS[name](images, generator=seeded(5)), first)
    if name in ("patchwork", "salt_and_pepper", "shuffled", "binarized_patchwork"):
        assert not torch.equal(DEGRADATIONS[name](images, generator=seeded(6)), first)


def test_validate_metric_scores_every_rung_and_passes_only_the_required_order():
    images = digit_like(64)

    def scripted(values):  # scores handed out in the registry's order
        remaining = iter(values)
        return lambda samples: next(remaining)

    ordered = [5, 4, 2, 3, 1, 4.5, 1.5]
    passing = validate_metric(scripted(ordered), higher_is_better=True, images=images, generator=seeded(7))
    assert passing.passes and passing.scores == dict(zip(DEGRADATIONS, map(float, ordered)))
    reversed_ = [6 - value for value in ordered]
    lower = validate_metric(scripted(reversed_), higher_is_better=False, images=images, generator=seeded(7))
    assert lower.passes
    wrong_way = validate_metric(scripted(reversed_), higher_is_better=True, images=images, generator=seeded(7))
    assert not wrong_way.passes and ("real", "blur") in wrong_way.misordered


@pytest.mark.parametrize("higher_is_better", [True, False])
def test_a_score_blind_to_the_degradations_fails(higher_is_better):
    images = digit_like(64)
    constant = validate_metric(
        lambda samples: 1.0, higher_is_better=higher_is_better, images=images, generator=seeded(8)
    )
    assert not constant.passes and set(constant.scores.values()) == {1.0}
    # The mean intensity: shuffling keeps it exactly and blurring nearly, so it cannot order them.
    brightness = validate_metric(
        lambda samples: float(samples.double().mean()),
        higher_is_better=higher_is_better,
        images=images,
        generator=seeded(8),
    )
    assert not brightness.passes
    assert brightness.scores["shuffled"] == pytest.approx(brightness.scores["real"], rel=1e-12)


def test_binarize_makes_a_full_contrast_silhouette_at_the_middle_grey():
    images = torch.tensor([0.0, 0.2, 0.49, 0.5, 0.8, 1.0], dtype=torch.float64).view(1, 1, 2, 3)
    assert binarize(images).flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert binarize(images).dtype == torch.float64


def test_the_binarized_patchwork_is_the_patchwork_binarized():
    images = digit_like(8)
    assert torch.equal(DEGRADATIONS["binarized_patchwork"](images, generator=seeded(3)),
                       binarize(patchwork(images, generator=seeded(3))))


def test_a_score_that_rewards_contrast_fails_on_saturated_fragments_against_blurred_digits():
    # The EM-AE's Fashion-MNIST failure: full-contrast fragments. A score that only asks how far pixels sit
    # from the middle grey rates them above blurred images, and the ladder must catch it.
    contrast = validate_metric(lambda samples: float((2 * samples.double() - 1).abs().mean()), higher_is_better=True,
                               images=digit_like(64), generator=seeded(9))
    assert ("blur", "binarized_patchwork") in contrast.misordered
    assert ("binarized", "binarized_patchwork") in contrast.misordered  # a tie: both are fully saturated
