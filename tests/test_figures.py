"""The per-model figures: which files each model gets, their sizes, bytes, contents and captions.

A tiny study is trained and evaluated for real once per module (the train and
evaluate library functions on synthetic images: an MLP with one 32-unit
layer, 2 epochs, seeds 0 and 1; the vae at latent sizes 2 and 4, the ae at
2), so the stage reads exactly what the earlier stages write.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import REPO, make_model, synthetic_prepared, tiny_raw, write_params
from PIL import Image

from aebench.common.config import params_from_dict
from aebench.common.errors import AebenchError
from aebench.common.files import write_json, write_npz
from aebench.common.layout import FIGURE_PIXELS_SUFFIX, ModelKey
from aebench.data.binarize import fixed_targets
from aebench.data.prepared import save_prepared
from aebench.reporting import figures
from aebench.reporting.figures import MODEL_FIGURES, code_side, code_tiles, figure_path, figures_for
from aebench.reporting.plotting import FigureSpec
from aebench.reporting.results import ReportInputError, Roots, load_results

SEEDS = [0, 1]
VARIANTS = ("ae", "vae")
LATENT_DIMS = [2, 4]
# The vae at both sizes (every figure), the ae at 2 (a deterministic code): each at both seeds.
TRAINED = [ModelKey("mnist", "vae", 2), ModelKey("mnist", "vae", 4), ModelKey("mnist", "ae", 2)]
FIGURES = {"samples_grid": 3, "recon_images": 4, "manifold_steps": 4, "manifold_range": 2.0,
           "interpolation_steps": 5, "activity_images": 16}
REPORT_ORDER = ["loss_curves", "reconstructions", "samples", "samples_gaussian", "samples_gmm", "activity_lines",
                "activity_bars", "activity_heatmap", "unit_death", "latent_map", "tsne_map", "manifold",
                "interpolation"]
# Mosaic sizes for FIGURES: 28-px tiles with 2-px gaps, drawn at 2 screen pixels per image pixel, a 34-px title
# band above and, with row labels, a 70-px band to the left: width (30 * cols - 2) * 2 (+ 70), height
# (30 * rows - 2) * 2 + 34.
SIZES = {
    2: {"reconstructions": (306, 150),  # 2 rows (test, recon) of 4
        "manifold": (236, 270)},  # 4 x 4
    4: {"reconstructions": (306, 210),  # 3 rows: the 4-D code drawn as 2x2 between test and recon
        "tsne_map": (760, 560)},
}
SHARED_SIZES = {
    "samples": (176, 210), "samples_gaussian": (176, 210), "samples_gmm": (176, 210),  # 3 x 3
    "interpolation": (416, 118),  # 1 x 7 (two test images and 5 frames) under a 14-image-pixel label band
    "loss_curves": (1250, 340), "activity_lines": (900, 400), "activity_bars": (1150, 400),
    "activity_heatmap": (900, 560), "unit_death": (1150, 480), "latent_map": (760, 560),
}


def study_raw(**figures) -> dict:
    raw = tiny_raw(seeds=SEEDS, latent_dims=LATENT_DIMS)
    raw["variants"] = {name: raw["variants"][name] for name in VARIANTS}
    raw["figures"].update(FIGURES, **figures)
    return raw


def train_and_evaluate(root: Path, params, data, classifier, real, replicate) -> None:
    """What the train and evaluate stages write for one replicate, via the same library calls."""
    from aebench.evaluation.convergence import history_convergence
    from aebench.evaluation.runner import evaluate_replicate
    from aebench.models.autoencoder import model_config
    from aebench.training.trainer import TrainingPaths, train_replicate

    model = make_model(model_config(params, replicate))
    paths = TrainingPaths(checkpoint=replicate.path(root / "models", ".pt"),
                          history=replicate.path(root / "history", ".csv"),
                          resume=replicate.path(root / "resume", ".pt"))
    train_replicate(model, train_images=data.split("train")[0], val_images=data.split("val")[0], paths=paths,
                    device=torch.device("cpu"), stream=io.StringIO())
    first = replicate.seed == params.seeds[0]
    evaluation = evaluate_replicate(model.eval(), data, classifier, real, params.evaluate, params.figures,
                                    second_judge=(classifier, real),
                                    convergence=history_convergence(paths.history, params),
                                    with_figure_pixels=first, log=lambda line: None)
    # One judge given twice judges the same images twice: the two sections agree (the runner's wiring), and
    # the judge agrees with itself wherever it is confident.
    judged = evaluation.metrics["samples"]
    assert evaluation.metrics["samples_mlp_judge"] == {
        source: {name: value for name, value in metrics.items() if name != "agreed_share"}
        for source, metrics in judged.items()}
    assert all(metrics["agreed_share"] == metrics["confident_share"] for metrics in judged.values())
    write_npz(replicate.path(root / "latent", ".npz"), **evaluation.latent)
    assert (evaluation.figure_pixels is not None) == first
    if first:
        write_npz(replicate.path(root / "latent", FIGURE_PIXELS_SUFFIX), **evaluation.figure_pixels)
    write_json(replicate.path(root / "metrics", ".json"), evaluation.metrics)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from aebench.evaluation.classifier import SampleClassifier
    from aebench.evaluation.sample_quality import reference

    root = tmp_path_factory.mktemp("figures")
    raw = study_raw()
    write_params(root / "params.yaml", raw)
    params = params_from_dict(raw)
    data = synthetic_prepared()
    save_prepared(root / "prepared" / "mnist.npz", data)
    torch.manual_seed(0)
    classifier = SampleClassifier().eval()  # untrained: the figures only need labels it recorded
    real = reference(classifier, data.split("test")[0])
    for key in TRAINED:
        for seed in SEEDS:
            train_and_evaluate(root, params, data, classifier, real, key.replicate(seed))
    return root, params


def stage_args(root: Path, out: Path, *selection: str, latent: Path | None = None) -> list[str]:
    return [*selection, "--history", str(root / "history"), "--metrics", str(root / "metrics"),
            "--latent", str(latent or root / "latent"), "--out", str(out), "--params", str(root / "params.yaml")]


@pytest.fixture(scope="module")
def stage(load_stage):
    return load_stage("figures")


@pytest.fixture(scope="module")
def drawn(study, stage):
    """The vae's figures at both latent sizes, as the DVC stage draws them."""
    root, _ = study
    stage.main(stage_args(root, root / "out", "--dataset", "mnist", "--variant", "vae"))
    return root / "out"


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L")).astype(int)


# ---------------------------------------------------------------- the registry


@pytest.mark.parametrize("size, left_out", [(1, {"tsne_map", "manifold"}), (2, {"tsne_map"}), (3, {"manifold"}),
                                            (30, {"manifold"})])
def test_each_latent_size_gets_exactly_its_figures_in_report_order(size, left_out):
    names = [figure.name for figure in figures_for(ModelKey("mnist", "vae", size))]
    assert names == [name for name in REPORT_ORDER if name not in left_out]
    assert [figure.filename for figure in figures_for(ModelKey("mnist", "ae", size))] == [f"{n}.png" for n in names]


def test_a_figure_lies_at_its_models_stem():
    key = ModelKey("fashion_mnist", "emae", 30)
    (samples,) = [figure for figure in MODEL_FIGURES if figure.name == "samples"]
    assert figure_path(Path("reports/figures"), key, samples) == Path(
        "reports/figures/fashion_mnist/emae/latent-30/samples.png")


def test_the_code_is_drawn_as_a_square_exactly_when_its_size_is_a_perfect_square():
    assert [d for d in range(1, 50) if code_side(d)] == [4, 9, 16, 25, 36, 49]
    assert code_side(784) == 28 and code_side(900) is None  # a 30x30 code does not fit a 28-px tile
    codes = np.array([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])  # (2, 4): 2x2 each, 14-px cells
    tiles = code_tiles(codes, 2)
    assert tiles.shape == (2, 28, 28)
    assert tiles[0, 0, 0] == 0.0 and tiles[1, 27, 27] == 1.0  # one scale for the row: its min black, max white
    assert tiles[0, 0, 14] == pytest.approx(1 / 7) and tiles[0, 14, 0] == pytest.approx(2 / 7)


def test_the_registry_imports_without_torch():
    code = "import sys, aebench.reporting.figures; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_the_stage_imports_no_torch(study, tmp_path):
    """It draws from files: run whole in a fresh interpreter (t-SNE included), it never loads torch."""
    root, _ = study
    args = stage_args(root, tmp_path / "out", "--variant", "vae", "--latent-dim", "4")
    probe = (f"import runpy, sys; sys.path.insert(0, {str(REPO / 'stages')!r}); "
             f"runpy.run_path({str(REPO / 'stages' / 'figures.py')!r})['main']({args!r}); "
             "print('torch imported:', 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert "torch imported: False" in done.stdout, done.stdout + done.stderr[-2000:]
    assert len(list((tmp_path / "out" / "mnist" / "vae" / "latent-4").glob("*.png"))) == 12


# ---------------------------------------------------------------- the stage's outputs


@pytest.mark.parametrize("size", LATENT_DIMS)
def test_every_figure_of_a_model_is_written_at_its_fixed_size(drawn, size):
    folder = drawn / "mnist" / "vae" / f"latent-{size}"
    found = {path.name: Image.open(path).size for path in folder.iterdir()}
    assert found == {f"{name}.png": px for name, px in {**SHARED_SIZES, **SIZES[size]}.items()}
    for name in found:  # every figure has content, not a blank canvas
        assert pixels(folder / name).std() > 5, name
    assert sorted(p.name for p in (drawn / "mnist").iterdir()) == ["vae"]  # only the variant asked for
    assert sorted(p.name for p in (drawn / "mnist" / "vae").iterdir()) == ["latent-2", "latent-4"]


def test_a_rerun_writes_the_same_bytes(study, stage, drawn):
    root, _ = study
    again = root / "again"
    stage.main(stage_args(root, again, "--dataset", "mnist", "--variant", "vae", "--latent-dim", "4"))
    first = {p.name: p.read_bytes() for p in (drawn / "mnist/vae/latent-4").iterdir()}
    second = {p.name: p.read_bytes() for p in (again / "mnist/vae/latent-4").iterdir()}
    assert len(first) == 12 and first == second
    assert not (again / "mnist/vae/latent-2").exists()  # --latent-dim replaces that size's folder only


def test_reconstructions_show_the_binarized_test_images_and_their_codes(study, drawn):
    from aebench.data.prepared import load_prepared
    from aebench.models.checkpoint import load_model

    root, _ = study
    images, _ = load_prepared(root / "prepared" / "mnist.npz").split("test")
    targets = fixed_targets(images, "dynamic", seed=SEEDS[0], split="test")[: FIGURES["recon_images"]]
    picture = pixels(drawn / "mnist/vae/latent-4/reconstructions.png")
    model = load_model(ModelKey("mnist", "vae", 4).replicate(SEEDS[0]).path(root / "models", ".pt"))
    with torch.inference_mode():
        codes = model.encode(targets)[0].numpy()  # (4, 4)
    grey = (codes - codes.min()) / (codes.max() - codes.min()) * 255  # the row's min black, its max white
    title, label, pitch = 34, 70, 60  # screen pixels: title band, label band, tile + gap
    for index, target in enumerate(targets[:, 0].numpy()):
        left = label + index * pitch
        shown = picture[title : title + 56 : 2, left : left + 56 : 2]  # each image pixel is a 2x2 square
        assert np.abs(shown - target * 255).max() <= 2, f"test image {index}"
        code_row = title + pitch
        for u, (row, col) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):  # the 2x2 code, one 28-px block each
            centre = picture[code_row + 14 + 28 * row, left + 14 + 28 * col]
            assert abs(centre - grey[index, u]) <= 2, f"code {index}, dimension {u}"


# ---------------------------------------------------------------- captions


def test_captions_quote_the_numbers_of_the_metrics_and_histories(study):
    root, params = study
    key = ModelKey("mnist", "vae", 4)
    (results,) = load_results(params, Roots(root / "metrics", root / "history", root / "latent"), [key])
    metrics = [json.loads(key.replicate(s).path(root / "metrics", ".json").read_text()) for s in SEEDS]
    captions = {figure.name: figure.caption(results, params) for figure in figures_for(key)}
    latent = metrics[0]["latent"]
    counts = (f"{latent['active_units']} of 4 active at A_u > 0.01; {latent['used_units']} used "
              f"(usage share > 0.01)")
    for name in ("activity_lines", "activity_bars", "activity_heatmap"):
        assert counts in captions[name], name
    finals = [pd.read_csv(key.replicate(s).path(root / "history", ".csv"))["val_loss"].iloc[-1] for s in SEEDS]
    assert f"{finals[0]:.2f} and {finals[1]:.2f} for seeds 0 and 1" in captions["loss_curves"]
    assert "seed 0 bold, seed 1 thin" in captions["loss_curves"]
    assert f"{metrics[0]['test']['recon_bce']:,.2f} nats/image" in captions["reconstructions"]
    assert "as a 2x2 grey image" in captions["reconstructions"]
    frames = ", ".join(str(label) for label in metrics[0]["interpolation"]["frame_labels"])
    assert f"reads: {frames};" in captions["interpolation"]
    actives = [m["latent"]["active_units"] for m in metrics]
    assert f"{actives[0]} and {actives[1]} for seeds 0 and 1." in captions["unit_death"]
    assert f"{100 * metrics[0]['samples']['gmm']['precision']:.1f}%" in captions["samples_gmm"]
    assert f"k-NN accuracy {100 * latent['knn_accuracy']:.1f}%" in captions["latent_map"]


def test_captions_of_a_deterministic_2d_model(study):
    root, params = study
    key = ModelKey("mnist", "ae", 2)
    (results,) = load_results(params, Roots(root / "metrics", root / "history", root / "latent"), [key])
    manifold = json.loads(key.replicate(0).path(root / "metrics", ".json").read_text())["manifold"]
    captions = {figure.name: figure.caption(results, params) for figure in figures_for(key)}
    assert "Roughness" in captions["manifold"] and f"{manifold['roughness']:.3f}" in captions["manifold"]
    assert "decoded at z = code" in captions["reconstructions"]
    assert "Middle row" not in captions["reconstructions"]  # 2 is not a perfect square >= 4
    assert "posterior mean" not in captions["activity_lines"]  # a deterministic code has no q(z|x)


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize("case", ["no file", "no manifold", "other figures params"])
def test_figure_pixels_that_cannot_give_a_figure_are_refused_by_name_before_any_drawing(study, stage, tmp_path,
                                                                                         case):
    root, _ = study
    latent = tmp_path / "latent"
    shutil.copytree(root / "latent", latent)
    path = ModelKey("mnist", "vae", 2).replicate(SEEDS[0]).path(latent, FIGURE_PIXELS_SUFFIX)
    args = stage_args(root, tmp_path / "out", "--dataset", "mnist", "--variant", "vae", latent=latent)
    if case == "no file":
        path.unlink()
        expected = f"{path}: figure pixels not found (rerun evaluate)"
    elif case == "no manifold":  # the 2-D model's decoded grid left out
        arrays = dict(np.load(path))
        del arrays["manifold"]
        write_npz(path, **arrays)
        expected = f"{path}: missing array manifold (rerun evaluate)"
    else:  # params now ask for 3 reconstructions, the evaluation decoded 4
        args[args.index("--params") + 1] = str(write_params(tmp_path / "params.yaml", study_raw(recon_images=3)))
        expected = f"{path}: recon_test has shape (4, 28, 28), the figures params give (3, 28, 28) (rerun evaluate)"
    with pytest.raises(AebenchError) as refused:
        stage.main(args)
    assert str(refused.value) == expected
    assert not (tmp_path / "out").exists()


def test_metrics_of_another_seed_are_refused_by_name(study, stage, tmp_path):
    root, _ = study
    metrics = tmp_path / "metrics"
    shutil.copytree(root / "metrics", metrics)
    wrong = ModelKey("mnist", "ae", 2).replicate(1).path(metrics, ".json")
    shutil.copy(ModelKey("mnist", "ae", 2).replicate(0).path(metrics, ".json"), wrong)
    args = stage_args(root, tmp_path / "out", "--variant", "ae", "--latent-dim", "2")
    args[args.index("--metrics") + 1] = str(metrics)
    with pytest.raises(ReportInputError) as refused:
        stage.main(args)
    assert str(refused.value) == (f"{wrong}: describes ('mnist', 'ae', 2, 0), expected ('mnist', 'ae', 2, 1) "
                                  f"(dataset, variant, latent_dim, seed)")
    assert not (tmp_path / "out").exists()


def test_a_failure_while_drawing_leaves_the_previous_folder_untouched(study, stage, drawn, tmp_path, monkeypatch):
    root, _ = study
    out = tmp_path / "out"
    shutil.copytree(drawn, out)
    before = {p: p.read_bytes() for p in out.rglob("*.png")}

    def breaks_at_4(inputs):
        if inputs.key.latent_dim == 4:
            raise AebenchError("drawing failed")
        return figures.new_figure(10, 10)

    # One cheap figure: the 2-D model's is written (to the temporary folder) before the 4-D one fails.
    probe = FigureSpec("probe", "Probe", lambda results, params: "", breaks_at_4)
    monkeypatch.setattr(figures, "MODEL_FIGURES", (probe,))
    with pytest.raises(AebenchError, match="drawing failed"):
        stage.main(stage_args(root, out, "--dataset", "mnist", "--variant", "vae"))
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before
    assert [p.name for p in (out / "mnist").iterdir()] == ["vae"]  # no temporary folder left beside it
