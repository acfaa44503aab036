"""Which dataset, variant or profile a stage runs, read from DVC's stage name rather than its command line.

DVC interpolates `${item...}` into a stage's command and runs the command through a shell before any
of our code can look at the values: a variant named `x;touch f;#` in params.yaml would run `touch f`.
So the dvc.yaml commands carry no value read from a params file. `dvc repro` names the stage it runs
in $DVC_STAGE (`train@mnist-vae`, `replicate/dvc.yaml:train@emae`); a stage started with
`--item dataset,variant` takes its item from there, and its path arguments name the item through
placeholders (`--out data/prepared/{dataset}.npz`), which are filled only after the values are checked.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

from aebench.common.errors import ConfigError

ENV = "DVC_STAGE"
ITEM_FIELDS = ("dataset", "variant", "profile")
# Dataset and variant names: lowercase letters, digits and _ (a variant's name check in config.py);
# profile names are article short names, which also have hyphens. Nothing here can leave a folder.
VALUE_PATTERN = {
    "dataset": re.compile(r"[a-z][a-z0-9_]*"),
    "variant": re.compile(r"[a-z][a-z0-9_]*"),
    "profile": re.compile(r"[a-z][a-z0-9_]*(?:-[a-z0-9_]+)*"),
}


def add_item_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--item",
        help="under dvc repro: the fields of the stage's item, read from $DVC_STAGE (e.g. dataset,variant); "
        "{field} in a path argument is replaced by the field's value",
    )


def stage_item(fields: list[str], address: str | None) -> dict[str, str]:
    """The item's values, by field, from a DVC stage address such as `dvc.yaml:train@mnist-vae`."""
    if not address:
        raise ConfigError(
            f"--item reads the stage's item from ${ENV}, which `dvc repro` sets; "
            "run by hand, name the item with --dataset / --variant (or the profile's --params) instead"
        )
    name = address.split(":", 1)[1] if re.match(r"[^@]*\.yaml:", address) else address
    stage, at, key = name.partition("@")
    if not at or not key:
        raise ConfigError(f"${ENV}={address!r}: expected <stage>@<item>, a foreach or matrix stage of dvc.yaml")
    # A matrix item's key joins its values with '-'; datasets and variants have none, so the split is exact.
    values = key.split("-", len(fields) - 1) if "profile" not in fields else [key]
    if len(values) != len(fields):
        raise ConfigError(f"stage {name!r}: expected {len(fields)} values ({', '.join(fields)}) after '@'")
    item = dict(zip(fields, values, strict=True))
    for field, value in item.items():
        if not VALUE_PATTERN[field].fullmatch(value):
            raise ConfigError(f"stage {name!r}: {value!r} is not a {field} name: lowercase letters, digits and _")
    return item


def resolve_item(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> argparse.Namespace:
    """Fill args from `--item`: the item's fields as attributes, and `{field}` in every path argument."""
    if not args.item:
        return args
    fields = [field.strip() for field in args.item.split(",")]
    unknown = [field for field in fields if field not in ITEM_FIELDS]
    if unknown or not fields:
        raise ConfigError(f"--item: unknown field(s) {unknown}; expected some of {', '.join(ITEM_FIELDS)}")
    item = stage_item(fields, environ.get(ENV))
    for field, value in item.items():
        if field in vars(args):
            if getattr(args, field) not in (None, value):
                raise ConfigError(f"--{field} {getattr(args, field)} contradicts the stage's item {value!r}")
            setattr(args, field, value)
    for name, value in vars(args).items():
        if isinstance(value, (str, Path)) and name != "item" and "{" in str(value):
            filled = str(value).format_map(_Fields(item))
            setattr(args, name, type(value)(filled))
    return args


class _Fields(dict):
    """format_map that names the missing placeholder instead of raising a bare KeyError."""

    def __missing__(self, key: str) -> str:
        raise ConfigError(f"a path argument names {{{key}}}, which is not a field of --item ({', '.join(self)})")
