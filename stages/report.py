"""DVC stage `report`: the comparison figures, reports/report.md and a self-contained report.html.

Reads the metrics, histories, latent means, data-info JSONs and per-model
figures of every model in params (datasets x models x latent_dims), writes the
comparison figures and both reports, and logs the reports to MLflow as the
artifacts of a "study" run with every model run nested under it. The three
outputs appear together or not at all. No torch: this stage only reads files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import atomic_path
from aebench.reporting.compare import draw_comparison_figures
from aebench.reporting.document import render_markdown
from aebench.reporting.environment import environment
from aebench.reporting.html import render_html
from aebench.reporting.inputs import load_classifier_accuracies, load_data_infos, load_results
from aebench.reporting.report import ReportInputs, build_report, title
from aebench.reporting.study_run import log_study


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", required=True, type=Path, help="folder of <dataset>.json data-info files")
    parser.add_argument("--history", required=True, type=Path, help="folder of <dataset>/<model>-<D>.csv histories")
    parser.add_argument("--metrics", required=True, type=Path, help="folder of <dataset>/<model>-<D>.json metrics")
    parser.add_argument("--latent", required=True, type=Path, help="folder of <dataset>/<model>-<D>.npz latent means")
    parser.add_argument("--figures", required=True, type=Path, help="folder of <dataset>/<model>-<D>/*.png figures")
    parser.add_argument("--compare", required=True, type=Path, help="the folder of comparison figures to write")
    parser.add_argument("--markdown", required=True, type=Path, help="the Markdown report to write")
    parser.add_argument("--html", required=True, type=Path, help="the self-contained HTML report to write")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    results = load_results(params, metrics_dir=args.metrics, history_dir=args.history, latent_dir=args.latent)
    data_infos = load_data_infos(params.datasets, args.prepared)
    accuracies = load_classifier_accuracies(params.datasets, args.metrics)
    with (
        atomic_path(args.compare) as compare_tmp,
        atomic_path(args.markdown) as markdown_tmp,
        atomic_path(args.html) as html_tmp,
    ):
        drawn = draw_comparison_figures(results, threshold=params.evaluate.au_threshold, out_dir=compare_tmp)
        inputs = ReportInputs(
            params=params,
            results=results,
            data_infos=data_infos,
            classifier_accuracy=accuracies,
            environment=environment(),
            figures_dir=args.figures,
            compare_figures={
                dataset: [(args.compare / path.name, path) for path in paths] for dataset, paths in drawn.items()
            },
            metrics_dir=args.metrics,
            history_dir=args.history,
        )
        blocks = build_report(inputs)
        markdown = render_markdown(blocks, markdown_path=args.markdown)
        html = render_html(blocks, title=title(params))
        markdown_tmp.write_text(markdown)
        html_tmp.write_text(html)
        # Last, so that a failure anywhere before leaves neither files nor a study run behind.
        run_id = log_study(params, results, markdown=markdown, html=html)
    seconds = time.perf_counter() - started
    print(
        f"[report] {len(results)} models: wrote {args.markdown}, {args.html} ({len(html) / 1e6:.1f} MB) and "
        f"{args.compare}; MLflow study run {run_id} in {seconds:.1f} s",
        file=sys.stderr,
    )


if __name__ == "__main__":
    run_stage(main)
