"""DVC stage `evaluate@<dataset>-<variant>`: every test-set number of one variant at every latent size and seed.

Writes, per latent size D and seed s, the metrics JSON (keys documented in
aebench.evaluation.metrics, with the convergence test read from the model's
training history under `<history>`) under `<metrics>/<dataset>/<variant>/latent-<D>/seed-<s>.json`
and the latent arrays for the figures under `<latent>` (for the first seed of
params, also the pixels its figures draw: `seed-<s>.figures.npz`, see
aebench.evaluation.figure_pixels); then logs the numbers
to the MLflow run that trained that checkpoint. A checkpoint that is not the
model its output paths name, or was trained with other params, is refused
before any work. Without --dataset and --variant it evaluates every model of
the params file (a replicate profile).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import EvaluateParams, FigureParams, Params, load_params
from aebench.common.errors import CheckpointError
from aebench.common.files import check_writable, file_sha256, workspace_of
from aebench.common.layout import FIGURE_PIXELS_SUFFIX, Replicate, selected_keys
from aebench.common.parallel import Jobs
from aebench.common.runinfo import write_runinfo
from aebench.common.stage_item import add_item_argument, resolve_item
from aebench.common.runtime import resolve_device
from aebench.common.tracking import open_store, preflight, resolve_tracking_uri
from aebench.evaluation.convergence import Convergence, history_convergence
from aebench.training.progress import StageProgress


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_item_argument(parser)
    parser.add_argument("--dataset", help="evaluate this dataset only (default: every dataset of params)")
    parser.add_argument("--variant", help="evaluate this variant only (default: every variant of params)")
    parser.add_argument("--latent-dim", type=int, help="evaluate this latent size only (default: every one)")
    parser.add_argument("--prepared", type=Path, required=True, help="folder of prepared <dataset>.npz files")
    parser.add_argument("--models", type=Path, required=True, help="root folder of the checkpoints")
    parser.add_argument("--history", type=Path, required=True, help="root folder of the training histories")
    parser.add_argument("--classifiers", type=Path, required=True, help="folder of <dataset>.pt sample classifiers")
    parser.add_argument("--metrics", type=Path, required=True, help="root folder of the metrics JSONs to write")
    parser.add_argument("--latent", type=Path, required=True, help="root folder of the latent arrays to write")
    parser.add_argument("--runinfo", type=Path, required=True, help="root folder of run-info records (not hashed)")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return resolve_item(parser.parse_args(argv))


@dataclass(frozen=True)
class EvaluateJob:
    replicate: Replicate
    checkpoint: Path
    data: Path
    classifier: Path
    metrics: Path
    latent: Path
    figure_pixels: Path | None  # where the figures' pixels go: the first seed only
    settings: EvaluateParams
    figures: FigureParams
    convergence: Convergence
    device: str


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict
    seconds: float


def evaluate_job(job: EvaluateJob) -> EvaluateResult:
    """One replicate, start to finish (runs in a worker process): writes its latent arrays and metrics."""
    from aebench.common.files import write_json, write_npz
    from aebench.data.prepared import load_prepared
    from aebench.evaluation.classifier import load_classifier, load_second_judge
    from aebench.evaluation.runner import evaluate_replicate
    from aebench.evaluation.sample_quality import reference
    from aebench.models.checkpoint import load_model

    started = time.perf_counter()
    model = load_model(job.checkpoint).to(job.device)
    classifier, _ = load_classifier(job.classifier)
    classifier = classifier.to(job.device)
    data = load_prepared(job.data)
    second = load_second_judge(job.classifier).to(job.device)
    test_images = data.split("test")[0]
    real = reference(classifier, test_images, device=job.device)
    second_judge = (second, reference(second, test_images, device=job.device))

    def log(line: str) -> None:
        print(f"evaluate {job.replicate.name}: {line}", file=sys.stderr, flush=True)

    evaluation = evaluate_replicate(model, data, classifier, real, job.settings, job.figures,
                                    second_judge=second_judge, convergence=job.convergence, device=job.device,
                                    with_figure_pixels=job.figure_pixels is not None, log=log)
    write_npz(job.latent, **evaluation.latent)
    if job.figure_pixels is not None:
        write_npz(job.figure_pixels, **evaluation.figure_pixels)
    write_json(job.metrics, evaluation.metrics)  # last: its presence means the evaluation finished
    return EvaluateResult(metrics=evaluation.metrics, seconds=time.perf_counter() - started)


def summary(metrics: dict, seconds: float) -> str:
    test, latent, dims = metrics["test"], metrics["latent"], metrics["latent_dim"]
    parts = [f"recon_bce {test['recon_bce']:.2f}"]
    if test["nll_iw"] is not None:
        parts += [f"neg_elbo {test['neg_elbo']:.2f}", f"nll_iw {test['nll_iw']:.2f}", f"rate {test['rate']:.2f}"]
    parts += [
        f"active {latent['active_units']}/{dims}", f"used {latent['used_units']}/{dims}",
        f"probe {metrics['probe']['accuracy']:.3f}", f"precision {metrics['samples']['prior']['precision']:.3f}",
        "converged" if metrics["convergence"]["converged"] else f"NOT converged ({metrics['convergence']['reason']})",
        f"{seconds:.1f} s",
    ]
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    workspace = workspace_of(args.params)
    keys = selected_keys(params, dataset=args.dataset, variant=args.variant, latent_dim=args.latent_dim)
    replicates = [key.replicate(seed) for key in keys for seed in params.seeds]
    # Every input is checked before any computation, and nothing is written until all is computed: first what
    # needs no torch (histories, outputs, the MLflow server), so that a refused one costs well under a second...
    convergence = {r: model_convergence(r.path(args.history, ".csv"), params) for r in replicates}
    outputs = {r: (r.path(args.metrics, ".json"), r.path(args.latent, ".npz"),
                   r.path(args.latent, FIGURE_PIXELS_SUFFIX) if r.seed == params.seeds[0] else None)
               for r in replicates}
    runinfo = {r: r.path(args.runinfo / "evaluate", ".json") for r in replicates}
    check_writable([path for paths in outputs.values() for path in paths if path] + list(runinfo.values()))
    preflight(resolve_tracking_uri(params.mlflow.tracking_uri, workspace))
    # ...then the checkpoints, classifiers and data, which the model code reads: it loads torch (about 3 s).
    from aebench.data.prepared import load_prepared
    from aebench.evaluation.classifier import load_classifier, load_second_judge
    from aebench.evaluation.figure_pixels import check_figures_fit_data
    from aebench.evaluation.runner import check_settings_fit_data
    from aebench.evaluation.tracking import log_evaluation, training_run_id
    from aebench.models.autoencoder import model_config
    from aebench.models.checkpoint import check_checkpoint_config, load_model

    device = resolve_device(params.device)
    for replicate in replicates:
        checkpoint = replicate.path(args.models, ".pt")
        check_checkpoint_config(checkpoint, model_config(params, replicate))
        load_model(checkpoint)  # its weights too: a damaged file must stop the stage before any output
    for dataset in {key.dataset for key in keys}:
        classifier = args.classifiers / f"{dataset}.pt"
        if not classifier.is_file():
            raise CheckpointError(f"{classifier}: classifier not found (run `dvc repro classifier@{dataset}`)")
        judged = load_classifier(classifier)[1].get("dataset")
        if judged != dataset:
            raise CheckpointError(f"{classifier}: a classifier of {judged!r}, but it would judge {dataset!r} samples")
        load_second_judge(classifier)  # a file from before the second judge was saved: refused before any work
    for dataset in {key.dataset for key in keys}:
        data = load_prepared(args.prepared / f"{dataset}.npz")
        check_settings_fit_data(params.evaluate, data)
        check_figures_fit_data(params.figures, len(data.labels["test"]))
    jobs = [
        EvaluateJob(
            replicate=r, checkpoint=r.path(args.models, ".pt"), data=args.prepared / f"{r.key.dataset}.npz",
            classifier=args.classifiers / f"{r.key.dataset}.pt", metrics=outputs[r][0], latent=outputs[r][1],
            figure_pixels=outputs[r][2], settings=params.evaluate, figures=params.figures,
            convergence=convergence[r], device=str(device),
        )
        for r in replicates
    ]

    progress = StageProgress(total=len(jobs), label="evaluate")
    with Jobs(evaluate_job, jobs, device_type=device.type, name=lambda job: job.replicate.name) as completed:
        # While the workers start: the MLflow store, and the run that trained each checkpoint.
        store = open_store(params.mlflow.tracking_uri, params.mlflow.experiment, workspace=workspace)
        sha256 = {job.replicate: file_sha256(job.checkpoint) for job in jobs}
        run_ids = {job.replicate: training_run_id(store, job.replicate.name, sha256[job.replicate]) for job in jobs}
        for job, result in completed:
            name, run_id = job.replicate.name, run_ids[job.replicate]
            if run_id is None:
                print(f"warning: evaluate {name}: no MLflow run in {store.uri} trained {job.checkpoint} (sha256 "
                      f"{sha256[job.replicate][:12]}); its numbers are in {job.metrics} only", file=sys.stderr)
            else:
                log_evaluation(store, run_id, result.metrics, metrics_file=job.metrics)
            write_runinfo(runinfo[job.replicate], {
                "stage": "evaluate", "model": name, "mlflow_run_id": run_id, "seconds": result.seconds,
                "device": job.device, "checkpoint_sha256": sha256[job.replicate],
            })
            print(f"{name}: {summary(result.metrics, result.seconds)} -> {job.metrics}", file=sys.stderr)
            progress.job_done(name)


def model_convergence(history: Path, params: Params) -> Convergence:
    """The convergence test of one model, from its history; a one-line error naming a missing or bad file."""
    try:
        return history_convergence(history, params)
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"{history}: not a training history of this code ({err})") from None


if __name__ == "__main__":
    run_stage(main)
