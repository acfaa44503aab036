"""The figures stage on tiny real checkpoints: every figure, at its size, reproducibly.

Models are built with `aebench.models.build_model` (one 16-unit hidden layer,
untrained: the figures only need a decoder that runs) and saved with
`save_checkpoint`; the data is 24 random test images.
"""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from test_report import synthetic_metrics

from aebench.common.config import params_from_dict
from aebench.common.errors import AebenchError
from aebench.data import PreparedData, save_prepared
from aebench.models import build_model, resolved_config, save_checkpoint
from aebench.reporting import plotting
from aebench.reporting.catalog import MODEL_FIGURES, figures_for
from aebench.reporting.inputs import ModelKey
from aebench.reporting.plots import LOSS_PANEL_PX, SIZES_PX

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "figures.py"
TERMS = {"ae": ["loss", "recon"], "vae": ["loss", "recon", "kl"], "emae": ["loss", "recon", "mu_penalty"]}
TEST_IMAGES = 24
FIGURES = {"samples_grid": 3, "recon_images": 4, "manifold_steps": 4, "manifold_range": 2.0,
           "interpolation_steps": 3, "activity_images": 16}


def figure_params_raw(root: Path) -> dict:
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["model"]["hidden"] = [16]
    raw["data"]["binarize"] = "none"  # the test row then shows the stored grey levels exactly
    raw["figures"].update(FIGURES)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return raw


def write_prepared(root: Path) -> Path:
    rng = np.random.default_rng(0)
    splits = ("train", "val", "test")
    images = {split: rng.integers(0, 256, size=(TEST_IMAGES, 28, 28), dtype=np.uint8) for split in splits}
    labels = {split: np.arange(TEST_IMAGES, dtype=np.int64) % 10 for split in splits}
    path = root / "data" / "mnist.npz"
    save_prepared(path, PreparedData(images=images, labels=labels))
    return path


def write_model(root: Path, raw: dict, key: ModelKey, *, metrics_for: ModelKey | None = None) -> dict[str, Path]:
    params = params_from_dict(raw)
    torch.manual_seed(0)
    model = build_model(resolved_config(params, dataset=key.dataset, model=key.model, latent_dim=key.latent_dim))
    paths = {name: root / name / f"{key.stem}.{ext}" for name, ext in
             (("models", "pt"), ("history", "csv"), ("metrics", "json"), ("latent", "npz"))}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(paths["models"], model, mlflow_run_id=None, epochs_done=3)
    rng = np.random.default_rng(1)
    columns = ["epoch", "seconds"] + [f"{s}_{t}" for s in ("train", "val") for t in TERMS[key.model]]
    rows = [[epoch, 1.5] + list(rng.uniform(90, 200, len(columns) - 2)) for epoch in (1, 2, 3)]
    paths["history"].write_text("\n".join(",".join(map(str, row)) for row in [columns, *rows]) + "\n")
    paths["metrics"].write_text(json.dumps(synthetic_metrics(metrics_for or key, rng)))
    mu = rng.normal(size=(40, key.latent_dim)) * np.linspace(0.01, 2, key.latent_dim)
    np.savez(paths["latent"], mu=mu.astype(np.float32), labels=np.arange(40) % 10, activity=mu.var(0, ddof=1))
    return paths


def run_figures(root: Path, paths: dict[str, Path], data: Path, out: Path) -> None:
    main = runpy.run_path(str(STAGE))["main"]
    main([
        "--checkpoint", str(paths["models"]), "--data", str(data), "--history", str(paths["history"]),
        "--metrics", str(paths["metrics"]), "--latent", str(paths["latent"]), "--out", str(out),
        "--params", str(root / "params.yaml"),
    ])


def mosaic_px(rows: int, cols: int) -> tuple[int, int]:
    """Pixel size of `rows x cols` tiles of 28x28 images, each image pixel drawn as a PIXEL_SCALE square."""
    scale, gap = plotting.PIXEL_SCALE, plotting.TILE_GAP
    return scale * (cols * 28 + (cols - 1) * gap), scale * (rows * 28 + (rows - 1) * gap)


def expected_sizes(key: ModelKey) -> dict[str, tuple[int, int]]:
    grid, recon, steps, strip = (FIGURES["samples_grid"], FIGURES["recon_images"], FIGURES["manifold_steps"],
                                 FIGURES["interpolation_steps"] + 2)
    title, label = plotting.TITLE_PX, plotting.LABEL_PX

    def with_bands(size: tuple[int, int], *, labels: bool = False) -> tuple[int, int]:
        return size[0] + (label if labels else 0), size[1] + title

    sizes = {
        "loss_curves": (LOSS_PANEL_PX[0] * len(TERMS[key.model]), LOSS_PANEL_PX[1]),
        "reconstructions": with_bands(mosaic_px(2, recon), labels=True),
        "samples": with_bands(mosaic_px(grid, grid)),
        "manifold": with_bands(mosaic_px(steps, steps)),
        "interpolation": with_bands(mosaic_px(1, strip)),
        **SIZES_PX,
    }
    drawn = {spec.name for spec in figures_for(key.latent_dim)}
    return {f"{name}.png": size for name, size in sizes.items() if name in drawn}


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    raw = figure_params_raw(root)
    return root, raw, write_prepared(root)


@pytest.mark.parametrize("key", [ModelKey("mnist", "ae", 2), ModelKey("mnist", "vae", 2), ModelKey("mnist", "emae", 5)])
def test_every_figure_of_every_model_at_its_size(study, key):
    root, raw, data = study
    out = root / "reports" / "figures" / key.stem
    run_figures(root, write_model(root, raw, key), data, out)
    sizes = {path.name: Image.open(path).size for path in out.iterdir()}
    assert sizes == expected_sizes(key)
    assert ("manifold.png" in sizes) == (key.latent_dim == 2), "the decoded manifold exists for 2-D latents only"
    for path in out.iterdir():  # every figure has content, not a blank canvas
        assert np.asarray(Image.open(path).convert("L")).std() > 5, path.name


def test_reconstruction_row_shows_the_test_images_pixel_for_pixel(study):
    root, raw, data = study
    key = ModelKey("mnist", "vae", 3)
    out = root / "recon-check"
    run_figures(root, write_model(root, raw, key), data, out)
    picture = np.asarray(Image.open(out / "reconstructions.png").convert("L")).astype(int)
    test_images = np.load(data)["test_x"]
    scale, tile = plotting.PIXEL_SCALE, 28 + plotting.TILE_GAP
    for index in range(FIGURES["recon_images"]):
        left = plotting.LABEL_PX + index * tile * scale
        shown = picture[plotting.TITLE_PX : plotting.TITLE_PX + 28 * scale : scale, left : left + 28 * scale : scale]
        assert np.abs(shown - test_images[index].astype(int)).max() <= 2, f"test image {index}"


def test_same_inputs_draw_identical_pngs(study):
    root, raw, data = study
    key = ModelKey("mnist", "emae", 2)
    paths = write_model(root, raw, key)
    run_figures(root, paths, data, root / "first")
    run_figures(root, paths, data, root / "second")
    first = {p.name: p.read_bytes() for p in (root / "first").iterdir()}
    second = {p.name: p.read_bytes() for p in (root / "second").iterdir()}
    assert first == second and len(first) == len(MODEL_FIGURES)


def test_metrics_of_another_model_are_refused_and_nothing_is_written(study):
    root, raw, data = study
    key = ModelKey("mnist", "vae", 4)
    paths = write_model(root, raw, key, metrics_for=ModelKey("mnist", "ae", 4))
    out = root / "refused"
    with pytest.raises(AebenchError, match=f"{paths['metrics']}: describes mnist/ae-4, expected mnist/vae-4"):
        run_figures(root, paths, data, out)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".refused")] == []
