"""Shared drawing pieces: the Agg backend, one theme, PNG output, image mosaics, the figure spec.

Figures are `matplotlib.figure.Figure` objects made without pyplot, so no global
figure state leaks between drawings and nothing needs closing. Every figure has
a fixed size in inches at `DPI`, and PNGs are saved without `bbox_inches`, so a
figure's pixel size is known before it is drawn. PNGs are committed with the
report, so `save_png` stores them compactly: grey figures (image mosaics) as
8-bit greyscale, losslessly, and colour figures with a palette of
`PALETTE_COLORS`.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on CI or the DVC machine; must precede any pyplot import

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from PIL import Image  # noqa: E402

DPI = 100
PIXEL_SCALE = 2  # screen pixels per image pixel in mosaics: 28-px digits stay legible, never blurred
TILE_GAP = 2  # image pixels of white between tiles
TITLE_PX = 34  # band above a mosaic for its title
LABEL_PX = 70  # band left of a mosaic for row labels
PALETTE = "colorblind"
INACTIVE_COLOR = "0.72"  # grey: a dimension below its threshold
# Antialiased lines and colour maps come out of Agg in tens of thousands of shades; 64 keep every line, label
# and map legible at about a third of the bytes of full RGB (the committed figures: 12 MB -> 4 MB).
PALETTE_COLORS = 64


@dataclass(frozen=True)
class FigureSpec:
    """One figure of a registry: its file `<name>.png`, title, caption and drawer.

    `caption` and `draw` take what their registry draws from: one model's
    results (`figures.MODEL_FIGURES`), one dataset's models and the context
    (`compare.COMPARE_FIGURES`), or the sweep's frame (`sweep.SWEEP_FIGURES`).
    `applies(key)` says which models get a per-model figure.
    """

    name: str
    title: str
    caption: Callable[..., str]  # the figure's inputs -> text quoting their numbers
    draw: Callable[..., Figure]
    applies: Callable[[Any], bool] = lambda _key: True  # every model

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


def palette_colors(palette: str, count: int | None = None) -> list[tuple[float, float, float]]:
    """`count` RGB colours of a seaborn palette (the palette's own number when None).

    seaborn is imported here and in `theme` only, when a figure is drawn: it loads scipy.stats (about 1 s),
    which a stage need not pay before its inputs are checked.
    """
    import seaborn as sns

    return sns.color_palette(palette, count)


@contextlib.contextmanager
def theme() -> Iterator[None]:
    """Seaborn's whitegrid look for everything drawn inside, restored afterwards."""
    import seaborn as sns

    style = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9)}
    with matplotlib.rc_context(style):
        yield


def new_figure(width_px: int, height_px: int) -> Figure:
    return Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)


def compact(image: Image.Image) -> Image.Image:
    """The image as it is stored: 8-bit grey when every pixel is grey (no pixel changes), else a palette
    of PALETTE_COLORS chosen by octree without dithering (deterministic: the same pixels give the same bytes)."""
    rgb = image.convert("RGB")
    channels = np.asarray(rgb)
    if (channels[..., 0] == channels[..., 1]).all() and (channels[..., 1] == channels[..., 2]).all():
        return rgb.convert("L")
    return rgb.quantize(colors=PALETTE_COLORS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)


def save_figures(specs: Iterable[FigureSpec], out_dir: str | Path, *inputs: Any,
                 prefix: str = "") -> list[tuple[FigureSpec, Path]]:
    """Draw each spec from `inputs` in the theme and save it as `<out_dir>/<prefix><name>.png`, in order."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    written = []
    with theme():
        for spec in specs:
            path = Path(out_dir) / f"{prefix}{spec.filename}"
            save_png(spec.draw(*inputs), path)
            written.append((spec, path))
    return written


def save_png(fig: Figure, path: str | Path) -> None:
    rendered = io.BytesIO()
    fig.savefig(rendered, dpi=DPI, format="png")
    rendered.seek(0)
    with Image.open(rendered) as image:
        # No text chunks (matplotlib's "Software" entry): the PNG depends on the pixels only, not on the build.
        compact(image).save(path, format="PNG", optimize=True)


def mosaic(images: np.ndarray, *, rows: int, cols: int) -> np.ndarray:
    """Tile images (rows * cols, H, W) in [0, 1] into one (rows*(H+gap)-gap, cols*(W+gap)-gap) array."""
    count, height, width = images.shape
    if count != rows * cols:
        raise ValueError(f"mosaic of {rows}x{cols} needs {rows * cols} images, got {count}")
    canvas = np.ones((rows * (height + TILE_GAP) - TILE_GAP, cols * (width + TILE_GAP) - TILE_GAP))
    for index, image in enumerate(images):
        top, left = (index // cols) * (height + TILE_GAP), (index % cols) * (width + TILE_GAP)
        canvas[top : top + height, left : left + width] = image
    return canvas


def mosaic_figure(canvas: np.ndarray, *, title: str, row_labels: list[str] | None = None) -> Figure:
    """A canvas drawn pixel-exact (each image pixel a PIXEL_SCALE square), a title above, labels left."""
    image_w, image_h = canvas.shape[1] * PIXEL_SCALE, canvas.shape[0] * PIXEL_SCALE
    width_px, height_px = image_w + (LABEL_PX if row_labels is not None else 0), image_h + TITLE_PX
    fig = new_figure(width_px, height_px)
    left_px = LABEL_PX if row_labels else 0
    ax = fig.add_axes((left_px / width_px, 0, image_w / width_px, image_h / height_px))
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    fig.text(0.5, 1 - (TITLE_PX / 2) / height_px, title, ha="center", va="center", fontsize=11)
    for index, label in enumerate(row_labels or []):
        row_center = image_h * (1 - (index + 0.5) / len(row_labels))
        fig.text(4 / width_px, row_center / height_px, label, ha="left", va="center", fontsize=10)
    return fig


def log_floor(values: np.ndarray, threshold: float) -> float:
    """Bottom of a log axis: a decade under the smallest positive value or threshold (zeros are drawn there)."""
    positives = np.concatenate([values[values > 0], [threshold] if threshold > 0 else []])
    if positives.size == 0:
        return 1e-12
    return 10.0 ** (math.floor(math.log10(positives.min())) - 1)


def mu_lines(ax, mu: np.ndarray, active: np.ndarray, *, widths: tuple[float, float]) -> None:
    """Each dimension of mu (N, D) as a line across the N test images: the active ones coloured, with line
    width widths[0], drawn over the grey inactive ones (widths[1])."""
    palette = iter(palette_colors("husl", int(active.sum())))
    for dim in sorted(range(mu.shape[1]), key=lambda d: active[d]):
        ax.plot(np.arange(len(mu)), mu[:, dim], color=next(palette) if active[dim] else INACTIVE_COLOR,
                linewidth=widths[0] if active[dim] else widths[1], gid=f"dim {dim}")
    ax.set_xlim(0, max(len(mu) - 1, 1))
    ax.set_xlabel("test image")


def activity_handles(active: str, inactive: str) -> list[Line2D]:
    """Legend entries of `mu_lines`, labelled."""
    return [Line2D([], [], color=palette_colors("husl", 1)[0], label=active),
            Line2D([], [], color=INACTIVE_COLOR, label=inactive)]
