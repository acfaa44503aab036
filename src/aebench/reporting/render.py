"""The report as a list of blocks, and its Markdown rendering.

One block list feeds both outputs (`render_markdown` here, `html.render_html`),
so the Markdown and the HTML always say the same thing. Text may hold `code`
spans in backticks; nothing else is interpreted.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Heading:
    text: str
    level: int  # 1 = title, 2 = section, 3 = subsection, 4 = figure group

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.text.lower()).strip("-")


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


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    align = [":---" if i < table.label_columns else "---:" for i in range(len(table.header))]
    lines = [
        "| " + " | ".join(_md_cell(h) for h in table.header) + " |",
        "| " + " | ".join(align) + " |",
    ]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    if table.caption:
        lines += ["", f"*{table.caption}*"]
    return lines


def _md_figure(figure: Figure, base: Path) -> str:
    link = Path(os.path.relpath(figure.path, base)).as_posix()
    return f"![{figure.alt}]({link})\n\n*{figure.caption}*"


# Block type -> its Markdown, given the folder of the Markdown file.
_MARKDOWN = {
    Heading: lambda block, base: f"{'#' * block.level} {block.text}",
    Paragraph: lambda block, base: block.text,
    Bullets: lambda block, base: "\n".join(f"- {item}" for item in block.items),
    Table: lambda block, base: "\n".join(_md_table(block)),
    Figure: _md_figure,
    Code: lambda block, base: f"```\n{block.text.rstrip()}\n```",
}


def render_markdown(blocks: list[Block], *, markdown_path: str | Path) -> str:
    """GitHub-flavoured Markdown; images are linked relative to the Markdown file."""
    base = Path(markdown_path).parent
    return "\n\n".join(_MARKDOWN[type(block)](block, base) for block in blocks) + "\n"
