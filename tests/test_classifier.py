"""The sample classifier: it learns, it round-trips through its file, bad files are refused;
the sample-quality metrics built on it, and the check that they rank degradations in their known order."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aebench.common.errors import CheckpointError
from aebench.evaluation import degradations, sample_quality
from aebench.evaluation.classifier import (
    ARCHITECTURES,
    FEATURES,
    SampleClassifier,
    accuracy,
    classify,
    load_classifier,
    load_second_judge,
    save_classifier,
    train_classifier,
)
from aebench.evaluation.sample_quality import (
    QUALITY_METRICS,
    agreed_share,
    judge_samples,
    prior_codes,
    reference,
    validate_sample_metrics,
)


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
    generator = torch.Generator().manual_seed(0)
    return train_classifier(images, labels, epochs=2, batch_size=32, lr=3e-3, generator=generator)


@pytest.fixture(scope="module")
def real(trained):
    return reference(trained, synthetic_classes(200, seed=1)[0])


def test_learns_separable_classes(trained):
    images, labels = synthetic_classes(200, seed=1)
    assert accuracy(trained, images, labels) >= 0.95
    assert accuracy(trained, images, (labels + 1) % 10) <= 0.05  # the labels matter: a wrong key scores ~0


def test_gives_probabilities_and_penultimate_features(trained):
    images, _ = synthetic_classes(30, seed=2)
    probabilities, features = classify(trained, images, batch_size=7)
    assert probabilities.shape == (30, 10) and features.shape == (30, FEATURES)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(30))
    torch.testing.assert_close(classify(trained, images, batch_size=30)[1], features)  # batching changes nothing


def test_reports_each_epoch(trained):
    images, labels = synthetic_classes(64, seed=3)
    reports = []
    train_classifier(images, labels, epochs=2, batch_size=32, lr=3e-3, generator=torch.Generator().manual_seed(0),
                     report=lambda epoch, loss, seconds: reports.append((epoch, loss > 0, seconds > 0)))
    assert reports == [(1, True, True), (2, True, True)]


def test_round_trips_through_its_file(trained, tmp_path):
    path = tmp_path / "clf.pt"
    save_classifier(path, trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    loaded, config = load_classifier(path)
    images, _ = synthetic_classes(20, seed=3)
    assert config == {"dataset": "mnist"} and not loaded.training
    torch.testing.assert_close(classify(loaded, images)[0], classify(trained, images)[0])
    assert [p.name for p in tmp_path.iterdir()] == ["clf.pt"]


def test_the_second_judge_saved_beside_the_judge_gives_the_same_features(trained, tmp_path):
    torch.manual_seed(1)
    second = SampleClassifier(architecture="mlp").eval()
    path = tmp_path / "clf.pt"
    save_classifier(path, trained, config={"dataset": "mnist"}, test_accuracy=0.99, second=second)
    loaded = load_second_judge(path)
    images, _ = synthetic_classes(20, seed=3)
    assert loaded.architecture == "mlp" and not loaded.training
    for before, after in zip(classify(second, images), classify(loaded, images)):
        torch.testing.assert_close(after, before)
    torch.testing.assert_close(classify(load_classifier(path)[0], images)[1], classify(trained, images)[1])


def test_a_file_without_a_second_judge_is_refused_by_name(trained, tmp_path):
    path = tmp_path / "clf.pt"
    save_classifier(path, trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    with pytest.raises(CheckpointError, match="holds no second judge") as err:
        load_second_judge(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_saving_the_same_classifier_twice_gives_identical_bytes(trained, tmp_path):
    # As a checkpoint's: a retrained judge with the same weights must not look changed to DVC.
    save_classifier(tmp_path / "a.pt", trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    save_classifier(tmp_path / "elsewhere" / "b.pt", trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "elsewhere" / "b.pt").read_bytes()


def test_bad_classifier_files_are_refused_by_name(trained, tmp_path):
    good = tmp_path / "clf.pt"
    save_classifier(good, trained, config={"dataset": "mnist"}, test_accuracy=0.99)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "aebench-checkpoint/2", "state_dict": {}}, foreign)
    reshaped = tmp_path / "reshaped.pt"
    payload = torch.load(good, weights_only=True)
    payload["state_dict"]["head.weight"] = torch.zeros(5, FEATURES)
    torch.save(payload, reshaped)
    for path, reason in [
        (tmp_path / "missing.pt", "classifier not found"),
        (truncated, "not a readable classifier"),
        (foreign, "not an aebench classifier"),
        (reshaped, "weights do not match the classifier's architecture"),
    ]:
        with pytest.raises(CheckpointError, match=reason) as err:
            load_classifier(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


# --- judging samples ---------------------------------------------------------------------


def test_real_images_judged_against_themselves_score_perfectly(trained):
    images, _ = synthetic_classes(200, seed=1)
    own = reference(trained, images)
    judged = judge_samples(trained, images, own, precision_recall_k=3, precision_recall_images=200,
                           density_coverage_k=5)
    assert list(judged) == ["count", "class_histogram", "class_entropy", "top_class_share", "mean_confidence",
                            "confident_share", "frechet_distance", "precision", "recall", "density", "coverage"]
    assert judged["count"] == 200 and judged["class_histogram"] == [20] * 10
    assert judged["class_entropy"] == pytest.approx(1.0) and judged["top_class_share"] == pytest.approx(0.1)
    assert judged["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert (judged["precision"], judged["recall"], judged["coverage"]) == (1.0, 1.0, 1.0)
    assert judged["density"] == pytest.approx(1 + 1 / 5)  # its own ball and the k whose neighbour it is
    assert judged["mean_confidence"] == pytest.approx(own.mean_confidence)
    confidence = classify(trained, images)[0].max(-1).values
    assert judged["confident_share"] == pytest.approx(float((confidence >= 0.9).double().mean()))


def test_blank_images_are_one_class_far_from_the_real_ones(trained, real):
    blank = torch.zeros(200, 1, 28, 28)
    judged = judge_samples(trained, blank, real, precision_recall_k=3, precision_recall_images=200,
                           density_coverage_k=5)
    assert sum(judged["class_histogram"]) == 200 and max(judged["class_histogram"]) == 200
    assert judged["class_entropy"] == 0.0 and judged["top_class_share"] == 1.0
    assert judged["frechet_distance"] > 10.0
    assert judged["recall"] <= 0.1  # identical samples cover at most the real images near the blank one


def test_held_out_real_images_score_better_than_shuffled_ones(trained, real):
    held_out, _ = synthetic_classes(200, seed=5)
    shuffled = degradations.shuffle_pixels(held_out, generator=torch.Generator().manual_seed(0))
    good, bad = (judge_samples(trained, x, real, precision_recall_k=3, precision_recall_images=200,
                           density_coverage_k=5)
                 for x in (held_out, shuffled))
    assert good["frechet_distance"] < bad["frechet_distance"]
    assert good["precision"] > bad["precision"] and good["recall"] > bad["recall"]
    assert good["density"] > bad["density"] and good["coverage"] > bad["coverage"]
    assert good["mean_confidence"] > bad["mean_confidence"] and good["confident_share"] > bad["confident_share"]


def test_prior_codes_are_standard_normal_from_their_generator():
    codes = prior_codes(20000, 3, generator=torch.Generator().manual_seed(5))
    assert codes.shape == (20000, 3)
    torch.testing.assert_close(codes.mean(0), torch.zeros(3), atol=0.03, rtol=0)
    torch.testing.assert_close(codes.std(0), torch.ones(3), atol=0.03, rtol=0)
    again = prior_codes(20000, 3, generator=torch.Generator().manual_seed(5))
    other = prior_codes(20000, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(again, codes) and not torch.equal(other, codes)


# --- which metrics may be trusted -------------------------------------------------------------


def validate(trained, real, **kwargs):
    held_out, _ = synthetic_classes(200, seed=5)
    return validate_sample_metrics(trained, held_out, real, precision_recall_k=3, precision_recall_images=200,
                                   density_coverage_k=5, generator=torch.Generator().manual_seed(0), **kwargs)


def passing(validation: dict) -> list[str]:
    return [name for name, check in validation.items() if check["passes"]]


def test_validation_scores_each_quality_metric_on_every_rung_and_names_what_it_misorders(trained, real):
    validation = validate(trained, real)
    assert list(validation) == list(QUALITY_METRICS)[:-1] == [  # the last, agreed_share, needs a partner judge
        "frechet_distance", "precision", "recall", "density", "coverage", "mean_confidence", "confident_share"]
    for name, check in validation.items():
        assert list(check["values"]) == list(degradations.DEGRADATIONS)
        assert check["higher_is_better"] is QUALITY_METRICS[name]
        expected = degradations.misorderings(check["values"], higher_is_better=check["higher_is_better"])
        assert check["misordered"] == [list(pair) for pair in expected] and check["passes"] is (not expected)
    # On these toy classes a blurred square leaves every k-NN ball while a patchwork keeps some squares
    # whole: precision puts sharp non-classes above blurred classes, the failure the ladder exists for.
    precision = validation["precision"]["values"]
    assert precision["real"] > 0.5 and precision["blur"] == precision["shuffled"] == 0.0 < precision["patchwork"]
    assert validation["precision"]["passes"] is False and ["blur", "patchwork"] in validation["precision"]["misordered"]


def test_a_metric_passes_only_when_it_ranks_the_known_order(trained, real, monkeypatch):
    rungs = dict(degradations.DEGRADATIONS)
    swapped = {**rungs, "real": rungs["shuffled"], "shuffled": rungs["real"]}  # the best and the worst exchanged
    monkeypatch.setattr(sample_quality, "DEGRADATIONS", swapped)
    assert passing(validate(trained, real)) == []
    same = dict.fromkeys(rungs, lambda images, *, generator: images.clone())
    monkeypatch.setattr(sample_quality, "DEGRADATIONS", same)  # identical sets: no order at all
    assert passing(validate(trained, real)) == []


def test_the_stage_refuses_a_precision_recall_k_larger_than_the_images_before_training(tmp_path, load_stage, capsys,
                                                                                         monkeypatch):
    from helpers import tiny_raw, write_params, write_prepared_file

    import signal

    stage = load_stage("classifier")
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # run_stage must not rewire pytest's SIGTERM
    import aebench.evaluation.classifier as judges  # where the stage's main imports it from, when it starts work

    monkeypatch.setattr(judges, "train_classifier", lambda *a, **k: pytest.fail("trained before the check"))
    write_params(tmp_path / "params.yaml", tiny_raw(evaluate__precision_recall_k=10))
    write_prepared_file(tmp_path / "mnist.npz", {"train": 50, "val": 10, "test": 30})
    args = ["--dataset", "mnist", "--data", str(tmp_path / "mnist.npz"), "--out", str(tmp_path / "out" / "mnist.pt"),
            "--metrics", str(tmp_path / "out" / "mnist.json"), "--runinfo", str(tmp_path / "runinfo"),
            "--params", str(tmp_path / "params.yaml")]
    with pytest.raises(SystemExit) as caught:
        stage.run_stage(lambda: stage.main(args))
    assert caught.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: evaluate.precision_recall_k: must be < 10, the images compared (the fewest of "
        "precision_recall_images 40, test_images 30, validation_images 10), got 10"]
    assert not (tmp_path / "out" / "mnist.pt").exists()


def test_the_classifier_stage_loads_without_sklearn_scipy_or_pandas():
    # Start-up: the stage trains a CNN; the k-NN and the report's libraries are the evaluate and report stages' cost.
    code = ("import sys; sys.path.insert(0, 'stages'); import classifier; "
            "sys.exit(sorted({'sklearn', 'scipy', 'pandas'} & set(sys.modules)) or None)")
    repo = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, timeout=120).returncode == 0


def test_the_second_judge_is_another_architecture_that_also_learns():
    assert set(ARCHITECTURES) == {"cnn", "mlp"}
    images, labels = synthetic_classes(600, seed=0)
    torch.manual_seed(0)
    mlp = train_classifier(images, labels, epochs=2, batch_size=32, lr=3e-3, architecture="mlp",
                           generator=torch.Generator().manual_seed(0))
    assert not any(isinstance(layer, torch.nn.Conv2d) for layer in mlp.modules())
    held_out, held_out_labels = synthetic_classes(200, seed=1)
    assert accuracy(mlp, held_out, held_out_labels) >= 0.95
    assert classify(mlp, held_out)[1].shape == (200, FEATURES)  # the same feature size as the judge
    with pytest.raises(ValueError, match="unknown judge architecture 'vit'"):
        SampleClassifier(architecture="vit")


def test_the_stage_saves_the_second_judge_it_ran_the_ladder_in(tmp_path, load_stage, monkeypatch):
    import json
    import signal

    from helpers import tiny_raw, write_params, write_prepared_file

    from aebench.data.prepared import load_prepared
    from aebench.evaluation.classifier import accuracy

    stage = load_stage("classifier")
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # run_stage must not rewire pytest's SIGTERM
    write_params(tmp_path / "params.yaml", tiny_raw())
    data = write_prepared_file(tmp_path / "mnist.npz", {"train": 120, "val": 60, "test": 60})
    out, metrics = tmp_path / "out" / "mnist.pt", tmp_path / "out" / "mnist.json"
    stage.run_stage(lambda: stage.main(["--dataset", "mnist", "--data", str(data), "--out", str(out), "--metrics",
                                        str(metrics), "--runinfo", str(tmp_path / "runinfo"),
                                        "--params", str(tmp_path / "params.yaml")]))
    record = json.loads(metrics.read_text())["second_judge"]
    second = load_second_judge(out)
    images, labels = load_prepared(data).split("test")
    assert second.architecture == record["architecture"] == "mlp"
    assert accuracy(second, images, labels) == record["test_accuracy"]  # the judge whose ladder is recorded
    assert load_classifier(out)[0].architecture == "cnn"


# --- recognisability by two judges --------------------------------------------------------------


def test_agreed_share_counts_images_both_judges_name_alike_each_with_probability_at_least_0_9():
    def probabilities(rows):  # (class, probability of it): the rest spread evenly over the other nine
        out = torch.empty(len(rows), 10)
        for index, (label, p) in enumerate(rows):
            out[index] = (1 - p) / 9
            out[index, label] = p
        return out

    first = probabilities([(3, 0.95), (3, 0.95), (3, 0.95), (3, 0.85)])
    second = probabilities([(3, 0.99), (4, 0.99), (3, 0.85), (3, 0.99)])
    # Only the first image: the second is named differently, the third and fourth are below 0.9 in one judge.
    assert agreed_share(first, second) == pytest.approx(0.25)
    assert agreed_share(second, first) == pytest.approx(0.25)


@pytest.fixture(scope="module")
def contrary(trained) -> SampleClassifier:
    """A judge as confident as `trained` on the same images, but naming each class as the next one."""
    images, labels = synthetic_classes(600, seed=0)
    torch.manual_seed(0)
    return train_classifier(images, (labels + 1) % 10, epochs=2, batch_size=32, lr=3e-3,
                            generator=torch.Generator().manual_seed(0))


def test_two_judges_agree_on_real_images_only_when_they_name_the_same_classes(trained, real, contrary):
    images, _ = synthetic_classes(200, seed=1)
    settings = dict(precision_recall_k=3, precision_recall_images=200, density_coverage_k=5)
    alone = judge_samples(trained, images, real, **settings)
    assert "agreed_share" not in alone  # without a partner there is nothing to agree with
    with_itself = judge_samples(trained, images, real, partner=trained, **settings)
    assert with_itself["agreed_share"] == pytest.approx(with_itself["confident_share"]) and with_itself[
        "agreed_share"] > 0.9
    # Each judge alone is confident on these images; together they agree on none.
    contrary_alone = judge_samples(contrary, images, reference(contrary, images), **settings)
    assert contrary_alone["confident_share"] > 0.9
    assert judge_samples(trained, images, real, partner=contrary, **settings)["agreed_share"] == 0.0


def test_the_ladder_holds_the_two_judges_agreement_only_when_given_a_partner(trained, real):
    assert "agreed_share" not in validate(trained, real)
    validation = validate(trained, real, partner=trained)
    check = validation["agreed_share"]
    assert list(check["values"]) == list(degradations.DEGRADATIONS) and check["higher_is_better"] is True
    assert check["values"]["real"] > check["values"]["shuffled"]
