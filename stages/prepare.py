"""DVC stage `prepare@<dataset>`: obtain, verify and split one dataset.

Tries the sources of `aebench.data.sources.SOURCES` in order (one line each on
stderr), then writes the train/val/test arrays and a JSON describing them;
which source delivered goes to the run-info record.
"""

from __future__ import annotations

import _bootstrap  # noqa: F401 - first: re-runs this stage with the project's venv when needed

import argparse
import sys
import time
from pathlib import Path

from aebench.common.cli import run_stage
from aebench.common.config import load_params
from aebench.common.files import check_writable
from aebench.common.runinfo import write_runinfo
from aebench.common.stage_item import add_item_argument, resolve_item
from aebench.data.official import dataset_spec
from aebench.data.sources import obtain_dataset, source_request
from aebench.data.splits import data_info, prepare_splits, write_prepared


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_item_argument(parser)
    parser.add_argument("--dataset", help="mnist or fashion_mnist (or --item dataset under dvc repro)")
    parser.add_argument("--cache", required=True, type=Path, help="folder of verified raw files from earlier runs")
    parser.add_argument("--out", required=True, type=Path, help="the prepared .npz to write")
    parser.add_argument("--info", required=True, type=Path, help="the info .json to write")
    parser.add_argument("--runinfo", required=True, type=Path, help="root folder of run-info records (not hashed)")
    parser.add_argument("--params", default=Path("params.yaml"), type=Path)
    args = resolve_item(parser.parse_args(argv))
    if args.dataset is None:
        parser.error("--dataset is required (or --item dataset under dvc repro)")
    return args


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    params = load_params(args.params)
    spec = dataset_spec(args.dataset)
    runinfo = args.runinfo / "prepare" / f"{spec.name}.json"
    check_writable([args.out, args.info, runinfo])
    request = source_request(
        cache_dir=args.cache,
        source_dir=params.data.source_dir,
        download_timeout=params.data.download_timeout,
    )
    obtained = obtain_dataset(spec, request)
    prepared = prepare_splits(
        obtained, val_size=params.data.val_size, seed=params.data.split_seed, subset=params.data.subset
    )
    info = data_info(obtained, prepared, split_seed=params.data.split_seed, subset=params.data.subset)
    write_prepared(args.out, args.info, prepared, info)
    seconds = time.perf_counter() - started
    write_runinfo(runinfo, {"stage": "prepare", "dataset": spec.name, "source": obtained.source, "seconds": seconds})
    sizes = ", ".join(f"{split} {size}" for split, size in info["splits"].items())
    print(f"prepare@{spec.name}: wrote {args.out} ({sizes}) in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
