"""Findings written from the numbers: every figure and every ranking is computed here.

Nothing in this module states a result; it only phrases comparisons of values
read from the metrics and history files, so a study run with other parameters
gets other sentences. Each finding function takes the models of one group
(a dataset and a latent size, or a dataset) and returns sentences; `FINDINGS`
lists them in report order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aebench.reporting.catalog import CLASS_NAMES, dataset_label, model_label
from aebench.reporting.inputs import ModelResult
from aebench.reporting.table import COLUMN_BY_NAME, MetricColumn, format_number


@dataclass(frozen=True)
class FindingSection:
    title: str
    sentences: list[str]


def _signed(delta: float, digits: int) -> str:
    return f"{delta:+,.{digits}f}"


def _names(results: list[ModelResult]) -> str:
    return ", ".join(model_label(r.key.model) for r in results)


def ranking(group: list[ModelResult], column: MetricColumn) -> str | None:
    """'lowest first: VAE 95.21, EM-AE 130.40 (+35.19); n/a for AE', or None when no model has the value."""
    known = [(r, column.value(r)) for r in group if column.value(r) is not None]
    unknown = [r for r in group if column.value(r) is None]
    if not known:
        return None
    known.sort(key=lambda pair: pair[1], reverse=not column.lower_is_better)
    best = known[0][1]
    order = "lowest" if column.lower_is_better else "highest"
    parts = [f"{model_label(known[0][0].key.model)} {format_number(best, column.digits)}"]
    parts += [
        f"{model_label(r.key.model)} {format_number(v, column.digits)} ({_signed(v - best, column.digits)})"
        for r, v in known[1:]
    ]
    text = f"{column.header}, {order} first: {', '.join(parts)}"
    if unknown:
        text += f"; n/a for {_names(unknown)}"
    return text


def _ranked_finding(column_name: str) -> Callable[[list[ModelResult]], list[str]]:
    column = COLUMN_BY_NAME[column_name]

    def finding(group: list[ModelResult]) -> list[str]:
        text = ranking(group, column)
        return [text + "."] if text else []

    return finding


def active_units(group: list[ModelResult]) -> list[str]:
    thresholds = sorted({float(r.value("latent.au_threshold")) for r in group})
    counts = ", ".join(
        f"{model_label(r.key.model)} {int(r.value('latent.active_units'))} of {r.key.latent_dim}" for r in group
    )
    return [f"Active dimensions (A_u > {' / '.join(f'{t:g}' for t in thresholds)}): {counts}."]


def elbo_gap(group: list[ModelResult]) -> list[str]:
    """How far the ELBO sits above the importance-weighted NLL: the looseness of each model's own q."""
    gaps = [
        (r, float(r.value("test.neg_elbo")) - float(r.value("test.nll_iw")))
        for r in group
        if r.value("test.neg_elbo") is not None and r.value("test.nll_iw") is not None
    ]
    if not gaps:
        return []
    parts = ", ".join(f"{model_label(r.key.model)} {gap:,.2f}" for r, gap in gaps)
    return [f"-ELBO minus IW NLL (nats/image; how much tighter the K-sample bound is than the ELBO): {parts}."]


def sample_classes(group: list[ModelResult]) -> list[str]:
    """The most frequent class the sample classifier sees in each model's prior samples."""
    parts = []
    for result in group:
        histogram = [int(count) for count in result.value("samples.class_histogram")]
        total = sum(histogram)
        if total == 0:
            continue
        top = max(range(len(histogram)), key=histogram.__getitem__)
        names = CLASS_NAMES.get(result.key.dataset, [str(c) for c in range(len(histogram))])
        name = names[top] if top < len(names) else str(top)
        parts.append(f"{model_label(result.key.model)} '{name}' ({100 * histogram[top] / total:.1f}% of {total:,})")
    if not parts:
        return []
    return [f"Most frequent class among the samples from N(0, I), as the classifier labels them: {', '.join(parts)}."]


# Per dataset and latent size, in report order.
GROUP_FINDINGS: tuple[Callable[[list[ModelResult]], list[str]], ...] = (
    active_units,
    _ranked_finding("IW NLL"),
    _ranked_finding("-ELBO"),
    elbo_gap,
    _ranked_finding("reconstruction BCE"),
    _ranked_finding("probe accuracy"),
    _ranked_finding("Frechet distance"),
    _ranked_finding("sample class entropy"),
    sample_classes,
)


def latent_size_effect(results: list[ModelResult]) -> list[str]:
    """Per model: how reconstruction and active units change from the smallest to the largest latent."""
    column = COLUMN_BY_NAME["reconstruction BCE"]
    sentences = []
    for model in dict.fromkeys(r.key.model for r in results):
        runs = sorted((r for r in results if r.key.model == model), key=lambda r: r.key.latent_dim)
        if len(runs) < 2:
            continue
        small, large = runs[0], runs[-1]
        before, after = column.value(small), column.value(large)
        sentences.append(
            f"{model_label(model)} from D = {small.key.latent_dim} to D = {large.key.latent_dim}: "
            f"{column.header} {format_number(before, 2)} -> {format_number(after, 2)} "
            f"({_signed(after - before, 2)}); active units {int(small.value('latent.active_units'))} -> "
            f"{int(large.value('latent.active_units'))}."
        )
    return sentences


def convergence(results: list[ModelResult]) -> list[str]:
    """Whether each model's validation loss was still falling in its last epoch (more epochs would help)."""
    falling, rising = [], []
    for result in results:
        history = result.history
        if len(history) < 2:
            continue
        change = float(history["val_loss"].iloc[-1] - history["val_loss"].iloc[-2])
        (falling if change < 0 else rising).append((result, change))
    if not falling and not rising:
        return ["Every model trained for a single epoch: no trend in the validation loss to report."]
    total = len(falling) + len(rising)
    sentences = []
    if falling:
        drops = [-change for _, change in falling]
        sentences.append(
            f"Validation loss still fell in the last epoch for {len(falling)} of {total} models "
            f"(by {min(drops):,.2f} to {max(drops):,.2f} nats/image): those were still learning when training stopped."
        )
    if rising:
        named = ", ".join(f"{_label(r)} ({_signed(change, 2)})" for r, change in rising)
        sentences.append(f"It did not fall in the last epoch for {len(rising)} of {total}: {named} nats/image.")
    epochs = sorted({len(r.history) for r in results})
    seconds = sum(r.train_seconds for r in results)
    sentences.append(
        f"Training took {' / '.join(map(str, epochs))} epochs per model and {seconds:,.0f} s in all "
        f"({_slowest(results)})."
    )
    return sentences


def _label(result: ModelResult) -> str:
    return f"{model_label(result.key.model)}-{result.key.latent_dim} on {dataset_label(result.key.dataset)}"


def _slowest(results: list[ModelResult]) -> str:
    slowest = max(results, key=lambda r: r.train_seconds)
    return f"longest: {_label(slowest)}, {slowest.train_seconds:,.1f} s"


def sample_judge(accuracy: float | None) -> list[str]:
    """The sample-quality numbers are only as good as the classifier that computes them."""
    if accuracy is None:
        return []
    return [f"The sample-quality numbers (class entropy, confidence, Frechet distance, class shares) come from a "
            f"classifier with {100 * float(accuracy):.2f}% test accuracy on this dataset."]


def findings(
    results: list[ModelResult], *, classifier_accuracy: dict[str, float | None] | None = None
) -> list[FindingSection]:
    """Per dataset: one section per latent size, one on the latent size's effect; then one on training."""
    sections = []
    for dataset in dict.fromkeys(r.key.dataset for r in results):
        of_dataset = [r for r in results if r.key.dataset == dataset]
        for size in sorted({r.key.latent_dim for r in of_dataset}):
            group = [r for r in of_dataset if r.key.latent_dim == size]
            sentences = [text for finding in GROUP_FINDINGS for text in finding(group)]
            sections.append(FindingSection(title=f"{dataset_label(dataset)}, {size}-D latent", sentences=sentences))
        overall = latent_size_effect(of_dataset) + sample_judge((classifier_accuracy or {}).get(dataset))
        if overall:
            sections.append(FindingSection(title=f"{dataset_label(dataset)}, across latent sizes", sentences=overall))
    sections.append(FindingSection(title="Training", sentences=convergence(results)))
    return sections
