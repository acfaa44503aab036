"""How figures are stored: grey figures without loss, colour figures in a small palette, the same bytes twice."""

from __future__ import annotations

import numpy as np
from PIL import Image

from aebench.reporting.plotting import PALETTE_COLORS, mosaic, mosaic_figure, new_figure, save_png, theme


def _grey_mosaic_figure():
    ramp = np.linspace(0.0, 1.0, 4 * 28 * 28).reshape(4, 28, 28)  # hundreds of grey levels
    return mosaic_figure(mosaic(ramp, rows=2, cols=2), title="a ramp")


def _colour_figure():
    fig = new_figure(400, 300)
    ax = fig.subplots()
    with theme():
        for shift in range(12):
            ax.plot(np.sin(np.linspace(0, 6, 200) + shift), label=str(shift))
    return fig


def _stored_and_rendered(fig, folder):
    """(the PNG `save_png` stores, matplotlib's own full-colour rendering of the same figure)."""
    save_png(fig, folder / "stored.png")
    fig.savefig(folder / "rendered.png", dpi=fig.dpi, format="png")
    return folder / "stored.png", folder / "rendered.png"


def test_a_grey_figure_is_stored_as_8_bit_grey_with_every_pixel_kept(tmp_path):
    stored_path, rendered_path = _stored_and_rendered(_grey_mosaic_figure(), tmp_path)
    with Image.open(stored_path) as stored, Image.open(rendered_path) as reference:
        assert stored.mode == "L"
        assert np.array_equal(np.asarray(stored), np.asarray(reference.convert("L")))
        assert len(stored.getcolors()) > PALETTE_COLORS  # no grey level merged into a palette


def test_a_colour_figure_is_stored_in_a_palette_of_at_most_palette_colors_and_is_smaller(tmp_path):
    stored_path, rendered_path = _stored_and_rendered(_colour_figure(), tmp_path)
    with Image.open(stored_path) as stored, Image.open(rendered_path) as reference:
        assert stored.mode == "P"
        assert len(stored.convert("RGB").getcolors()) <= PALETTE_COLORS < len(reference.convert("RGB").getcolors(1 << 20))
        assert stored.size == reference.size
        # Close to the rendering: the palette keeps each pixel near its colour (mean error under 4 of 255).
        error = np.abs(np.asarray(stored.convert("RGB"), dtype=int) - np.asarray(reference.convert("RGB"), dtype=int))
        assert error.mean() < 4
    assert stored_path.stat().st_size < rendered_path.stat().st_size


def test_saving_the_same_figure_twice_gives_the_same_bytes(tmp_path):
    save_png(_colour_figure(), tmp_path / "a.png")
    save_png(_colour_figure(), tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert b"Software" not in (tmp_path / "a.png").read_bytes()
