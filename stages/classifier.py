"""DVC stage `classifier@<dataset>`: train the small CNN that judges generated samples.

Trained on the train split (the validation split stays unused), scored on the
test split; writes the weights and `metrics/classifiers/<dataset>.json`.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import DatasetName, load_params
from aebench.common.errors import ConfigError
from aebench.common.files import write_json
from aebench.common.runtime import resolve_device, seed_everything
from aebench.data import load_prepared
from aebench.evaluation.classifier import TARGET_ACCURACY, accuracy, save_classifier, train_classifier


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="mnist or fashion_mnist")
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz of the dataset")
    parser.add_argument("--out", type=Path, required=True, help="classifier weights to write (.pt)")
    parser.add_argument("--metrics", type=Path, required=True, help="its metrics JSON to write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    if args.dataset not in typing.get_args(DatasetName):
        raise ConfigError(f"--dataset: unknown dataset {args.dataset!r} (expected one of {', '.join(typing.get_args(DatasetName))})")
    settings = params.classifier
    device = resolve_device(params.device)
    data = load_prepared(args.data)
    train_images, train_labels = data.split("train")
    test_images, test_labels = data.split("test")

    stage = f"classifier@{args.dataset}"
    generator = seed_everything(params.seed)  # initial weights from the global RNG, batch order from `generator`

    def report(epoch: int, loss: float, seconds: float) -> None:
        print(f"{stage}: epoch {epoch}/{settings.epochs} loss {loss:.4f} ({seconds:.1f} s)", file=sys.stderr, flush=True)

    model = train_classifier(
        train_images, train_labels, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
        generator=generator, device=device, report=report,
    )
    test_accuracy = accuracy(model, test_images, test_labels, device=device)
    config = {"dataset": args.dataset, "seed": params.seed, "classifier": params.to_dict()["classifier"]}
    save_classifier(args.out, model.cpu(), config=config, test_accuracy=test_accuracy)
    seconds = time.perf_counter() - started
    write_json(
        args.metrics,
        {
            "dataset": args.dataset,
            "test_accuracy": test_accuracy,
            "test_images": len(test_images),
            "train_images": len(train_images),
            "epochs": settings.epochs,
            "seconds": seconds,
        },
    )
    print(f"{stage}: test accuracy {test_accuracy:.4f} in {seconds:.1f} s -> {args.out}")
    target = TARGET_ACCURACY[args.dataset]
    if test_accuracy < target:
        print(f"warning: {stage} test accuracy {test_accuracy:.4f} is below the {target:.3f} a trusted judge needs "
              "(raise classifier.epochs)", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
