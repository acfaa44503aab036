"""DVC stage `figures@<dataset>-<model>-<latent_dim>`: every per-model PNG of the report.

Reads the checkpoint, the test split, the training history, the metrics and the
latent means; writes one folder of PNGs (`aebench.reporting.catalog` lists
them). The folder appears complete or not at all.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import atomic_path
from aebench.data import fixed_targets, load_prepared
from aebench.models import load_model
from aebench.reporting.figures import FigureInputs, draw_model_figures
from aebench.reporting.inputs import ModelKey, check_identity, read_history, read_latent, read_metrics


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="the trained model (.pt)")
    parser.add_argument("--data", required=True, type=Path, help="the prepared dataset (.npz)")
    parser.add_argument("--history", required=True, type=Path, help="the per-epoch training history (.csv)")
    parser.add_argument("--metrics", required=True, type=Path, help="the model's metrics (.json)")
    parser.add_argument("--latent", required=True, type=Path, help="the latent means (.npz)")
    parser.add_argument("--out", required=True, type=Path, help="the folder of PNGs to write")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    model = load_model(args.checkpoint)
    key = ModelKey(model.config["dataset"], model.kind, model.latent_dim)
    metrics = read_metrics(args.metrics)
    check_identity(args.metrics, metrics, key)
    latent = read_latent(args.latent)
    check_identity(args.latent, {"dataset": key.dataset, "model": key.model, "latent_dim": latent.mu.shape[1]}, key)
    test_images, test_labels = load_prepared(args.data).split("test")
    # The model encodes the test images as the evaluation scores them (binarized once when trained binarized).
    targets = fixed_targets(test_images, model.config["data"]["binarize"], seed=params.seed)
    inputs = FigureInputs(
        model=model,
        dataset=key.dataset,
        test_images=targets,
        test_labels=test_labels,
        history=read_history(args.history),
        latent=latent,
        figure_params=params.figures,
        au_threshold=params.evaluate.au_threshold,
        seed=params.seed,
    )
    with atomic_path(args.out) as folder:
        written = draw_model_figures(inputs, folder)
    seconds = time.perf_counter() - started
    print(f"[figures {key.stem}] wrote {len(written)} PNGs to {args.out} in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
