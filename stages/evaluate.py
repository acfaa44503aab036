"""DVC stage `evaluate@<dataset>-<model>-<latent_dim>`: every test-set number of one trained model.

Writes the metrics JSON (keys documented in aebench.evaluation.metrics), the
posterior means of the first test images for the figures, and the per-dimension
activity as CSV for `dvc plots`; then logs the numbers to the model's MLflow run
(a missing run is a warning: the files are the record DVC tracks).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.errors import CheckpointError
from aebench.common.files import atomic_path, write_json, write_text
from aebench.common.runtime import resolve_device, seed_everything
from aebench.common.tracking import resolve_tracking_uri
from aebench.data import load_prepared
from aebench.evaluation.classifier import load_classifier
from aebench.evaluation.runner import evaluate_model
from aebench.evaluation.tracking import log_evaluation
from aebench.models import load_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="trained model (.pt)")
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz of its dataset")
    parser.add_argument("--classifier", type=Path, required=True, help="the dataset's sample classifier (.pt)")
    parser.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--latent", type=Path, required=True, help="posterior means .npz to write")
    parser.add_argument("--activity", type=Path, required=True, help="per-dimension activity CSV to write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def write_latent(path: Path, mu: np.ndarray, labels: np.ndarray, activity: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a bare name
            np.savez(handle, mu=mu, labels=labels, activity=activity)


def activity_csv(activity: np.ndarray) -> str:
    rows = [f"{dimension},{value!r}" for dimension, value in enumerate(activity.tolist())]
    return "\n".join(["dimension,activity", *rows]) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    device = resolve_device(params.device)
    # Every input is checked before any computation, and nothing is written until all is computed.
    model = load_model(args.checkpoint)
    classifier, classifier_config = load_classifier(args.classifier)
    dataset = model.config["dataset"]
    if classifier_config.get("dataset") != dataset:
        raise CheckpointError(
            f"{args.classifier}: classifier of {classifier_config.get('dataset')!r}, "
            f"but {args.checkpoint} is a {dataset!r} model"
        )
    data = load_prepared(args.data)

    stage = f"evaluate@{dataset}-{model.kind}-{model.latent_dim}"
    seed_everything(params.seed)

    def log(line: str) -> None:
        print(f"{stage}: {line}", file=sys.stderr, flush=True)

    evaluation = evaluate_model(
        model.to(device), data, classifier.to(device), params.evaluate, seed=params.seed, device=device, log=log
    )
    write_latent(args.latent, evaluation.latent_mu, evaluation.latent_labels, evaluation.activity)
    write_text(args.activity, activity_csv(evaluation.activity))
    write_json(args.metrics, evaluation.metrics)  # last: its presence means the evaluation finished

    warning = log_evaluation(
        resolve_tracking_uri(params.mlflow.tracking_uri), model.mlflow_run_id, evaluation.metrics, metrics_file=args.metrics
    )
    if warning:
        print(f"warning: {stage}: numbers not logged to MLflow: {warning}", file=sys.stderr)
    metrics = evaluation.metrics
    summary = [f"recon_bce {metrics['test']['recon_bce']:.2f}"]
    if metrics["test"]["nll_iw"] is not None:
        summary += [f"neg_elbo {metrics['test']['neg_elbo']:.2f}", f"nll_iw {metrics['test']['nll_iw']:.2f}"]
    summary += [
        f"active {metrics['latent']['active_units']}/{model.latent_dim}",
        f"probe {metrics['probe']['accuracy']:.3f}",
        f"FD {metrics['samples']['frechet_distance']:.2f}",
        f"{metrics['timing']['seconds']:.1f} s",
    ]
    print(f"{stage}: {', '.join(summary)} -> {args.metrics}")


if __name__ == "__main__":
    run_stage(main)
