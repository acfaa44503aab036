"""The report as a list of blocks, rendered to Markdown and to one self-contained HTML file.

One block list feeds both outputs, so the Markdown and the HTML always say the
same thing. Text may hold `code` spans in backticks and links written
`[text](target)`; nothing else is interpreted.

The HTML inlines its CSS and its images (data: URIs): nothing is fetched when
the page opens, no script, font, stylesheet or image by URL, and a
Content-Security-Policy forbids all of them, so the file reads the same
offline, attached to an email or to an MLflow run. The layout is one fluid
column: tables scroll sideways on a phone, images shrink to the screen.
"""

from __future__ import annotations

import base64
import html
import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int  # 1 = title, 2 = section, 3 = subsection, 4 = figure group

    @property
    def anchor(self) -> str:
        return _slug(self.text)


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]
    label_columns: int = 1  # leading columns of labels (left-aligned); the rest are numbers (right-aligned)
    caption: str = ""
    css_class: str = ""


@dataclass(frozen=True)
class Figure:
    path: Path  # where the PNG lives once the stage is done (the Markdown links to it)
    png: bytes  # its content (the HTML embeds it)
    caption: str
    alt: str

    @property
    def anchor(self) -> str:
        """The HTML id a `[text](figure:<path>)` link jumps to."""
        return figure_anchor(self.path)

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) from the PNG header (IHDR), so the HTML can reserve the space."""
        if self.png[:8] != PNG_SIGNATURE or len(self.png) < 24:
            raise ValueError(f"{self.path}: not a PNG file")
        width, height = struct.unpack(">II", self.png[16:24])
        return width, height


@dataclass(frozen=True)
class Code:
    text: str


Block = Heading | Paragraph | Bullets | Table | Figure | Code

# `[text](target)`; a target `figure:<path>` names a figure of the report by its file.
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
FIGURE_TARGET = "figure:"


def figure_link(text: str, path: str | Path) -> str:
    """Inline text linking to a figure of the report (its file in Markdown, its place in the HTML)."""
    return f"[{text}]({FIGURE_TARGET}{Path(path).as_posix()})"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def figure_anchor(path: str | Path) -> str:
    return "fig-" + _slug(Path(path).as_posix())


def _links(text: str, figure_target: Callable[[str], str], link: Callable[[str, str], str]) -> str:
    """Each `[label](target)` of text as `link(label, target)`; a figure's target is `figure_target(its path)`."""
    def one(match: re.Match) -> str:
        label, where = match.groups()
        if where.startswith(FIGURE_TARGET):
            where = figure_target(where[len(FIGURE_TARGET):])
        return link(label, where)

    return LINK.sub(one, text)


def _md_text(text: str, base: Path) -> str:
    return _links(text, lambda path: Path(os.path.relpath(path, base)).as_posix(),
                  lambda label, where: f"[{label}]({where})")


def _md_cell(text: str, base: Path) -> str:
    return _md_text(text, base).replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table, base: Path) -> list[str]:
    align = [":---" if i < table.label_columns else "---:" for i in range(len(table.header))]
    lines = [
        "| " + " | ".join(_md_cell(h, base) for h in table.header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c, base) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"*{_md_text(table.caption, base)}*"]
    return lines


def _md_figure(figure: Figure, base: Path) -> str:
    link = Path(os.path.relpath(figure.path, base)).as_posix()
    return f"![{figure.alt}]({link})\n\n*{_md_text(figure.caption, base)}*"


# Block type -> its Markdown, given the folder of the Markdown file.
_MARKDOWN = {
    Heading: lambda block, base: f"{'#' * block.level} {block.text}",
    Paragraph: lambda block, base: _md_text(block.text, base),
    Bullets: lambda block, base: "\n".join(f"- {_md_text(item, base)}" for item in block.items),
    Table: lambda block, base: "\n".join(_md_table(block, base)),
    Figure: _md_figure,
    Code: lambda block, base: f"```\n{block.text.rstrip()}\n```",
}


def render_markdown(blocks: list[Block], *, markdown_path: str | Path) -> str:
    """GitHub-flavoured Markdown; images are linked relative to the Markdown file."""
    base = Path(markdown_path).parent
    return "\n\n".join(_MARKDOWN[type(block)](block, base) for block in blocks) + "\n"


# Only inline styles and data: images may load; everything else (network included) is refused.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0969da; --band: #f6f8fa; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.55;
       font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 1.25rem 1rem 4rem; }
h1 { font-size: 1.8rem; line-height: 1.25; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.4rem; border-bottom: 1px solid var(--line); padding-bottom: 0.3rem; margin-top: 2.5rem; }
h3 { font-size: 1.15rem; margin-top: 1.8rem; }
h4 { font-size: 1rem; margin-top: 1.4rem; }
a { color: var(--accent); }
code { font: 0.88em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: var(--band);
       padding: 0.1em 0.3em; border-radius: 4px; overflow-wrap: anywhere; }
pre { background: var(--band); padding: 0.8rem; border-radius: 6px; overflow-x: auto; font-size: 0.82rem; }
pre code { background: none; padding: 0; }
nav.toc { background: var(--band); border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 1rem; }
nav.toc ul { margin: 0.2rem 0; padding-left: 1.2rem; }
.table-wrap { overflow-x: auto; -webkit-overflow-scrolling: touch; border: 1px solid var(--line);
              border-radius: 6px; margin: 1rem 0; }
table { border-collapse: collapse; width: 100%; font-size: 0.85rem; }
th, td { padding: 0.35rem 0.6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--band); text-align: left; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
table.comparison th.num { min-width: 6.5rem; }
table.comparison th { position: sticky; top: 0; }
table.comparison td:first-child, table.comparison th:first-child { position: sticky; left: 0; background: #fff; }
table.comparison th:first-child { background: var(--band); }
tbody tr:nth-child(even) td { background: #fbfcfd; }
p.table-caption, figcaption { color: var(--muted); font-size: 0.9rem; }
figure { margin: 1.2rem 0 1.8rem; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
details { border-top: 1px solid var(--line); padding-top: 0.4rem; }
details > summary { cursor: pointer; font-weight: 600; font-size: 1.05rem; padding: 0.3rem 0; }
@media (max-width: 640px) {
  body { font-size: 15px; }
  main { padding: 0.8rem 0.6rem 3rem; }
  h1 { font-size: 1.45rem; }
  h2 { font-size: 1.25rem; }
  table { font-size: 0.78rem; }
}
"""


@dataclass(frozen=True)
class _Page:
    """What an HTML page needs to resolve a figure link: the figures it embeds, and where it lies."""

    embedded: frozenset[str]  # the anchors (`anchor`) of the figures the page embeds
    folder: Path | None

    def anchor(self, path: str | Path) -> str:
        """A figure's id, named by its path relative to the page: the page then reads the same wherever the
        workspace lies and however the stage was given its paths (relative under DVC, absolute otherwise)."""
        return figure_anchor(os.path.relpath(path, self.folder) if self.folder is not None else path)

    def figure_target(self, path: str) -> str:
        """Its place when the page embeds the figure, else its file (relative to the page)."""
        if self.anchor(path) in self.embedded or self.folder is None:
            return "#" + self.anchor(path)
        return Path(os.path.relpath(path, self.folder)).as_posix()

    def inline(self, text: str) -> str:
        """Escape text, then turn `code` spans into <code> and [text](target) into links."""
        escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))
        return _links(escaped, self.figure_target, lambda label, where: f'<a href="{html.escape(where)}">{label}</a>')


def _heading_ids(blocks: list[Block]) -> dict[int, str]:
    """Block index -> a unique id for each heading (two datasets can share a subsection title)."""
    ids, seen = {}, {}
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            base = block.anchor or "section"
            seen[base] = seen.get(base, 0) + 1
            ids[index] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return ids


def _table(table: Table, page: _Page) -> str:
    def cell(tag: str, index: int, text: str) -> str:
        kind = ' class="num"' if index >= table.label_columns else ""
        scope = ' scope="col"' if tag == "th" else ""
        return f"<{tag}{kind}{scope}>{page.inline(text)}</{tag}>"

    head = "".join(cell("th", i, text) for i, text in enumerate(table.header))
    body = "\n".join(
        "<tr>" + "".join(cell("td", i, text) for i, text in enumerate(row)) + "</tr>" for row in table.rows
    )
    css = f' class="{table.css_class}"' if table.css_class else ""
    caption = f'<p class="table-caption">{page.inline(table.caption)}</p>' if table.caption else ""
    return (
        f'<div class="table-wrap"><table{css}>\n<thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table></div>{caption}"
    )


def _figure(figure: Figure, page: _Page) -> str:
    width, height = figure.size_px
    data = base64.b64encode(figure.png).decode("ascii")
    return (
        f'<figure id="{page.anchor(figure.path)}">'
        f'<img src="data:image/png;base64,{data}" width="{width}" height="{height}" '
        f'alt="{html.escape(figure.alt)}" decoding="sync">'
        f"<figcaption>{page.inline(figure.caption)}</figcaption></figure>"
    )


def _toc(blocks: list[Block], ids: dict[int, str], page: _Page) -> str:
    items, open_sub = [], False
    for index, block in enumerate(blocks):
        if not isinstance(block, Heading) or block.level not in (2, 3):
            continue
        link = f'<a href="#{ids[index]}">{page.inline(block.text)}</a>'
        if block.level == 2:
            if open_sub:
                items.append("</ul></li>")
                open_sub = False
            elif items:
                items.append("</li>")
            items.append(f"<li>{link}")
        else:
            if not open_sub:
                items.append("<ul>")
                open_sub = True
            items.append(f"<li>{link}</li>")
    items.append("</ul></li>" if open_sub else "</li>")
    return '<nav class="toc" aria-label="Contents"><strong>Contents</strong><ul>' + "".join(items) + "</ul></nav>"


# Block type -> its HTML (headings are placed by `render_html`, which tracks the groups).
_HTML = {
    Paragraph: lambda block, page: f"<p>{page.inline(block.text)}</p>",
    Bullets: lambda block, page: "<ul>" + "".join(f"<li>{page.inline(item)}</li>" for item in block.items) + "</ul>",
    Table: _table,
    Figure: _figure,
    Code: lambda block, page: f"<pre><code>{html.escape(block.text.rstrip())}</code></pre>",
}


def render_html(blocks: list[Block], *, title: str, html_path: str | Path | None = None) -> str:
    """One HTML page: level-1 heading first, a table of contents, then the blocks.

    Level-4 headings open a collapsible group (one per trained model) that stays
    open until the next heading of level 4 or above.
    """
    ids = _heading_ids(blocks)
    folder = Path(html_path).parent if html_path is not None else None
    page = _Page(embedded=frozenset(), folder=folder)
    page = _Page(embedded=frozenset(page.anchor(b.path) for b in blocks if isinstance(b, Figure)), folder=folder)
    body: list[str] = []
    in_group = False
    toc_done = False
    for index, block in enumerate(blocks):
        if isinstance(block, Heading):
            if in_group:
                body.append("</details>")
            in_group, text = block.level == 4, page.inline(block.text)
            body.append(f'<details open id="{ids[index]}"><summary>{text}</summary>' if in_group
                        else f'<h{block.level} id="{ids[index]}">{text}</h{block.level}>')
        else:
            body.append(_HTML[type(block)](block, page))
        if not toc_done and isinstance(block, Paragraph):  # the contents follow the title and its first paragraph
            body.append(_toc(blocks, ids, page))
            toc_done = True
    if in_group:
        body.append("</details>")
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )
