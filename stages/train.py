"""DVC stage `train@<dataset>-<variant>`: train one variant at every latent size and seed.

Writes, per latent size D and seed s, `<models>/<dataset>/<variant>/latent-<D>/seed-<s>.pt`
and the per-epoch history beside it under `<history>`; wall times and the
MLflow run id go to `<runinfo>` (not hashed by DVC). Without --dataset and
--variant it trains every model of the params file (a replicate profile).
On the CPU the replicates run side by side, one process per core
(aebench.common.parallel); on a GPU, one after another in this process, the
seeds of one model (dataset, variant, latent size) trained together as one
stacked model (aebench.training.stacked), unless its network has dropout.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import check_writable, file_sha256, workspace_of
from aebench.common.layout import ModelKey, Replicate, selected_keys
from aebench.common.parallel import Jobs
from aebench.common.runinfo import write_runinfo
from aebench.common.stage_item import add_item_argument, resolve_item
from aebench.common.runtime import resolve_device
from aebench.common.tracking import REPLICATE_TAG, OpenRuns, git_commit, open_store, preflight, resolve_tracking_uri
from aebench.training.progress import StageProgress

if TYPE_CHECKING:
    from aebench.training.trainer import TrainingResult


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_item_argument(parser)
    parser.add_argument("--dataset", help="train this dataset only (default: every dataset of params)")
    parser.add_argument("--variant", help="train this variant only (default: every variant of params)")
    parser.add_argument("--latent-dim", type=int, help="train this latent size only (default: every one)")
    parser.add_argument("--prepared", type=Path, required=True, help="folder of prepared <dataset>.npz files")
    parser.add_argument("--models", type=Path, required=True, help="root folder of the checkpoints")
    parser.add_argument("--history", type=Path, required=True, help="root folder of the per-epoch CSVs")
    parser.add_argument("--resume", type=Path, required=True, help="root folder of resume states (outside DVC outs)")
    parser.add_argument("--runinfo", type=Path, required=True, help="root folder of run-info records (not hashed)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return resolve_item(parser.parse_args(argv))


@dataclass(frozen=True)
class TrainJob:
    replicate: Replicate
    config: dict
    data: Path
    data_sha256: str
    checkpoint: Path
    history: Path
    resume: Path
    device: str


def train_job(job: TrainJob) -> TrainingResult:
    """One replicate, start to finish (runs in a worker process)."""
    import torch

    from aebench.common.runtime import seed_everything
    from aebench.data.prepared import load_prepared
    from aebench.models.autoencoder import build_model
    from aebench.training.trainer import TrainingPaths, train_replicate

    seed_everything(job.replicate.seed)  # the initial weights
    model = build_model(job.config)
    data = load_prepared(job.data)
    return train_replicate(
        model,
        train_images=data.split("train")[0],
        val_images=data.split("val")[0],
        paths=TrainingPaths(checkpoint=job.checkpoint, history=job.history, resume=job.resume),
        device=torch.device(job.device),
        data_fingerprint=job.data_sha256,
        label=job.replicate.name,
    )


def job_groups(jobs: list[TrainJob], *, device_type: str) -> list[tuple[TrainJob, ...]]:
    """The jobs as `train_group` takes them: one by one on the CPU (a process per core); on a GPU the seeds of
    one model (one dataset, variant and latent size: identical shapes) together, to train stacked."""
    if device_type == "cpu":
        return [(job,) for job in jobs]
    groups: dict[ModelKey, list[TrainJob]] = {}
    for job in jobs:
        groups.setdefault(job.replicate.key, []).append(job)
    return [tuple(group) for group in groups.values()]


def train_group(group: tuple[TrainJob, ...]) -> list[TrainingResult]:
    """The group's replicates, one result each: trained stacked when there are several and their network draws
    no dropout (`aebench.training.stacked`), else one by one as `train_job`."""
    import torch

    from aebench.common.runtime import seed_everything
    from aebench.data.prepared import load_prepared
    from aebench.models.autoencoder import build_model
    from aebench.training.stacked import stackable, train_stacked
    from aebench.training.trainer import TrainingPaths

    if len(group) == 1:
        return [train_job(group[0])]
    models = []
    for job in group:
        seed_everything(job.replicate.seed)  # each model's initial weights, as train_job draws them
        models.append(build_model(job.config))
    if not stackable(models[0]):  # dropout draws from the global RNG: each model trained as train_job seeds it
        return [train_job(job) for job in group]
    data = load_prepared(group[0].data)
    return train_stacked(
        models,
        train_images=data.split("train")[0],
        val_images=data.split("val")[0],
        paths=[TrainingPaths(checkpoint=job.checkpoint, history=job.history, resume=job.resume) for job in group],
        device=torch.device(group[0].device),
        labels=[job.replicate.name for job in group],
        data_fingerprint=group[0].data_sha256,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    workspace = workspace_of(args.params)
    keys = selected_keys(params, dataset=args.dataset, variant=args.variant, latent_dim=args.latent_dim)
    replicates = [key.replicate(seed) for key in keys for seed in params.seeds]
    # Everything that can be checked is checked before any training: first what needs no torch (inputs, outputs,
    # the MLflow server), so that a refused one costs the stage well under a second...
    data_sha256 = {}
    for dataset in {key.dataset for key in keys}:
        path = args.prepared / f"{dataset}.npz"
        if not path.is_file():
            raise FileNotFoundError(2, "prepared data not found (run `dvc repro prepare`)", str(path))
        data_sha256[dataset] = file_sha256(path)
    outputs = {r: (r.path(args.models, ".pt"), r.path(args.history, ".csv"), r.path(args.resume, ".pt"))
               for r in replicates}
    runinfo = {r: r.path(args.runinfo / "train", ".json") for r in replicates}
    check_writable([path for paths in outputs.values() for path in paths] + list(runinfo.values()))
    preflight(resolve_tracking_uri(params.mlflow.tracking_uri, workspace))
    # ...then each model's config, which the model code checks: it loads torch (about 3 s).
    from aebench.models.autoencoder import model_config
    from aebench.training.tracking import finish_training_run, open_training_run
    from aebench.training.trainer import resume_key

    device = resolve_device(params.device)
    jobs = [
        TrainJob(
            replicate=r, config=model_config(params, r), data=args.prepared / f"{r.key.dataset}.npz",
            data_sha256=data_sha256[r.key.dataset], checkpoint=outputs[r][0], history=outputs[r][1],
            resume=outputs[r][2], device=str(device),
        )
        for r in replicates
    ]

    progress = StageProgress(total=len(jobs), label="train")
    groups = job_groups(jobs, device_type=device.type)
    # Leaving the block ends every run its job did not finish: KILLED on Ctrl-C or SIGTERM, FAILED otherwise.
    with Jobs(train_group, groups, device_type=device.type, name=group_name) as completed, \
            OpenRuns() as open_runs:
        # While the workers start: the MLflow store, and one run per replicate.
        store = open_store(params.mlflow.tracking_uri, params.mlflow.experiment, workspace=workspace)
        commit = git_commit(workspace)
        runs = {
            job.replicate: open_runs.add(open_training_run(
                store, run_name=job.replicate.name, config=job.config,
                resume_key=resume_key(job.config, job.data_sha256), tags=run_tags(job, commit, args.params),
            ))
            for job in jobs
        }
        for job, result in ((job, result) for group, results in completed for job, result in zip(group, results)):
            tracked = runs[job.replicate]
            finish_training_run(tracked, result, checkpoint=job.checkpoint)
            write_runinfo(runinfo[job.replicate], {
                "stage": "train", "model": job.replicate.name, "mlflow_run_id": tracked.run_id, "device": job.device,
                "epoch_seconds": result.epoch_seconds, "seconds": sum(result.epoch_seconds),
                "checkpoint_sha256": result.checkpoint_sha256, "tracking_uri": store.uri, "git_commit": commit,
            })
            last = result.history[-1]
            print(f"{job.replicate.name}: {len(result.history)} epochs, val_loss {last['val_loss']:.2f} "
                  f"nats/image, {sum(result.epoch_seconds):.1f} s -> {job.checkpoint}", file=sys.stderr)
            progress.job_done(job.replicate.name)


def group_name(group: tuple[TrainJob, ...]) -> str:
    return ", ".join(job.replicate.name for job in group)


def run_tags(job: TrainJob, commit: str, params_file: Path) -> dict[str, str]:
    """The run's tags: what it is (the runs table's columns), and where it came from."""
    key = job.replicate.key
    return {
        "dataset": key.dataset, "variant": key.variant, "latent_dim": str(key.latent_dim),
        "seed": str(job.replicate.seed), "objective": job.config["variant"]["objective"],
        REPLICATE_TAG: job.replicate.name, "aebench.params": str(params_file),
        "mlflow.source.git.commit": commit, "git_commit": commit,
    }


if __name__ == "__main__":
    run_stage(main)
