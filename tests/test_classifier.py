"""The sample classifier: it learns, it round-trips through its file, bad files are refused;
and the sample-quality statistics built on it."""

from __future__ import annotations

import math

import pytest
import torch

from aebench.common.errors import CheckpointError
from aebench.evaluation.classifier import (
    FEATURES,
    SampleClassifier,
    accuracy,
    classify,
    load_classifier,
    save_classifier,
    train_classifier,
)
from aebench.evaluation.sample_quality import class_statistics, prior_samples, sample_quality


def synthetic_classes(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c is a bright 6x6 square at its own place on a noisy background: (N, 1, 28, 28), (N,)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 10
    images = torch.rand(count, 1, 28, 28, generator=generator) * 0.3
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 5)
        images[index, 0, 4 + 12 * row : 10 + 12 * row, 1 + 5 * col : 7 + 5 * col] = 1.0
    return images, labels


@pytest.fixture(scope="module")
def trained() -> SampleClassifier:
    images, labels = synthetic_classes(600, seed=0)
    torch.manual_seed(0)
    return train_classifier(images, labels, epochs=2, batch_size=32, lr=3e-3, generator=torch.Generator().manual_seed(0))


def test_learns_separable_classes(trained):
    images, labels = synthetic_classes(200, seed=1)
    assert accuracy(trained, images, labels) >= 0.95


def test_gives_probabilities_and_penultimate_features(trained):
    images, _ = synthetic_classes(30, seed=2)
    probabilities, features = classify(trained, images, batch_size=7)
    assert probabilities.shape == (30, 10) and features.shape == (30, FEATURES)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(30))


def test_round_trips_through_its_file(trained, tmp_path):
    path = tmp_path / "clf.pt"
    save_classifier(path, trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    loaded, config = load_classifier(path)
    images, _ = synthetic_classes(20, seed=3)
    assert config == {"dataset": "mnist"} and not loaded.training
    torch.testing.assert_close(classify(loaded, images)[0], classify(trained, images)[0])


def test_bad_classifier_files_are_refused_by_name(trained, tmp_path):
    good = tmp_path / "clf.pt"
    save_classifier(good, trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "aebench-checkpoint/1", "state_dict": {}}, foreign)
    reshaped = tmp_path / "reshaped.pt"
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["head.weight"] = torch.zeros(5, FEATURES)
    torch.save(payload, reshaped)
    for path, reason in [
        (tmp_path / "missing.pt", "not found"),
        (truncated, "not a readable classifier"),
        (foreign, "not an aebench classifier"),
        (reshaped, "do not match"),
    ]:
        with pytest.raises(CheckpointError, match=reason) as err:
            load_classifier(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_class_statistics_of_uniform_and_collapsed_predictions():
    uniform = torch.eye(10).repeat(3, 1)  # 30 confident predictions, 3 per class
    histogram, entropy, confidence = class_statistics(uniform)
    assert histogram == [3] * 10 and entropy == pytest.approx(1.0) and confidence == pytest.approx(1.0)
    collapsed = torch.full((8, 10), 0.05)
    collapsed[:, 0] = 0.55  # every sample called a zero, with 55% confidence
    histogram, entropy, confidence = class_statistics(collapsed)
    assert histogram == [8] + [0] * 9 and entropy == 0.0 and confidence == pytest.approx(0.55)
    two = torch.eye(10)[[0, 0, 1, 1]]
    assert class_statistics(two)[1] == pytest.approx(math.log(2) / math.log(10))


def test_sample_quality_is_perfect_for_real_images_and_worse_for_blank_ones(trained):
    images, _ = synthetic_classes(200, seed=4)
    real = sample_quality(trained, images, images)
    assert real.frechet_distance == pytest.approx(0.0, abs=1e-6)
    assert real.class_entropy > 0.99 and sum(real.class_histogram) == 200
    blank = sample_quality(trained, torch.zeros(200, 1, 28, 28), images)
    assert blank.class_entropy == 0.0 and blank.frechet_distance > 1.0


class FlatDecoder(torch.nn.Module):
    latent_dim = 3

    def decode(self, z):
        return z.sum(-1)[:, None, None, None].expand(-1, 1, 28, 28) * 100  # logits (N, 1, 28, 28)


def test_prior_samples_are_images_in_the_unit_interval_from_a_fixed_seed():
    first = prior_samples(FlatDecoder(), 25, likelihood="bernoulli", generator=torch.Generator().manual_seed(5), batch_size=10)
    again = prior_samples(FlatDecoder(), 25, likelihood="bernoulli", generator=torch.Generator().manual_seed(5), batch_size=10)
    assert first.shape == (25, 1, 28, 28) and first.min() >= 0 and first.max() <= 1
    torch.testing.assert_close(first, again)
    clipped = prior_samples(FlatDecoder(), 25, likelihood="gaussian", generator=torch.Generator().manual_seed(5))
    assert set(clipped.unique().tolist()) <= {0.0, 1.0}  # Gaussian means beyond [0, 1] are clipped
