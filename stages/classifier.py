"""DVC stage `classifier@<dataset>`: the small CNN that judges generated samples, and a check of the judge.

Trained on the train split, scored on the test split. It then validates every
sample-quality metric on the validation ladder (real validation images and
controlled copies of them: `aebench.evaluation.degradations`) and records which ones rank
it in the required order; the report decides sample quality only with those.
A second judge of another architecture (SECOND_JUDGE) is trained the same way
and the ladder is run in its features too, to tell whether a metric's verdict
belongs to the metric or to the feature space; it is saved beside the judge,
in the same file, and the evaluate stage judges samples in both. Writes the
weights and `metrics/classifiers/<dataset>.json`.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import check_writable, write_json
from aebench.common.parallel import one_thread
from aebench.common.runinfo import write_runinfo
from aebench.common.runtime import generator, resolve_device, seed_everything
from aebench.common.stage_item import add_item_argument, resolve_item
from aebench.data.official import dataset_spec

if TYPE_CHECKING:
    from aebench.evaluation.classifier import SampleClassifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_item_argument(parser)
    parser.add_argument("--dataset", help="mnist or fashion_mnist (or --item dataset under dvc repro)")
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz of the dataset")
    parser.add_argument("--out", type=Path, required=True, help="classifier weights to write (.pt)")
    parser.add_argument("--metrics", type=Path, required=True, help="its metrics JSON to write")
    parser.add_argument("--runinfo", type=Path, required=True, help="root folder of run-info records (not hashed)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = resolve_item(parser.parse_args(argv))
    if args.dataset is None:
        parser.error("--dataset is required (or --item dataset under dvc repro)")
    return args


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    spec = dataset_spec(args.dataset)
    settings = params.classifier
    runinfo = args.runinfo / "classifier" / f"{spec.name}.json"
    check_writable([args.out, args.metrics, runinfo])
    # The judges' code loads torch (about 3 s): only now, so that a refused input above costs under a second.
    from aebench.data.prepared import load_prepared
    from aebench.evaluation.classifier import (JUDGE, SECOND_JUDGE, TARGET_ACCURACY, accuracy, save_classifier,
                                               train_classifier)
    from aebench.evaluation.sample_quality import check_precision_recall_k, reference, validate_sample_metrics

    device = resolve_device(params.device)
    one_thread()  # as every job: the judges' bytes must not depend on the core count or on what ran before
    data = load_prepared(args.data)
    train_images, train_labels = data.split("train")
    test_images, test_labels = data.split("test")
    # The degradation check below compares validation images with the test images, after the training.
    compared = params.evaluate
    check_precision_recall_k(compared.precision_recall_k, precision_recall_images=compared.precision_recall_images,
                             test_images=len(test_images), validation_images=len(data.labels["val"]))

    stage = f"classifier@{spec.name}"

    def reporter(architecture: str):
        def report(epoch: int, loss: float, seconds: float) -> None:
            print(f"{stage}: {architecture} epoch {epoch}/{settings.epochs} loss {loss:.4f} ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)
        return report

    held_out = data.split("val")[0]

    def trained(architecture: str, stream: str) -> SampleClassifier:
        seed_everything(settings.seed, f"{stream}-init")
        return train_classifier(
            train_images, train_labels, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
            generator=generator(settings.seed, f"{stream}-data"), architecture=architecture, device=device,
            report=reporter(architecture),
        )

    def judged(model: SampleClassifier, architecture: str, partner: SampleClassifier | None) -> dict:
        """Score a judge and run the ladder in its features (with `partner`: the two judges' agreement too)."""
        real = reference(model, test_images, device=device)
        validation = validate_sample_metrics(
            model, held_out, real, precision_recall_k=params.evaluate.precision_recall_k,
            precision_recall_images=params.evaluate.precision_recall_images,
            density_coverage_k=params.evaluate.density_coverage_k,
            generator=generator(settings.seed, "degradations"), partner=partner, device=device,
        )
        return {"architecture": architecture,
                "test_accuracy": accuracy(model, test_images, test_labels, device=device),
                "real_mean_confidence": real.mean_confidence, "sample_metric_validation": validation}

    # Both judges first: the judge's ladder includes their agreement (`agreed_share`), which needs the second.
    model = trained(JUDGE, "classifier")
    second_model = trained(SECOND_JUDGE, "second-judge")
    trained_seconds = time.perf_counter() - started
    judge = judged(model, JUDGE, partner=second_model)
    second = judged(second_model, SECOND_JUDGE, partner=None)
    ladder_seconds = time.perf_counter() - started - trained_seconds
    test_accuracy = judge["test_accuracy"]
    config = {"dataset": spec.name, "seed": settings.seed, "classifier": params.to_dict()["classifier"]}
    save_classifier(args.out, model.cpu(), config=config, test_accuracy=test_accuracy, second=second_model.cpu())
    write_json(args.metrics, {
        "dataset": spec.name,
        **judge,
        "test_images": len(test_images),
        "train_images": len(train_images),
        "epochs": settings.epochs,
        "second_judge": second,
    })
    seconds = time.perf_counter() - started
    write_runinfo(runinfo, {"stage": "classifier", "dataset": spec.name, "seconds": seconds,
                            "training_seconds": trained_seconds,
                            "ladder_seconds": ladder_seconds, "device": str(device)})
    for record in (judge, second):
        passed = [name for name, check in record["sample_metric_validation"].items() if check["passes"]]
        print(f"{stage}: {record['architecture']} judge: test accuracy {record['test_accuracy']:.4f}; sample "
              f"metrics that pass the ladder: {', '.join(passed) or 'none'}", file=sys.stderr)
    print(f"{stage}: {seconds:.1f} s, of which training {trained_seconds:.1f} s and the ladders "
          f"{ladder_seconds:.1f} s -> {args.out}",
          file=sys.stderr)
    target = TARGET_ACCURACY[spec.name]
    if test_accuracy < target:
        print(f"warning: {stage} test accuracy {test_accuracy:.4f} is below the {target:.3f} a trusted judge needs "
              "(raise classifier.epochs)", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
