"""The trainer (determinism, resume after a kill, NaN refusal, history, binarization) and the train stage
on a tiny workspace (layout, one MLflow run per replicate, its one-line errors before any training)."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import (
    REPO,
    images,
    make_model,
    seed_store,
    tiny_config,
    tiny_raw,
    write_params,
    write_prepared_file,
)

from aebench.common.config import flatten, params_from_dict
from aebench.common.errors import TrainingDiverged
from aebench.common.layout import selected_keys
from aebench.data.binarize import fixed_targets
from aebench.data.prepared import load_prepared
from aebench.models.autoencoder import model_config
from aebench.models.checkpoint import load_model
from aebench.common.runtime import generator
from aebench.evaluation.usage import decoder_usage
from aebench.training.progress import StageProgress, duration
from aebench.training.trainer import (
    USAGE_IMAGES,
    TrainingPaths,
    evaluate_terms,
    load_resume,
    resume_key,
    train_replicate,
)

CPU = torch.device("cpu")
TRAIN_IMAGES, BATCH = 128, 64
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH  # 2


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    return images(TRAIN_IMAGES, seed=123), images(32, seed=124)  # train, val


def paths_in(folder: Path) -> TrainingPaths:
    return TrainingPaths(
        checkpoint=folder / "model.pt", history=folder / "history.csv", resume=folder / "resume" / "state.pt"
    )


def run_training(config, data, folder: Path, *, model=None, stream=None, fingerprint: str = ""):
    paths = paths_in(folder)
    result = train_replicate(
        model or make_model(config), train_images=data[0], val_images=data[1], paths=paths, device=CPU,
        data_fingerprint=fingerprint, stream=stream or io.StringIO(),
    )
    return result, paths


def csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


class InterruptAt:
    """Wraps a model's loss so that training call number `call` raises `error` (a kill), or gives NaN."""

    def __init__(self, model, *, call: int, error: type[BaseException] | None = None):
        self.model, self.call, self.error, self.calls = model, call, error, 0
        self.original = model.loss_terms
        model.loss_terms = self

    def __call__(self, x, *, generator=None):
        if self.model.training:
            self.calls += 1
            if self.calls == self.call:
                if self.error is not None:
                    raise self.error()
                terms = self.original(x, generator=generator)
                return {**terms, "loss": terms["loss"] * float("nan")}
        return self.original(x, generator=generator)


class Spy:
    """Records the batches a model trains on."""

    def __init__(self, model):
        self.model, self.batches = model, []
        self.original = model.loss_terms
        model.loss_terms = self

    def __call__(self, x, *, generator=None):
        if self.model.training:
            self.batches.append(x.clone())
        return self.original(x, generator=generator)


# --- the trainer ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "terms"),
    [("ae", ["loss", "recon"]), ("vae", ["loss", "recon", "kl", "mu_penalty", "variance_penalty"])],
)
def test_history_lists_every_term_and_each_dimensions_activity_and_usage_and_no_wall_time(
    data, tmp_path, variant, terms
):
    result, paths = run_training(tiny_config(variant, latent_dim=2), data, tmp_path)
    rows = csv_rows(paths.history)
    assert list(rows[0]) == [
        "epoch", *[f"train_{t}" for t in terms], *[f"val_{t}" for t in terms], "val_activity_000", "val_activity_001",
        "val_usage_000", "val_usage_001",
    ]
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert [{k: float(v) for k, v in row.items()} for row in rows] == result.history
    assert len(result.epoch_seconds) == 2 and all(s > 0 for s in result.epoch_seconds)
    assert result.checkpoint_sha256 == hashlib.sha256(paths.checkpoint.read_bytes()).hexdigest()
    assert load_model(paths.checkpoint).config == tiny_config(variant, latent_dim=2)
    assert not paths.resume.exists()  # removed once the final checkpoint exists


@pytest.mark.parametrize(("variant", "regulariser"), [("vae", ["kl"]), ("emae", ["mu_penalty"])])
def test_the_loss_is_the_sum_of_the_weighed_terms(data, tmp_path, variant, regulariser):
    result, _ = run_training(tiny_config(variant), data, tmp_path)
    for row in result.history:
        for split in ("train", "val"):
            parts = row[f"{split}_recon"] + sum(row[f"{split}_{t}"] for t in regulariser)
            assert row[f"{split}_loss"] == pytest.approx(parts, rel=1e-6)


def test_same_config_gives_identical_bytes_and_another_seed_does_not(data, tmp_path):
    config = tiny_config("vae")
    first, paths_a = run_training(config, data, tmp_path / "a")
    _, paths_b = run_training(config, data, tmp_path / "b")
    assert paths_a.checkpoint.read_bytes() == paths_b.checkpoint.read_bytes()
    assert paths_a.history.read_bytes() == paths_b.history.read_bytes()
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]  # it did learn something
    _, paths_c = run_training(tiny_config("vae", seed=1), data, tmp_path / "c")
    assert paths_c.history.read_bytes() != paths_a.history.read_bytes()


def test_the_last_epochs_validation_numbers_are_the_final_models(data, tmp_path):
    config = tiny_config("vae", latent_dim=3)
    result, paths = run_training(config, data, tmp_path)
    model = load_model(paths.checkpoint)
    targets = fixed_targets(data[1], "dynamic", seed=0, split="val")
    with torch.no_grad():
        variances = model.encode(targets)[0].double().var(dim=0)
    last = result.history[-1]
    assert [last[f"val_activity_{u:03d}"] for u in range(3)] == pytest.approx(variances.tolist(), rel=1e-6)
    assert last["val_loss"] == pytest.approx(evaluate_terms(model, targets, seed=0)["loss"], rel=1e-6)
    with torch.no_grad():  # usage as evaluation measures it, on the same images with the same pairing
        usage = decoder_usage(model.decode_images, model.encode(targets[:USAGE_IMAGES])[0],
                              generator=generator(0, "validation-usage"))
    assert [last[f"val_usage_{u:03d}"] for u in range(3)] == pytest.approx(usage.tolist(), rel=1e-6)
    assert all(last[f"val_usage_{u:03d}"] > 0 for u in range(3))  # a trained decoder reads every code dimension


@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_resuming_after_a_kill_equals_an_uninterrupted_run(data, tmp_path, variant):
    config = tiny_config(variant)
    _, straight = run_training(config, data, tmp_path / "straight")

    model = make_model(config)
    InterruptAt(model, call=STEPS_PER_EPOCH + 1, error=KeyboardInterrupt)  # Ctrl-C at the first step of epoch 2
    with pytest.raises(KeyboardInterrupt):
        run_training(config, data, tmp_path / "killed", model=model)
    killed = paths_in(tmp_path / "killed")
    assert not killed.checkpoint.exists()
    assert killed.resume.is_file()
    assert not killed.history.exists()  # nothing in history/ for `dvc plots` to draw as a result
    assert [row["epoch"] for row in csv_rows(killed.partial_history)] == ["1"]  # kept with the resume state

    stream = io.StringIO()
    resumed, paths = run_training(config, data, tmp_path / "killed", stream=stream)  # a new process would do this
    assert f"resuming from {killed.resume} after epoch 1" in stream.getvalue()
    assert len(resumed.epoch_seconds) == 1  # only epoch 2 was trained here
    assert paths.checkpoint.read_bytes() == straight.checkpoint.read_bytes()
    assert paths.history.read_bytes() == straight.history.read_bytes()
    assert not paths.resume.exists() and not paths.partial_history.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("variant", ["ae", "vae"])
def test_on_a_gpu_reruns_and_resumes_give_identical_bytes(data, tmp_path, variant):
    """On CUDA too (fused Adam, the noise generator on the device): a rerun, and a resume, give the same bytes."""
    gpu = torch.device("cuda")
    config = tiny_config(variant, train__epochs=3)

    def train(folder: Path, model=None) -> TrainingPaths:
        paths = paths_in(folder)
        train_replicate(model or make_model(config), train_images=data[0], val_images=data[1], paths=paths,
                        device=gpu, stream=io.StringIO())
        return paths

    first, second = train(tmp_path / "a"), train(tmp_path / "b")
    assert first.checkpoint.read_bytes() == second.checkpoint.read_bytes()
    model = make_model(config)
    InterruptAt(model, call=STEPS_PER_EPOCH + 1, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "killed", model=model)
    resumed = train(tmp_path / "killed")
    assert resumed.checkpoint.read_bytes() == first.checkpoint.read_bytes()
    assert resumed.history.read_bytes() == first.history.read_bytes()


@pytest.mark.parametrize(
    ("changed", "fingerprint"), [({"train__lr": 2e-3}, "data-a"), ({}, "data-b")], ids=["other-params", "other-data"],
)
def test_a_stale_resume_file_is_ignored(data, tmp_path, changed, fingerprint):
    model = make_model(tiny_config("vae"))
    InterruptAt(model, call=STEPS_PER_EPOCH + 1, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config("vae"), data, tmp_path / "run", model=model, fingerprint="data-a")

    config = tiny_config("vae", **changed)
    stream = io.StringIO()
    _, paths = run_training(config, data, tmp_path / "run", stream=stream, fingerprint=fingerprint)
    assert f"ignoring resume file {paths.resume}: written for other params or data" in stream.getvalue()
    _, reference = run_training(config, data, tmp_path / "reference", fingerprint=fingerprint)
    assert paths.checkpoint.read_bytes() == reference.checkpoint.read_bytes()


def test_resume_key_follows_config_and_data():
    config = tiny_config("vae")
    assert resume_key(config, "a") == resume_key(tiny_config("vae"), "a")
    keys = {resume_key(config, "a"), resume_key(config, "b"), resume_key(tiny_config("vae", train__epochs=3), "a"),
            resume_key(tiny_config("vae", seed=1), "a")}
    assert len(keys) == 4


def test_load_resume_removes_a_stale_file(data, tmp_path):
    model = make_model(tiny_config("vae"))
    InterruptAt(model, call=STEPS_PER_EPOCH + 1, error=KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        run_training(tiny_config("vae"), data, tmp_path, model=model)
    resume = paths_in(tmp_path).resume
    assert load_resume(resume, resume_key(tiny_config("vae"), ""), stream=io.StringIO())["history"][0]["epoch"] == 1
    assert load_resume(resume, "another key", stream=io.StringIO()) is None
    assert not resume.exists()


def test_load_resume_ignores_and_removes_an_unreadable_file(tmp_path):
    resume = tmp_path / "state.pt"
    resume.write_bytes(b"half a resume file")
    stream = io.StringIO()
    assert load_resume(resume, "key", stream=stream) is None
    assert stream.getvalue().startswith(f"ignoring unreadable resume file {resume}")
    assert not resume.exists()  # the docstring: "an unreadable or stale one is ignored and removed"


def test_nan_loss_stops_with_epoch_and_step_and_writes_no_checkpoint(data, tmp_path):
    config = tiny_config("emae")
    model = make_model(config)
    InterruptAt(model, call=STEPS_PER_EPOCH + 2)  # epoch 2, step 2
    with pytest.raises(TrainingDiverged, match=r"^loss became nan at epoch 2, step 2; no checkpoint written$"):
        run_training(config, data, tmp_path, model=model)
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "history.csv").exists()
    assert [row["epoch"] for row in csv_rows(paths_in(tmp_path).partial_history)] == ["1"]


def test_really_diverging_training_is_refused(data, tmp_path):
    config = tiny_config("vae", train__lr=1e12, train__epochs=4, likelihood__name="gaussian")
    with pytest.raises(TrainingDiverged, match=r"^loss became (nan|inf|-inf) at epoch \d+, step \d+"):
        run_training(config, data, tmp_path)
    assert not (tmp_path / "model.pt").exists()


@pytest.mark.parametrize(("drop_last", "batch_sizes"), [(False, [64, 36]), (True, [64])])
def test_drop_last_drops_the_partial_batch(tmp_path, drop_last, batch_sizes):
    config = tiny_config("ae", train__drop_last=drop_last, train__epochs=1)
    model = make_model(config)
    spy = Spy(model)
    train_replicate(model, train_images=images(100, seed=1), val_images=images(8, seed=2), paths=paths_in(tmp_path),
                    device=CPU, stream=io.StringIO())
    assert [len(batch) for batch in spy.batches] == batch_sizes


def test_drop_last_with_a_batch_larger_than_the_split_is_refused(tmp_path):
    config = tiny_config("ae", train__drop_last=True, train__batch_size=200)
    with pytest.raises(TrainingDiverged, match=r"^train.batch_size 200 exceeds the 100 training images"):
        train_replicate(make_model(config), train_images=images(100, seed=1), val_images=images(8, seed=2),
                        paths=paths_in(tmp_path), device=CPU, stream=io.StringIO())


def test_dynamic_binarization_draws_new_binary_pixels_every_epoch(data, tmp_path):
    config = tiny_config("ae")
    model = make_model(config)
    spy = Spy(model)
    run_training(config, data, tmp_path, model=model)
    assert len(spy.batches) == 2 * STEPS_PER_EPOCH
    assert all(set(batch.unique().tolist()) <= {0.0, 1.0} for batch in spy.batches)
    epoch_1, epoch_2 = torch.cat(spy.batches[:STEPS_PER_EPOCH]), torch.cat(spy.batches[STEPS_PER_EPOCH:])
    # The same images in another order and with fresh pixels: sorted sums differ.
    assert not torch.equal(epoch_1.sum(dim=(1, 2, 3)).sort().values, epoch_2.sum(dim=(1, 2, 3)).sort().values)


def test_grey_level_training_sees_the_images_unchanged(data, tmp_path):
    config = tiny_config("ae", train__epochs=1, data__binarize="none")
    model = make_model(config)
    spy = Spy(model)
    run_training(config, data, tmp_path, model=model)
    seen = torch.cat(spy.batches).sum(dim=(1, 2, 3)).sort().values
    assert torch.equal(seen, data[0].sum(dim=(1, 2, 3)).sort().values)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_plain_lines_off_a_terminal_and_bars_on_one(data, tmp_path):
    config = tiny_config("ae")
    plain = io.StringIO()
    run_training(config, data, tmp_path / "a", stream=plain)
    lines = plain.getvalue().splitlines()
    assert [line.split(" train_loss")[0] for line in lines] == ["train: epoch 1/2", "train: epoch 2/2"]
    assert "\r" not in plain.getvalue()

    assert lines[0].endswith(" left)") and lines[1].endswith("~0 s left)")  # the last epoch leaves nothing

    terminal = Terminal()
    run_training(config, data, tmp_path / "b", stream=terminal)
    assert "\r" in terminal.getvalue() and "2/2" in terminal.getvalue()  # tqdm redraws its bars in place


def test_a_stage_prints_each_finished_job_with_the_time_left_at_the_pace_so_far():
    now = [100.0]
    stream = io.StringIO()
    progress = StageProgress(total=4, label="train", stream=stream, clock=lambda: now[0])
    now[0] += 120  # the first job took 2 min: 3 more at that pace
    progress.job_done("mnist-vae-30-seed-0")
    now[0] += 4000  # the second, much slower: the estimate follows the mean pace
    progress.job_done("mnist-vae-30-seed-1")
    assert stream.getvalue().splitlines() == [
        "train: 1/4 done (mnist-vae-30-seed-0), 2 min elapsed, ~6 min left",
        "train: 2/4 done (mnist-vae-30-seed-1), 1 h 09 min elapsed, ~1 h 09 min left",
    ]


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0 s"), (59.4, "59 s"), (90, "2 min"), (3599, "1 h 00 min"),
                                                (7260, "2 h 01 min")])
def test_durations_read_as_seconds_minutes_or_hours(seconds, shown):
    assert duration(seconds) == shown


# --- the train stage ------------------------------------------------------------------------

VARIANTS = {"ae": {"objective": "deterministic"}, "vae": {"objective": "kl_split", "beta": 1.0, "gamma": 1.0}}


def stage_workspace(root: Path, **dotted) -> Path:
    """A DVC workspace: a params file (2 variants x latent 2, 3 x seeds 0, 1), a prepared file, an MLflow store."""
    (root / ".dvc").mkdir(parents=True)
    raw = tiny_raw(variants=VARIANTS, latent_dims=[2, 3], seeds=[0, 1], **dotted)
    write_params(root / "params.yaml", raw)
    write_prepared_file(root / "data" / "prepared" / "mnist.npz", {"train": TRAIN_IMAGES, "val": 32, "test": 20})
    return root


def stage_args(root: Path, *selectors: str) -> list[str]:
    return [
        *selectors, "--prepared", str(root / "data" / "prepared"), "--models", str(root / "models"),
        "--history", str(root / "history"), "--resume", str(root / ".cache" / "resume"),
        "--runinfo", str(root / "runinfo"), "--params", str(root / "params.yaml"),
    ]


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(scope="module")
def train_stage(load_stage):
    return load_stage("train")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_stage):
    """The train stage run once over every model of a tiny workspace (in-process workers)."""
    root = stage_workspace(tmp_path_factory.mktemp("train-stage"))
    seed_store(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AEBENCH_WORKERS", "1")
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        patch.chdir(tmp_path_factory.getbasetemp())  # not the workspace: relative locations are the workspace's
        train_stage.main(stage_args(root))
    return root


def replicates_of(root: Path):
    params = params_from_dict(tiny_raw(variants=VARIANTS, latent_dims=[2, 3], seeds=[0, 1]))
    return params, [key.replicate(seed) for key in selected_keys(params) for seed in params.seeds]


def test_the_stage_writes_every_latent_size_and_seed_at_the_layout_paths(trained):
    _, replicates = replicates_of(trained)
    assert len(replicates) == 8
    assert files_under(trained / "models") == sorted(r.path("", ".pt").as_posix() for r in replicates)
    assert files_under(trained / "history") == sorted(r.path("", ".csv").as_posix() for r in replicates)
    assert files_under(trained / "runinfo") == sorted(r.path("train", ".json").as_posix() for r in replicates)
    assert files_under(trained / ".cache" / "resume") == []  # every resume file removed after its checkpoint
    assert files_under(trained / ".cache" / "tmp") == []
    for replicate in replicates:
        assert len(csv_rows(replicate.path(trained / "history", ".csv"))) == 2
        model = load_model(replicate.path(trained / "models", ".pt"))
        assert (model.variant, model.latent_dim, model.config["seed"]) == (
            replicate.key.variant, replicate.key.latent_dim, replicate.seed)


def test_a_stage_trained_checkpoint_is_the_one_trained_alone(trained, tmp_path):
    params, replicates = replicates_of(trained)
    replicate = replicates[-1]
    config = model_config(params, replicate)
    data_file = trained / "data" / "prepared" / "mnist.npz"
    prepared = load_prepared(data_file)
    paths = paths_in(tmp_path)
    train_replicate(make_model(config), train_images=prepared.split("train")[0], val_images=prepared.split("val")[0],
                    paths=paths, device=CPU, data_fingerprint=hashlib.sha256(data_file.read_bytes()).hexdigest(),
                    stream=io.StringIO())
    assert paths.checkpoint.read_bytes() == replicate.path(trained / "models", ".pt").read_bytes()


def test_each_replicate_is_one_finished_mlflow_run_with_its_config_and_tags(trained):
    from mlflow.tracking import MlflowClient

    params, replicates = replicates_of(trained)
    client = MlflowClient(tracking_uri=f"sqlite:///{trained / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aebench")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {run.info.run_name: run for run in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == sorted(r.name for r in replicates)
    for replicate in replicates:
        run = runs[replicate.name]
        assert run.info.status == "FINISHED"
        config = model_config(params, replicate)
        assert run.data.params == {k: "null" if v is None else str(v) for k, v in flatten(config).items()}
        assert (run.data.params["dataset"], run.data.params["latent_dim"], run.data.params["seed"]) == (
            "mnist", str(replicate.key.latent_dim), str(replicate.seed))
        assert run.data.params["variant.name"] == replicate.key.variant
        assert run.data.params["network.hidden"] == "[32]"
        tags = run.data.tags
        assert (tags["dataset"], tags["variant"], tags["latent_dim"], tags["seed"]) == (
            "mnist", replicate.key.variant, str(replicate.key.latent_dim), str(replicate.seed))
        assert tags["aebench.replicate"] == replicate.name
        checkpoint = replicate.path(trained / "models", ".pt")
        assert tags["aebench.checkpoint"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        history = csv_rows(replicate.path(trained / "history", ".csv"))
        logged = client.get_metric_history(run.info.run_id, "train_loss")
        assert [m.step for m in logged] == [1, 2]
        assert [m.value for m in logged] == [float(row["train_loss"]) for row in history]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch_seconds")] == [1, 2]
        stored = trained / "mlruns" / "aebench" / run.info.run_id / "artifacts" / "checkpoint" / checkpoint.name
        assert stored.read_bytes() == checkpoint.read_bytes()  # artifacts beside the workspace's database
        # And one MLflow model of the run, after its last epoch, its files beside the workspace's database too.
        (output,) = run.outputs.model_outputs
        assert output.step == 2
        model = client.get_logged_model(output.model_id)
        assert model.source_run_id == run.info.run_id and model.params == run.data.params
        assert (trained / "mlruns" / "aebench" / "models" / output.model_id / "artifacts" / "MLmodel").is_file()


def restore_sigterm(monkeypatch):
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # run_stage must not rewire pytest's SIGTERM


def stage_error(train_stage, args, monkeypatch, capsys) -> tuple[int, list[str], float]:
    restore_sigterm(monkeypatch)
    monkeypatch.setenv("AEBENCH_WORKERS", "1")
    started = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        train_stage.run_stage(lambda: train_stage.main(args))
    return caught.value.code, capsys.readouterr().err.splitlines(), time.monotonic() - started


def test_an_unwritable_output_folder_is_one_line_before_any_training(tmp_path, train_stage, monkeypatch, capsys):
    """Fault case 1: a file where the stage's output folder goes."""
    root = stage_workspace(tmp_path)
    (root / "models" / "mnist").mkdir(parents=True)
    (root / "models" / "mnist" / "vae").write_text("a file where the stage's output folder goes")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = stage_args(root, "--dataset", "mnist", "--variant", "vae")
    code, lines, _ = stage_error(train_stage, args, monkeypatch, capsys)
    assert code == 1
    assert lines == [f"error: {root}/models/mnist/vae/latent-2: cannot write outputs here (Not a directory)"]
    assert files_under(root / "history") == [] and files_under(root / ".cache" / "resume") == []
    assert not (root / "mlflow.db").exists()  # nothing was started


def test_an_unreachable_tracking_server_is_one_line_before_any_training(tmp_path, train_stage, monkeypatch, capsys):
    """Fault case 2: MLFLOW_TRACKING_URI names a server that does not answer."""
    root = stage_workspace(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # nothing listens on the discard port
    code, lines, seconds = stage_error(train_stage, stage_args(root, "--variant", "vae"), monkeypatch, capsys)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: MLflow server http://127.0.0.1:9 unreachable (")
    assert seconds < 15
    assert files_under(root / "models") == [] and files_under(root / "history") == []
    assert files_under(root / ".cache" / "resume") == [] and not (root / "mlflow.db").exists()


@pytest.mark.parametrize(
    ("selectors", "expected"),
    [
        (["--variant", "gan"], "error: variants: no variant 'gan' (params has ae, vae)"),
        (["--latent-dim", "7"], "error: latent_dims: 7 is not in params (2, 3)"),
    ],
)
def test_a_selector_params_lacks_is_one_line(tmp_path, train_stage, monkeypatch, capsys, selectors, expected):
    root = stage_workspace(tmp_path)
    code, lines, _ = stage_error(train_stage, stage_args(root, *selectors), monkeypatch, capsys)
    assert (code, lines) == (1, [expected])


def test_missing_prepared_data_is_one_line_naming_the_file(tmp_path, train_stage, monkeypatch, capsys):
    root = stage_workspace(tmp_path)
    (root / "data" / "prepared" / "mnist.npz").unlink()
    code, lines, _ = stage_error(train_stage, stage_args(root), monkeypatch, capsys)
    assert (code, lines) == (
        1, [f"error: {root}/data/prepared/mnist.npz: prepared data not found (run `dvc repro prepare`)"])


def test_a_stage_killed_with_sigkill_resumes_its_training_and_its_runs(tmp_path, train_stage, monkeypatch, capsys):
    """kill -9 mid-training leaves RUNNING runs and a resume file; the rerun finishes both, as if never killed."""
    from mlflow.tracking import MlflowClient

    epochs = 20
    root = stage_workspace(tmp_path, train__epochs=epochs)
    seed_store(root)
    args = stage_args(root, "--variant", "vae", "--latent-dim", "2")
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"AEBENCH_WORKERS": "1"}
    process = subprocess.Popen([sys.executable, str(REPO / "stages" / "train.py"), *args], cwd=root, env=environment,
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stderr:
            if line.startswith(f"mnist-vae-2-s0: epoch 1/{epochs} "):  # 19 epochs to go: time to kill it
                process.send_signal(signal.SIGKILL)
                break
    finally:
        process.kill()
        process.wait(timeout=60)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("aebench").experiment_id
    killed = {run.info.run_name: run for run in client.search_runs([experiment])}
    assert sorted(killed) == ["mnist-vae-2-s0", "mnist-vae-2-s1"]
    assert {run.info.status for run in killed.values()} == {"RUNNING"}  # nobody could close them
    resume = root / ".cache" / "resume" / "mnist" / "vae" / "latent-2" / "seed-0.pt"
    checkpoint = root / "models" / "mnist" / "vae" / "latent-2" / "seed-0.pt"
    assert resume.is_file() and not checkpoint.exists()
    assert not (root / "history" / "mnist" / "vae" / "latent-2" / "seed-0.csv").exists()  # no partial history
    assert resume.with_suffix(".history.csv").is_file()

    monkeypatch.setenv("AEBENCH_WORKERS", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    train_stage.main(args)

    assert f"mnist-vae-2-s0: resuming from {resume} after epoch " in capsys.readouterr().err
    finished = {run.info.run_name: run for run in client.search_runs([experiment])}
    assert {name: run.info.run_id for name, run in finished.items()} == {
        name: run.info.run_id for name, run in killed.items()}  # the same two runs, reused
    assert {run.info.status for run in finished.values()} == {"FINISHED"}
    steps = [m.step for m in client.get_metric_history(killed["mnist-vae-2-s0"].info.run_id, "val_loss")]
    assert steps == list(range(1, epochs + 1))
    assert not resume.exists()
    # The resumed checkpoint is the one an uninterrupted training gives.
    params = params_from_dict(tiny_raw(variants=VARIANTS, latent_dims=[2, 3], seeds=[0, 1], train__epochs=epochs))
    replicate = selected_keys(params, variant="vae", latent_dim=2)[0].replicate(0)
    data_file = root / "data" / "prepared" / "mnist.npz"
    prepared = load_prepared(data_file)
    paths = paths_in(tmp_path / "alone")
    train_replicate(make_model(model_config(params, replicate)), train_images=prepared.split("train")[0],
                    val_images=prepared.split("val")[0], paths=paths, device=CPU,
                    data_fingerprint=hashlib.sha256(data_file.read_bytes()).hexdigest(), stream=io.StringIO())
    assert paths.checkpoint.read_bytes() == checkpoint.read_bytes()
