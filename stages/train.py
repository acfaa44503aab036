"""DVC stage `train@<dataset>-<model>-<latent_dim>`: train one model, write its checkpoint and history."""

from __future__ import annotations

import argparse
import hashlib
import signal
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.runtime import resolve_device, seed_everything
from aebench.common.tracking import RunSpec, git_commit, resolve_tracking_uri
from aebench.data import load_prepared
from aebench.models import build_model, resolved_config
from aebench.training import TrainingPaths, train_model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, help="ae, vae or emae")
    parser.add_argument("--latent-dim", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True, help="prepared .npz of the dataset")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--history", type=Path, required=True, help="per-epoch CSV")
    parser.add_argument("--resume", type=Path, required=True, help="per-epoch resume state, outside the DVC outs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return parser.parse_args(argv)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # DVC and job runners stop a stage with SIGTERM: make it unwind like Ctrl-C, so the
    # MLflow run is closed (KILLED) instead of being left RUNNING.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    params = load_params(args.params)
    config = resolved_config(params, dataset=args.dataset, model=args.model, latent_dim=args.latent_dim)
    device = resolve_device(params.device)
    seed_everything(params.seed)  # the initial weights
    model = build_model(config)  # refuses an unknown model or latent size before any data is read

    data = load_prepared(args.data)
    train_images, _ = data.split("train")
    val_images, _ = data.split("val")

    stage = f"train@{args.dataset}-{args.model}-{args.latent_dim}"
    commit = git_commit()
    run = RunSpec(
        tracking_uri=resolve_tracking_uri(params.mlflow.tracking_uri),
        experiment=params.mlflow.experiment,
        run_name=f"{args.dataset}-{args.model}-{args.latent_dim}",
        tags={
            "dataset": args.dataset,
            "model": args.model,
            "latent_dim": str(args.latent_dim),
            "dvc_stage": stage,
            "mlflow.source.git.commit": commit,
            "git_commit": commit,
        },
    )
    paths = TrainingPaths(checkpoint=args.checkpoint, history=args.history, resume=args.resume)
    history = train_model(
        model, train_images=train_images, val_images=val_images, paths=paths, device=device,
        run=run, data_fingerprint=file_sha256(args.data),
    )
    last = history[-1]
    print(f"{stage}: {len(history)} epochs, val_loss {last['val_loss']:.2f} nats/image -> {args.checkpoint}")


if __name__ == "__main__":
    run_stage(main)
