"""One block list, two renderings: the Markdown and the HTML say the same things, link the same figures,
and the HTML is one file that fetches nothing."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_inputs import png_bytes

from aebench.reporting.render import (
    CONTENT_SECURITY_POLICY,
    Bullets,
    Code,
    Figure,
    Heading,
    Paragraph,
    Table,
    figure_anchor,
    figure_link,
    render_html,
    render_markdown,
)

MARKDOWN = Path("reports/report.md")
HTML = Path("reports/report.html")
EMBEDDED = Path("reports/figures/mnist/vae/latent-2/samples.png")
ELSEWHERE = Path("reports/figures/mnist/ae/latent-2/manifold.png")  # linked, but not a figure of this page

TABLE = Table(
    header=["model", "latent size D", "IW NLL (nats/image)", "share (%)"],
    rows=[
        ["VAE", "2", "97.92 ± 0.31", "12.5"],
        ["EM-AE", "2", "n/a", "7.0"],
        ["a|b <i>", "4", "1,234.50 ± 10.00", "0.0"],  # a pipe for Markdown and markup for HTML to escape
    ],
    label_columns=2,
    caption="n/a: a deterministic code defines no density.",
    css_class="comparison",
)


def blocks() -> list:
    return [
        Heading("aebench: AE, VAE on MNIST", 1),
        Paragraph("Read from `metrics/<dataset>/...json`; see the "
                  f"{figure_link('samples', EMBEDDED)} and the {figure_link('grid', ELSEWHERE)}."),
        Heading("Comparison table", 2),
        TABLE,
        Heading("MNIST", 3),
        Bullets(["first finding: VAE − AE = +1.00 [+0.50, +1.50]", "second <finding>"]),
        Heading("MNIST", 3),  # two datasets can share a subsection title: the HTML ids must still differ
        Heading("VAE-2 on MNIST", 4),
        Figure(path=EMBEDDED, png=png_bytes(37, 21), caption="Samples, seed 0.", alt="Samples, VAE-2"),
        Heading("Setup", 2),
        Code("seeds:\n- 0\n- 1\n"),
    ]


class TableCells(HTMLParser):
    """Every <table>'s rows as lists of cell texts (markup removed, entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def html_tables(page: str) -> list[list[list[str]]]:
    parser = TableCells()
    parser.feed(page)
    return parser.tables


def markdown_tables(page: str) -> list[list[list[str]]]:
    """Every pipe table's rows (the alignment row left out), with `\\|` read back as `|`."""
    tables, current = [], None
    for line in page.splitlines():
        if line.startswith("| "):
            if current is None:
                current = []
                tables.append(current)
            cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells):
                current.append(cells)
        else:
            current = None
    return tables


def test_markdown_and_html_hold_the_same_table_cells():
    markdown = render_markdown(blocks(), markdown_path=MARKDOWN)
    page = render_html(blocks(), title="t", html_path=HTML)
    expected = [TABLE.header, *TABLE.rows]
    assert markdown_tables(markdown) == [expected]
    assert html_tables(page) == [expected]
    assert "a\\|b <i>" in markdown  # the pipe is escaped, so the row keeps its four cells
    assert "a|b &lt;i&gt;" in page  # the markup is text, not an element
    assert f"*{TABLE.caption}*" in markdown and f'<p class="table-caption">{TABLE.caption}</p>' in page


def test_every_text_of_the_blocks_is_in_both_renderings():
    markdown = render_markdown(blocks(), markdown_path=MARKDOWN)
    page = render_html(blocks(), title="t", html_path=HTML)
    for text in ("aebench: AE, VAE on MNIST", "Comparison table", "VAE-2 on MNIST", "Samples, seed 0.",
                 "first finding: VAE − AE = +1.00 [+0.50, +1.50]"):
        assert text in markdown and text in page, text
    assert "second <finding>" in markdown and "second &lt;finding&gt;" in page
    assert "`metrics/<dataset>/...json`" in markdown and "<code>metrics/&lt;dataset&gt;/...json</code>" in page
    assert "```\nseeds:\n- 0\n- 1\n```" in markdown and "<pre><code>seeds:\n- 0\n- 1</code></pre>" in page


def test_markdown_links_figures_relative_to_itself():
    markdown = render_markdown(blocks(), markdown_path=MARKDOWN)
    assert "[samples](figures/mnist/vae/latent-2/samples.png)" in markdown
    assert "[grid](figures/mnist/ae/latent-2/manifold.png)" in markdown
    assert "![Samples, VAE-2](figures/mnist/vae/latent-2/samples.png)" in markdown
    assert "figure:" not in markdown
    deeper = render_markdown(blocks(), markdown_path=Path("reports/replicate/report.md"))
    assert "[samples](../figures/mnist/vae/latent-2/samples.png)" in deeper


def test_html_links_an_embedded_figure_to_its_place_and_another_to_its_file():
    page = render_html(blocks(), title="t", html_path=HTML)
    (anchor,) = re.findall(r'<figure id="([^"]+)">', page)
    assert anchor.startswith("fig-") and anchor.endswith("figures-mnist-vae-latent-2-samples-png")
    assert f'<a href="#{anchor}">samples</a>' in page
    assert '<a href="figures/mnist/ae/latent-2/manifold.png">grid</a>' in page
    assert "figure:" not in page


def test_a_figure_anchor_is_named_by_its_path():
    assert figure_anchor(EMBEDDED) == "fig-reports-figures-mnist-vae-latent-2-samples-png"
    assert figure_anchor(EMBEDDED) != figure_anchor(ELSEWHERE)


def test_html_does_not_depend_on_where_the_workspace_lies():
    # The stage gets relative paths under dvc repro and absolute ones when run from elsewhere: same page.
    workspace = Path("/home/someone/study")

    def moved(block):
        return Figure(path=workspace / block.path, png=block.png, caption=block.caption, alt=block.alt)

    def located(text):
        return text.replace(f"figure:{ELSEWHERE}", f"figure:{workspace / ELSEWHERE}").replace(
            f"figure:{EMBEDDED}", f"figure:{workspace / EMBEDDED}")

    absolute = [moved(b) if isinstance(b, Figure) else Paragraph(located(b.text)) if isinstance(b, Paragraph) else b
                for b in blocks()]
    assert render_html(absolute, title="t", html_path=workspace / HTML) == render_html(blocks(), title="t",
                                                                                        html_path=HTML)
    assert render_markdown(absolute, markdown_path=workspace / MARKDOWN) == render_markdown(
        blocks(), markdown_path=MARKDOWN)


def test_html_is_self_contained_and_forbids_fetching_anything():
    page = render_html(blocks(), title="t", html_path=HTML)
    assert CONTENT_SECURITY_POLICY == "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    assert f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">' in page
    assert not re.search(r"https?://", page)
    assert "<script" not in page and "<link" not in page
    sources = re.findall(r'\ssrc="([^"]*)"', page)
    assert len(sources) == 1 and sources[0].startswith("data:image/png;base64,")


def test_png_size_is_read_from_its_header_and_reserved_in_the_html():
    figure = blocks()[8]
    assert figure.size_px == (37, 21)
    page = render_html(blocks(), title="t", html_path=HTML)
    assert 'width="37" height="21" alt="Samples, VAE-2"' in page
    with pytest.raises(ValueError, match=re.escape(f"{EMBEDDED}: not a PNG file")):
        _ = Figure(path=EMBEDDED, png=b"GIF89a" + bytes(30), caption="", alt="").size_px


def test_html_headings_get_unique_ids_a_contents_list_and_model_groups():
    page = render_html(blocks(), title="aebench <t>", html_path=HTML)
    assert "<title>aebench &lt;t&gt;</title>" in page
    assert page.count('id="mnist"') == 1 and page.count('id="mnist-2"') == 1
    contents = re.search(r'<nav class="toc".*?</nav>', page).group(0)
    assert re.findall(r'href="#([^"]+)"', contents) == ["comparison-table", "mnist", "mnist-2", "setup"]
    # The contents come right after the title and the first paragraph.
    assert page.index("<h1") < page.index("<p>Read from") < page.index('<nav class="toc"') < page.index("<h2")
    # A level-4 heading opens a collapsible group that holds its figure and closes before the next section.
    group = re.search(r'<details open id="vae-2-on-mnist"><summary>VAE-2 on MNIST</summary>(.*?)</details>',
                      page, re.S)
    assert group is not None and "<figure" in group.group(1) and "Setup" not in group.group(1)


def test_number_columns_are_right_aligned_in_both_renderings():
    markdown = render_markdown(blocks(), markdown_path=MARKDOWN)
    assert "| :--- | :--- | ---: | ---: |" in markdown
    page = render_html(blocks(), title="t", html_path=HTML)
    assert '<tr><td>VAE</td><td>2</td><td class="num">97.92 ± 0.31</td><td class="num">12.5</td></tr>' in page
    assert '<table class="comparison">' in page
