"""DVC stage `figures@<dataset>-<variant>`: every per-model PNG of one variant at every latent size.

Writes `<out>/<dataset>/<variant>/latent-<D>/<name>.png` for each figure of
`aebench.reporting.figures.MODEL_FIGURES` that applies to the model. Only
reads files: every seed's metrics, history and latent arrays, and the pixels
the evaluation decoded for the first seed's figures (`seed-<s>.figures.npz`
beside its latent arrays); no checkpoint, no data, no torch.
Every input is checked before any drawing, and `<out>/<dataset>/<variant>`
appears complete or not at all (with --latent-dim, only that size's folder is
replaced). Without --dataset and --variant it draws every model of the params
file (a replicate profile).
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import atomic_path, check_writable
from aebench.common.layout import ModelKey, selected_keys
from aebench.common.parallel import one_thread
from aebench.common.stage_item import add_item_argument, resolve_item
from aebench.reporting.figures import draw_model_figures, figure_inputs
from aebench.reporting.results import Roots, load_results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_item_argument(parser)
    parser.add_argument("--dataset", help="draw this dataset only (default: every dataset of params)")
    parser.add_argument("--variant", help="draw this variant only (default: every variant of params)")
    parser.add_argument("--latent-dim", type=int, help="draw this latent size only (default: every one)")
    parser.add_argument("--history", type=Path, required=True, help="root folder of the per-epoch CSVs")
    parser.add_argument("--metrics", type=Path, required=True, help="root folder of the metrics JSONs")
    parser.add_argument("--latent", type=Path, required=True,
                        help="root folder of the latent arrays and figure pixels")
    parser.add_argument("--out", type=Path, required=True, help="root folder of the PNGs to write")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return resolve_item(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    params = load_params(args.params)
    keys = selected_keys(params, dataset=args.dataset, variant=args.variant, latent_dim=args.latent_dim)
    # Each output folder is replaced whole: a variant's, or one latent size's when only that one is drawn.
    folders: dict[Path, list[ModelKey]] = {}
    for key in keys:
        folder = key.folder(args.out) if args.latent_dim is not None else args.out / key.dataset / key.variant
        folders.setdefault(folder, []).append(key)
    one_thread()  # t-SNE's PCA start and the PNG bytes must not depend on the machine's core count

    # Every input is read and checked before anything is drawn.
    roots = Roots(metrics=args.metrics, history=args.history, latent=args.latent)
    inputs = {each.key: figure_inputs(each, params, roots) for each in load_results(params, roots, keys)}
    check_writable(list(folders))  # after the checks, so a refused input leaves no empty folder behind

    for folder, group in folders.items():
        with atomic_path(folder) as tmp:
            for key in group:
                started = time.perf_counter()
                written = draw_model_figures(inputs[key], tmp / key.folder(args.out).relative_to(folder))
                print(f"{key.name}: {len(written)} figures in {time.perf_counter() - started:.1f} s",
                      file=sys.stderr, flush=True)
        print(f"wrote {folder}", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
