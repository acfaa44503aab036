"""The report's content as blocks: findings, comparison table, figures, methods, setup.

Every number placed here is read from a metrics JSON, a history CSV, a
data-info JSON or params; the prose around them only names what they are.
`build_report` returns the block list that `document.render_markdown` and
`html.render_html` turn into the two files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from aebench.common.config import Params, flatten
from aebench.evaluation.metrics import METRIC_DOCS  # the schema module: no torch
from aebench.reporting.catalog import (
    CODE_POINTS,
    COMPARE_FIGURES,
    DEFAULT_CODE_POINT,
    DEFAULT_MEAN_NAME,
    MEAN_NAMES,
    dataset_label,
    figures_for,
    model_label,
    projection_phrase,
)
from aebench.reporting.document import Block, Bullets, Code, Figure, Heading, Paragraph, Table
from aebench.reporting.findings import findings
from aebench.reporting.inputs import ModelResult, ReportInputError
from aebench.reporting.table import COLUMNS, comparison_table, missing_notes

# data.binarize -> what the test images in the figures are (the figures stage encodes what evaluation scores).
TEST_VIEWS = {
    "dynamic": "binarized once with seed {seed}, as the evaluation scores them",
    "none": "grey levels, as stored",
}


@dataclass(frozen=True)
class ReportInputs:
    params: Params
    results: list[ModelResult]
    data_infos: dict[str, dict[str, Any]]
    classifier_accuracy: dict[str, float | None]
    environment: dict[str, Any]
    figures_dir: Path  # per-model PNGs: <figures_dir>/<dataset>/<model>-<D>/<name>.png
    compare_figures: dict[str, list[tuple[Path, Path]]]  # dataset -> [(final path, where it is now)]
    metrics_dir: Path
    history_dir: Path


def title(params: Params) -> str:
    models = ", ".join(model_label(m) for m in params.models)
    datasets = " and ".join(dataset_label(d) for d in params.datasets)
    return f"aebench: {models} on {datasets}"


def _label(result: ModelResult) -> str:
    return f"{model_label(result.key.model)}-{result.key.latent_dim} on {dataset_label(result.key.dataset)}"


def caption_facts(result: ModelResult, params: Params) -> dict[str, Any]:
    """The values a figure caption may name (see `catalog.MODEL_FIGURES`)."""
    figures = params.figures
    return {
        "model": model_label(result.key.model),
        "dataset": dataset_label(result.key.dataset),
        "latent_dim": result.key.latent_dim,
        "active": int(result.value("latent.active_units")),
        "threshold": f"{float(result.value('latent.au_threshold')):g}",
        "grid": figures.samples_grid,
        "recon_images": figures.recon_images,
        "code_point": CODE_POINTS.get(result.key.model, DEFAULT_CODE_POINT),
        "mean_name": MEAN_NAMES.get(result.key.model, DEFAULT_MEAN_NAME),
        "test_view": TEST_VIEWS[params.data.binarize].format(seed=params.seed),
        "seed": params.seed,
        "activity_images": min(figures.activity_images, len(result.latent.mu)),
        "latent_images": len(result.latent.mu),
        "projection": projection_phrase(result.key.latent_dim),
        "manifold_steps": figures.manifold_steps,
        "manifold_range": f"{figures.manifold_range:g}",
        "interpolation_steps": figures.interpolation_steps,
    }


def _read_png(path: Path) -> bytes:
    if not path.is_file():
        raise ReportInputError(f"{path}: figure not found (run the figures stage first)")
    return path.read_bytes()


def introduction(inputs: ReportInputs) -> list[Block]:
    params, results = inputs.params, inputs.results
    epochs = sorted({len(r.history) for r in results})
    return [
        Heading(title(params), 1),
        Paragraph(
            f"{len(results)} trained models ({len(params.datasets)} datasets x {len(params.models)} objectives x "
            f"{len(params.latent_dims)} latent sizes, {' / '.join(map(str, epochs))} epochs each), evaluated on "
            f"the test split. Every number is read from the stage outputs "
            f"`{inputs.metrics_dir}/<dataset>/<model>-<D>.json` and `{inputs.history_dir}/<dataset>/<model>-<D>.csv`; "
            f"losses and likelihoods are in nats per image (summed over the 784 pixels, averaged over images). "
            f"Git commit `{inputs.environment['git commit']}`."
        ),
    ]


def findings_section(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [
        Heading("Findings", 2),
        Paragraph("Written from the metrics files: each ranking, count and difference below is computed, "
                  "so a study with other parameters reads differently."),
    ]
    for section in findings(inputs.results, classifier_accuracy=inputs.classifier_accuracy):
        blocks += [Heading(section.title, 3), Bullets(section.sentences)]
    return blocks


def table_section(inputs: ReportInputs) -> list[Block]:
    header, rows = comparison_table(inputs.results)
    samples = sorted({r.value("test.iw_samples") for r in inputs.results if r.value("test.nll_iw") is not None})
    notes = [f"n/a: {note.rstrip('.')}." for note in missing_notes(inputs.results)]
    if samples:
        notes.append(f"IW NLL uses K = {' / '.join(map(str, samples))} importance samples per image.")
    caption = " ".join(notes)
    return [
        Heading("Comparison table", 2),
        Paragraph("One row per dataset x model x latent size; each column's key in the metrics file is listed "
                  "under \"How the numbers were computed\"."),
        Table(header=header, rows=rows, label_columns=3, caption=caption, css_class="comparison"),
    ]


def comparison_figures_section(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Comparison figures", 2)]
    models = ", ".join(model_label(m) for m in inputs.params.models)
    for dataset, figures in inputs.compare_figures.items():
        blocks.append(Heading(dataset_label(dataset), 3))
        for spec, (final, current) in zip(COMPARE_FIGURES, figures, strict=True):
            thresholds = sorted({float(r.value("latent.au_threshold")) for r in inputs.results
                                 if r.key.dataset == dataset})
            caption = spec.caption.format(
                dataset=dataset_label(dataset), models=models, threshold=" / ".join(f"{t:g}" for t in thresholds)
            )
            blocks.append(Figure(path=final, png=_read_png(current), caption=f"{spec.title}. {caption}",
                                 alt=f"{spec.title}, {dataset_label(dataset)}"))
    return blocks


def model_figures_section(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Figures per model", 2)]
    dataset = None
    for result in inputs.results:
        if result.key.dataset != dataset:
            dataset = result.key.dataset
            blocks.append(Heading(dataset_label(dataset), 3))
        blocks.append(Heading(_label(result), 4))
        facts = caption_facts(result, inputs.params)
        for spec in figures_for(result.key.latent_dim):
            path = inputs.figures_dir / result.key.stem / spec.filename
            caption = f"{spec.title}. {spec.caption.format(**facts)}"
            alt = f"{spec.title}, {_label(result)}"
            blocks.append(Figure(path=path, png=_read_png(path), caption=caption, alt=alt))
    return blocks


def methods_section(inputs: ReportInputs) -> list[Block]:
    rows = []
    for column in COLUMNS:
        how = METRIC_DOCS.get(column.source, "")
        if column.source.startswith("history"):
            how = "Sum of the per-epoch wall times (`seconds`) of the training history, validation included."
        rows.append([column.header, f"`{column.source}`", how])
    listed = {column.source for column in COLUMNS}
    rows += [["", f"`{key}`", text] for key, text in METRIC_DOCS.items() if key not in listed]
    return [
        Heading("How the numbers were computed", 2),
        Paragraph("Descriptions from `aebench.evaluation.metrics.METRIC_DOCS`, where every key of the metrics files "
                  "is documented (unit in brackets). All metrics are on the test split."),
        Table(header=["column", "metrics key", "how it is computed"], rows=rows, label_columns=3),
    ]


def _source_text(source: Any) -> str:
    if isinstance(source, dict):
        return "; ".join(f"{key}: {value}" for key, value in flatten(source).items())
    return str(source)


def data_blocks(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = [Heading("Data", 3)]
    for dataset, info in inputs.data_infos.items():
        splits = ", ".join(f"{split} {size:,}" for split, size in info["splits"].items())
        facts = [f"Source: {_source_text(info['source'])}", f"Splits: {splits}"]
        if info.get("val_seed") is not None:
            facts.append(f"Validation images drawn from the official train split with seed {info['val_seed']}")
        if info.get("subset") is not None:
            facts.append(f"Subset: only the first {info['subset']:,} images of each split were kept")
        accuracy = inputs.classifier_accuracy.get(dataset)
        if accuracy is not None:
            facts.append(f"Sample-quality classifier test accuracy: {100 * float(accuracy):.2f}%")
        files = [
            [name, f"{entry.get('bytes', 0):,}", f"`{entry.get('md5', '')}`", f"`{entry.get('sha256', '')}`"]
            for name, entry in info["files"].items()
        ]
        blocks += [
            Heading(dataset_label(dataset), 4),
            Bullets(facts),
            Table(header=["file", "bytes", "md5", "sha256"], rows=files, label_columns=4),
        ]
    return blocks


def wall_time_blocks(inputs: ReportInputs) -> list[Block]:
    rows = []
    for result in inputs.results:
        epochs = len(result.history)
        rows.append([
            _label(result), str(epochs), f"{result.train_seconds:,.1f}",
            f"{result.train_seconds / epochs:,.1f}", f"{result.eval_seconds:,.1f}",
        ])
    train = sum(r.train_seconds for r in inputs.results)
    evaluate = sum(r.eval_seconds for r in inputs.results)
    rows.append(["all models", "", f"{train:,.1f}", "", f"{evaluate:,.1f}"])
    return [
        Heading("Wall times", 3),
        Paragraph("Training: the history's per-epoch `seconds`, summed; evaluation: the metrics' `timing.seconds`."),
        Table(header=["model", "epochs", "training (s)", "per epoch (s)", "evaluation (s)"], rows=rows),
    ]


def setup_section(inputs: ReportInputs) -> list[Block]:
    env = inputs.environment
    packages = [[name, version] for name, version in env["packages"].items()]
    hardware = [[name, value] for name, value in env["hardware"].items()]
    return [
        Heading("Setup", 2),
        Heading("Parameters", 3),
        Paragraph("The resolved `params.yaml` the report was built with (DVC reruns every stage whose "
                  "parameters changed, so the stage outputs above were made with these values)."),
        Code(yaml.safe_dump(inputs.params.to_dict(), sort_keys=False)),
        *data_blocks(inputs),
        Heading("Software", 3),
        Paragraph(f"Git commit `{env['git commit']}`."),
        Table(header=["package", "version"], rows=packages, label_columns=2),
        Heading("Hardware", 3),
        Paragraph("The machine that built this report (under `dvc repro`, the one that ran the pipeline)."),
        Table(header=["component", "value"], rows=hardware, label_columns=2),
        *wall_time_blocks(inputs),
    ]


SECTIONS = (
    introduction,
    findings_section,
    table_section,
    comparison_figures_section,
    model_figures_section,
    methods_section,
    setup_section,
)


def build_report(inputs: ReportInputs) -> list[Block]:
    blocks: list[Block] = []
    for section in SECTIONS:
        blocks += section(inputs)
    return blocks
