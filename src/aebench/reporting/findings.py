"""The comparison table and the findings, written from the numbers.

Every cell is a mean ± sd over the seeds of a metrics key (`columns.COLUMNS`).
A finding orders two variants only when the 95% t-interval of their paired
per-seed difference excludes zero, else it gives the interval and calls them
not distinguishable with n seeds; it is provisional when a model it compares
failed its convergence test (that model is still moving).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aebench.reporting.columns import COLUMNS, MISSING, MetricColumn
from aebench.reporting.labels import dataset_label, variant_label
from aebench.reporting.results import ModelResults
from aebench.reporting.statistics import PairedDifference, paired_difference, summarize


def cell(results: ModelResults, column: MetricColumn) -> str:
    """'mean ± sd' of a column over the model's seeds, or n/a."""
    values = [column.display(v) for v in results.values(column.key)]
    if any(v is None for v in values):
        return MISSING
    return summarize(values).format(column.digits)


def comparison_table(results: list[ModelResults], columns: Iterable[MetricColumn] = COLUMNS
                     ) -> tuple[list[str], list[list[str]]]:
    """(header, rows): dataset, variant, latent size, seeds, then mean ± sd per metric."""
    columns = list(columns)
    header = ["dataset", "model", "latent size D", "seeds n"] + [column.header for column in columns]
    rows = [
        [dataset_label(r.key.dataset), variant_label(r.key.variant), str(r.key.latent_dim), str(len(r.replicates))]
        + [cell(r, column) for column in columns]
        for r in results
    ]
    return header, rows


@dataclass(frozen=True)
class Comparison:
    """Variant `b` against variant `a` on one column: the paired per-seed difference b - a."""

    a: ModelResults
    b: ModelResults
    column: MetricColumn
    difference: PairedDifference

    @property
    def distinguishable(self) -> bool:
        return self.difference.excludes_zero

    def sentence(self) -> str:
        column, n = self.column, self.difference.n
        a, b = variant_label(self.a.key.variant), variant_label(self.b.key.variant)
        if not self.distinguishable:
            text = f"{a} and {b} are not distinguishable with {n} seed{'s' if n != 1 else ''}"
        else:
            verdict = ""
            if column.lower_is_better is not None:
                better = (self.difference.mean < 0) == column.lower_is_better
                verdict = f" ({'better' if better else 'worse'})"
            text = f"{b} is {'higher' if self.difference.mean > 0 else 'lower'} than {a}{verdict}"
        interval = self.difference.interval(column.digits)
        return _provisional((self.a, self.b), f"{text}: {b} − {a} = {interval} {column.unit}")


def _provisional(models: tuple[ModelResults, ...], text: str) -> str:
    """`text`, marked provisional when a seed of one of the models failed its convergence test."""
    unconverged = [f"{variant_label(m.key.variant)} seed {seed}" for m in models for seed in m.unconverged_seeds]
    return f"provisional ({', '.join(unconverged)} failed the convergence test): {text}" if unconverged else text


def compare(a: ModelResults, b: ModelResults, column: MetricColumn) -> Comparison | None:
    """The paired comparison of two models on a column; None when either lacks the value or the seeds differ."""
    if a.seeds != b.seeds:
        return None
    values_a, values_b = ([column.display(v) for v in m.values(column.key)] for m in (a, b))
    if any(v is None for v in values_a + values_b):
        return None
    return Comparison(a=a, b=b, column=column, difference=paired_difference(values_a, values_b))


def ranked(group: list[ModelResults], column: MetricColumn) -> list[ModelResults]:
    """The models that have the column, best first (largest first when it has no direction)."""
    known = [r for r in group if all(v is not None for v in r.values(column.key))]
    mean = {id(r): summarize([column.display(v) for v in r.values(column.key)]).mean for r in known}
    return sorted(known, key=lambda r: mean[id(r)], reverse=not column.lower_is_better)


def column_finding(group: list[ModelResults], column: MetricColumn) -> str | None:
    """'<column>: VAE 97.9 ± 0.3, EM-AE 290.5 ± 2.1 (n = 3); EM-AE is higher than VAE (worse): ...'."""
    order = ranked(group, column)
    if len(order) < 2:
        return None
    values = ", ".join(f"{variant_label(r.key.variant)} {cell(r, column)}" for r in order)
    pairs = [compare(better, worse, column) for better, worse in zip(order, order[1:])]
    comparisons = "; ".join(p.sentence() for p in pairs if p is not None)
    missing = [variant_label(r.key.variant) for r in group if r not in order]
    tail = f"; n/a for {', '.join(missing)}" if missing else ""
    return f"{column.header}, mean ± sd: {values}{tail}. {comparisons}."


@dataclass(frozen=True)
class FindingSection:
    title: str
    sentences: list[str]


def findings(results: list[ModelResults], columns: Iterable[MetricColumn] = COLUMNS) -> list[FindingSection]:
    """Per dataset and latent size: each column's ranking, each adjacent pair compared by its paired interval."""
    columns = list(columns)
    sections = []
    for dataset in dict.fromkeys(r.key.dataset for r in results):
        for size in sorted({r.key.latent_dim for r in results if r.key.dataset == dataset}):
            group = [r for r in results if r.key.dataset == dataset and r.key.latent_dim == size]
            sentences = [text for column in columns if (text := column_finding(group, column)) is not None]
            sections.append(FindingSection(f"{dataset_label(dataset)}, {size}-D latent", sentences))
    return sections


@dataclass(frozen=True)
class PairVerdict:
    """Two models over several columns: which columns tell them apart, and for whom."""

    a: ModelResults
    b: ModelResults
    for_a: list[Comparison]  # a distinguishably better
    for_b: list[Comparison]
    undecided: list[Comparison]

    @property
    def split(self) -> bool:
        return bool(self.for_a) and bool(self.for_b)

    def sentence(self, *, name: Callable[[MetricColumn], str] = lambda column: column.name) -> str:
        """One sentence; `name` says how a column is called in it."""
        a, b = variant_label(self.a.key.variant), variant_label(self.b.key.variant)

        def names(comparisons: list[Comparison]) -> str:
            return ", ".join(name(c.column) for c in comparisons)

        undecided = f"; not distinguishable on {names(self.undecided)}" if self.undecided else ""
        if self.split:
            text = (f"split: {a}'s samples are better on {names(self.for_a)}, {b}'s on {names(self.for_b)}"
                    f"{undecided}; no model is called better")
        elif self.for_a or self.for_b:
            winner, loser, wins = (a, b, self.for_a) if self.for_a else (b, a, self.for_b)
            text = f"{winner}'s samples are better than {loser}'s on every metric that tells them apart: {names(wins)}"
            text += undecided
        else:
            text = f"not distinguishable on any metric used ({names(self.undecided)})"
        return f"{a} against {b}: {_provisional((self.a, self.b), text)}."


def pair_verdict(a: ModelResults, b: ModelResults, columns: Iterable[MetricColumn]) -> PairVerdict:
    """a against b on every column with a direction that both have: each by its paired interval."""
    for_a, for_b, undecided = [], [], []
    for column in columns:
        comparison = compare(a, b, column)
        if comparison is None or column.lower_is_better is None:
            continue
        if not comparison.distinguishable:
            undecided.append(comparison)
        elif (comparison.difference.mean > 0) == column.lower_is_better:  # b - a > 0 is b worse when lower is better
            for_a.append(comparison)
        else:
            for_b.append(comparison)
    return PairVerdict(a=a, b=b, for_a=for_a, for_b=for_b, undecided=undecided)
