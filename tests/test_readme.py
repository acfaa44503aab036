"""The README types no study result by hand: a result it shows is quoted from a committed results file.

A quoted block is fenced by `<!-- quoted from PATH -->` and `<!-- end quote -->`; every number in it must
occur in PATH (a file the pipeline wrote and Git holds). Outside such blocks the README may hold numbers of
settings, of the literature and of dated benchmark runs, but no mean ± sd, the form every study result takes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
QUOTE = re.compile(r"<!-- quoted from (?P<path>\S+) -->\n(?P<body>.*?)<!-- end quote -->", re.S)
NUMBER = re.compile(r"(?<![\w.])[-+−]?\d+(?:\.\d+)?(?![\w])")


def numbers(text: str) -> set[str]:
    return {match.group().lstrip("+-−") for match in NUMBER.finditer(text)}


def unquoted(text: str) -> str:
    return QUOTE.sub("", text)


def typed_results(readme: str) -> list[str]:
    """Lines outside quotes that hold a mean ± sd."""
    return [line for line in unquoted(readme).splitlines() if re.search(r"\d\s*±\s*\d", line)]


def misquoted(readme: str, root: Path) -> list[str]:
    problems = []
    for block in QUOTE.finditer(readme):
        source = root / block["path"]
        if not source.is_file():
            problems.append(f"{block['path']}: quoted but not in the repository")
            continue
        absent = numbers(block["body"]) - numbers(source.read_text())
        if absent:
            problems.append(f"{block['path']}: the README quotes {sorted(absent)}, which it does not hold")
    return problems


def test_every_quoted_number_is_in_the_committed_file_it_is_quoted_from():
    assert misquoted((REPO / "README.md").read_text(), REPO) == []


def test_no_mean_and_spread_is_typed_outside_a_quote():
    assert typed_results((REPO / "README.md").read_text()) == []


@pytest.mark.parametrize(
    ("quoted", "held", "problem"),
    [
        ("IW NLL 101.3 ± 0.4 nats", "nll_iw: 101.3, sd 0.4", None),
        ("IW NLL 101.4 ± 0.4 nats", "nll_iw: 101.3, sd 0.4", "['101.4']"),
        ("took 52 min", "total: 51 min", "['52']"),
    ],
)
def test_a_quote_that_drifts_from_its_file_is_caught(tmp_path, quoted, held, problem):
    (tmp_path / "results.md").write_text(held)
    readme = f"intro 7\n<!-- quoted from results.md -->\n{quoted}\n<!-- end quote -->\n"
    found = misquoted(readme, tmp_path)
    assert (found == []) if problem is None else (problem in found[0])


def test_a_mean_and_spread_outside_a_quote_is_caught():
    readme = "The VAE reaches 101.3 ± 0.4 nats.\n<!-- quoted from r.md -->\n1 ± 2\n<!-- end quote -->\n"
    assert typed_results(readme) == ["The VAE reaches 101.3 ± 0.4 nats."]
