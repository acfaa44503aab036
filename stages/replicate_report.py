"""DVC stage `replicate/dvc.yaml:report`: the claims ledger in each article's own setup and in the study.

Reads every profile's outputs (`replicate/<profile>/{metrics,history,latent,figures}`)
and the default study's, evaluates every claim of the source articles in the
article's profile and in the default study side by side, and writes
reports/replicate/report.md and report.html: the ledger first, then per
profile its stated setup and assumptions, its table and findings, and its figures.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params, read_yaml
from aebench.common.files import atomic_path, check_writable
from aebench.reporting.claims import Setup, claims
from aebench.reporting.render import Block, Heading, Paragraph, render_html, render_markdown
from aebench.reporting.report import architecture_table, profile_section, profiles_ledger, reported_columns
from aebench.reporting.results import Roots, load_classifier_metrics, load_results


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=Path, required=True, help="folder of the profiles' params files")
    parser.add_argument("--names", nargs="*", help="the profiles to report (default: replicate/params.yaml's)")
    parser.add_argument("--outputs", type=Path, required=True, help="root of the profiles' outputs: <root>/<profile>/...")
    parser.add_argument("--study-params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--study-metrics", type=Path, required=True)
    parser.add_argument("--study-history", type=Path, required=True)
    parser.add_argument("--study-latent", type=Path, required=True)
    parser.add_argument("--study-figures", type=Path, required=True)
    parser.add_argument("--study-compare", type=Path, required=True)
    parser.add_argument("--classifiers", type=Path, required=True, help="folder of <dataset>.json classifier metrics")
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--html", type=Path, required=True)
    return parser.parse_args(argv)


def profiles_and_counterparts(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The profiles to report (--names, else replicate/params.yaml's), and article profile -> its MLP
    counterpart profile, for the pairs whose both profiles are reported."""
    replicate = read_yaml(args.profiles.parent / "params.yaml")
    names = list(args.names or replicate["profiles"])
    pairs = replicate.get("mlp_counterparts") or {}
    return names, {article: mlp for article, mlp in pairs.items() if article in names and mlp in names}


def load_setup(name: str, params_file: Path, roots: Roots, figures: Path, compare: Path) -> Setup:
    params = load_params(params_file)
    return Setup(name=name, results=load_results(params, roots), figures=figures, compare=compare,
                 binarize=params.data.binarize)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    names, counterparts = profiles_and_counterparts(args)
    study_params = load_params(args.study_params)
    study = load_setup("default study", args.study_params,
                       Roots(metrics=args.study_metrics, history=args.study_history, latent=args.study_latent),
                       args.study_figures, args.study_compare)
    profiles = {}
    for name in names:
        out = args.outputs / name
        profiles[name] = load_setup(name, args.profiles / f"{name}.yaml",
                                    Roots(metrics=out / "metrics", history=out / "history", latent=out / "latent"),
                                    out / "figures", out / "compare")
    datasets = sorted({r.key.dataset for s in (study, *profiles.values()) for r in s.results})
    classifier_metrics = load_classifier_metrics(datasets, args.classifiers)
    columns = reported_columns(classifier_metrics)
    ledger = claims(real_confidence={d: float(m["real_mean_confidence"]) for d, m in classifier_metrics.items()})
    check_writable([args.markdown, args.html])

    blocks: list[Block] = [
        Heading("aebench: the source articles' claims, in their own setups and in the study", 1),
        Paragraph(f"Each source article's setup runs as a profile (`replicate/profiles/<name>.yaml`) through the "
                  f"study's own train, evaluate and figures code; every claim is evaluated in the article's profile "
                  f"and in the default study (`params.yaml`: {len(study_params.seeds)} seeds, "
                  f"{study_params.train.epochs} epochs, {study_params.network.arch} {list(study_params.network.hidden)},"
                  f" binarize {study_params.data.binarize}). Verdicts: holds, does not hold, inconclusive (seeds "
                  "disagree, the paired 95% t-interval contains zero, or a single seed), not measured; a verdict "
                  "resting on a model that failed its convergence test is provisional and decides nothing. "
                  "Beside the numbers: n (the seeds of the models the claim reads), which models failed the "
                  "convergence test, and for a claim that is not decisive the seeds its observed spread needs (up "
                  f"to claims.max_seeds = {study_params.claims.max_seeds}). Numbers are mean ± sd over "
                  "seeds, read from the metrics and history files."),
        Heading("Claims ledger", 2),
        profiles_ledger(ledger, profiles, study, max_seeds=study_params.claims.max_seeds),
    ]
    if counterparts:
        pairs = ", ".join(f"{article} against {mlp}" for article, mlp in counterparts.items())
        blocks += [
            Heading("Does the architecture decide the claim?", 2),
            Paragraph(f"Profiles that differ from their article's only in the network ({pairs}): the same data, "
                      "likelihood, training and seeds, with the study's MLP in place of the networks the article "
                      "used. A claim that holds with one and not with the other is decided by the architecture."),
            architecture_table(ledger, profiles, counterparts, max_seeds=study_params.claims.max_seeds),
        ]
    for name in names:
        blocks += profile_section(profiles[name], args.profiles / f"{name}.yaml", columns)
    with atomic_path(args.markdown) as md_tmp, atomic_path(args.html) as html_tmp:
        md_tmp.write_text(render_markdown(blocks, markdown_path=args.markdown))
        html = render_html(blocks, title="aebench: the source articles' claims", html_path=args.html)
        html_tmp.write_text(html)
    print(f"replicate report: {len(names)} profiles -> {args.html} ({len(html) / 1e6:.1f} MB) in "
          f"{time.perf_counter() - started:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
