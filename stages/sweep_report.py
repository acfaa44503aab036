"""DVC stage `sweep/dvc.yaml:report`: the sweep report over every grid point and seed.

Reads the grid's metrics files (or, after a cluster sweep, the DVC experiments
it pushed: `--experiments exp-show.json`, the output of `dvc exp show --json`),
draws the rate-distortion plane and each measure against beta and gamma, and
writes reports/sweep/report.md and report.html. In MLflow it logs one parent
run for the sweep and one child run per grid point (means over the seeds).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import json
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.errors import AebenchError
from aebench.common.files import atomic_path, check_writable, workspace_of
from aebench.common.tracking import open_store, preflight, resolve_tracking_uri
from aebench.reporting.render import render_html, render_markdown
from aebench.reporting.sweep import draw_sweep_figures, experiments_frame, metrics_frame, sweep_report
from aebench.reporting.sweep_run import log_sweep


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("sweep/params.yaml"), help="the sweep's params file")
    parser.add_argument("--metrics", type=Path, required=True, help="root folder of the grid's metrics files")
    parser.add_argument("--experiments", type=Path, help="read `dvc exp show --json` output instead of --metrics")
    parser.add_argument("--figures", type=Path, required=True, help="folder of the report's figures to write")
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--html", type=Path, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    workspace = workspace_of(args.params)
    if args.experiments is not None:
        frame = experiments_frame(json.loads(args.experiments.read_text()), params_file=args.params.as_posix(),
                                  metrics_root=args.metrics.as_posix())
        source = f"the DVC experiments in {args.experiments}"
    else:
        frame = metrics_frame(params, args.metrics)
        source = f"the metrics files under `{args.metrics}`"
    if frame.empty:
        raise AebenchError(f"{args.experiments or args.metrics}: no grid point's metrics found")
    missing = sorted(set(params.variants) - set(frame["point"]))
    if missing:
        print(f"warning: sweep report: no metrics for {', '.join(missing)}", file=sys.stderr)
    check_writable([args.figures, args.markdown, args.html])
    preflight(resolve_tracking_uri(params.mlflow.tracking_uri, workspace))
    with atomic_path(args.figures) as figures_tmp, atomic_path(args.markdown) as md_tmp, \
            atomic_path(args.html) as html_tmp:
        figures_tmp.mkdir(parents=True)
        drawn = [(spec, args.figures / path.name, path.read_bytes())
                 for spec, path in draw_sweep_figures(frame, figures_tmp)]
        blocks = sweep_report(frame, figures=drawn, au_threshold=params.evaluate.au_threshold, source=source)
        markdown = render_markdown(blocks, markdown_path=args.markdown)
        html = render_html(blocks, title="aebench sweep: the KL continuum", html_path=args.html)
        md_tmp.write_text(markdown)
        html_tmp.write_text(html)
        store = open_store(params.mlflow.tracking_uri, params.mlflow.experiment, workspace=workspace)
        run_id = log_sweep(store, frame, artifacts={"report.md": markdown, "report.html": html})
    print(f"sweep report: {frame['point'].nunique()} points x {frame['seed'].nunique()} seeds -> {args.html}; "
          f"MLflow sweep run {run_id}; {time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
