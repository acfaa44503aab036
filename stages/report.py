"""DVC stage `report`: the comparison figures, reports/report.md and a self-contained report.html.

Reads the metrics, histories, latent arrays and figures of every model of
params at every seed, the data-info JSONs and the classifiers' metrics;
writes the comparison figures and both reports (which appear together or not
at all), and logs the reports to MLflow as the study run of this pipeline
state. Beside them it writes `reports/timings.md` from the run-info records
(wall times, machines: not hashed by DVC). No torch: this stage only reads files.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import atomic_path, check_writable, workspace_of, write_text
from aebench.common.runinfo import read_runinfos
from aebench.common.tracking import open_store, preflight, resolve_tracking_uri
from aebench.reporting.claims import Setup, claims
from aebench.reporting.compare import CompareContext, draw_comparison_figures
from aebench.reporting.environment import package_versions
from aebench.reporting.render import render_html, render_markdown
from aebench.reporting.report import ReportInputs, build_report, passing_quality_metrics, title
from aebench.reporting.results import Roots, load_classifier_metrics, load_data_infos, load_results
from aebench.reporting.study_run import log_study
from aebench.reporting.timings import timing_blocks


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prepared", required=True, type=Path, help="folder of <dataset>.json data-info files")
    parser.add_argument("--history", required=True, type=Path, help="root folder of the training histories")
    parser.add_argument("--metrics", required=True, type=Path, help="root folder of the metrics JSONs")
    parser.add_argument("--latent", required=True, type=Path, help="root folder of the latent arrays")
    parser.add_argument("--figures", required=True, type=Path, help="root folder of the per-model figures")
    parser.add_argument("--classifiers", required=True, type=Path, help="folder of <dataset>.json classifier metrics")
    parser.add_argument("--compare", required=True, type=Path, help="the folder of comparison figures to write")
    parser.add_argument("--markdown", required=True, type=Path, help="the Markdown report to write")
    parser.add_argument("--html", required=True, type=Path, help="the self-contained HTML report to write")
    parser.add_argument("--runinfo", required=True, type=Path, help="root folder of run-info records (not hashed)")
    parser.add_argument("--timings", required=True, type=Path, help="the wall-time page to write (not hashed)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    workspace = workspace_of(args.params)
    results = load_results(params, Roots(metrics=args.metrics, history=args.history, latent=args.latent))
    data_infos = load_data_infos(params.datasets, args.prepared)
    classifier_metrics = load_classifier_metrics(params.datasets, args.classifiers)
    check_writable([args.compare, args.markdown, args.html, args.timings])
    preflight(resolve_tracking_uri(params.mlflow.tracking_uri, workspace))
    real_confidence = {d: float(m["real_mean_confidence"]) for d, m in classifier_metrics.items()}
    setup = Setup(name="default study", results=results, figures=args.figures, compare=args.compare,
                  binarize=params.data.binarize)
    with (
        atomic_path(args.compare) as compare_tmp,
        atomic_path(args.markdown) as markdown_tmp,
        atomic_path(args.html) as html_tmp,
    ):
        context = CompareContext.from_params(params, passing_quality=passing_quality_metrics(classifier_metrics))
        drawn = draw_comparison_figures(results, context=context, out_dir=compare_tmp)
        blocks = build_report(ReportInputs(
            params=params, results=results, data_infos=data_infos, classifier_metrics=classifier_metrics,
            packages=package_versions(), figures_dir=args.figures, compare_context=context,
            compare_figures={dataset: [(spec, args.compare / path.name, path) for spec, path in figures]
                             for dataset, figures in drawn.items()},
            claims=claims(real_confidence=real_confidence), study_setup=setup, timings_page=args.timings))
        markdown = render_markdown(blocks, markdown_path=args.markdown)
        html = render_html(blocks, title=title(params), html_path=args.html)
        markdown_tmp.write_text(markdown)
        html_tmp.write_text(html)
        # Last, so that a failure anywhere before leaves neither files nor a study run behind.
        store = open_store(params.mlflow.tracking_uri, params.mlflow.experiment, workspace=workspace)
        run_id = log_study(store, name="study", params_dict=params.to_dict(), models=len(results),
                           seeds=list(params.seeds), artifacts={"report.md": markdown, "report.html": html})
    write_text(args.timings, render_markdown(timing_blocks(read_runinfos(args.runinfo)), markdown_path=args.timings))
    seconds = time.perf_counter() - started
    print(f"report: {len(results)} models x {len(params.seeds)} seeds: wrote {args.markdown}, {args.html} "
          f"({len(html) / 1e6:.1f} MB), {args.compare} and {args.timings}; MLflow study run {run_id}; "
          f"{seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
