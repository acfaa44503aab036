"""No params value reaches a shell: stage commands carry none, and stages take their item from $DVC_STAGE."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from aebench.common.errors import ConfigError
from aebench.common.stage_item import add_item_argument, resolve_item, stage_item

ROOT = Path(__file__).resolve().parents[1]
PIPELINES = [ROOT / "dvc.yaml", ROOT / "sweep" / "dvc.yaml", ROOT / "replicate" / "dvc.yaml"]


def commands(pipeline: Path) -> dict[str, str]:
    stages = yaml.safe_load(pipeline.read_text())["stages"]
    return {name: stage.get("do", stage)["cmd"] for name, stage in stages.items()}


@pytest.mark.parametrize("pipeline", PIPELINES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_stage_command_interpolates_a_value(pipeline):
    """DVC fills ${...} before our code can check it, and runs the command through a shell."""
    for name, cmd in commands(pipeline).items():
        assert "${" not in cmd, f"{pipeline.name}:{name} puts a params value on its command line: {cmd}"


@pytest.mark.parametrize(
    ("fields", "address", "expected"),
    [
        (["dataset", "variant"], "train@mnist-vae", {"dataset": "mnist", "variant": "vae"}),
        (["dataset", "variant"], "evaluate@fashion_mnist-beta_0p5", {"dataset": "fashion_mnist", "variant": "beta_0p5"}),
        (["dataset", "variant"], "sweep/dvc.yaml:train@mnist-g1_b4", {"dataset": "mnist", "variant": "g1_b4"}),
        (["dataset"], "prepare@fashion_mnist", {"dataset": "fashion_mnist"}),
        (["profile"], "replicate/dvc.yaml:train@ae-vs-vae-2d", {"profile": "ae-vs-vae-2d"}),
    ],
)
def test_the_item_is_read_from_the_stage_address(fields, address, expected):
    assert stage_item(fields, address) == expected


@pytest.mark.parametrize(
    ("fields", "address", "culprit"),
    [
        (["dataset", "variant"], "train@mnist-x;touch INJECTED;#", "'x;touch INJECTED;#' is not a variant name"),
        (["dataset", "variant"], "train@mnist-<script>alert(1)</script>", "is not a variant name"),
        (["dataset", "variant"], "train@mnist-ab\n", "'ab\\n' is not a variant name"),
        (["dataset", "variant"], "train@mnist", "expected 2 values (dataset, variant)"),
        (["dataset"], "prepare@../etc", "'../etc' is not a dataset name"),
        (["profile"], "replicate/dvc.yaml:train@emae/../../x", "is not a profile name"),
        (["dataset"], "report", "expected <stage>@<item>"),
        (["dataset"], None, "$DVC_STAGE, which `dvc repro` sets"),
    ],
)
def test_a_bad_item_is_refused_in_one_line_naming_it(fields, address, culprit):
    with pytest.raises(ConfigError) as refused:
        stage_item(fields, address)
    assert culprit in str(refused.value)


def parse(argv: list[str], environ: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_item_argument(parser)
    parser.add_argument("--dataset")
    parser.add_argument("--variant")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    return resolve_item(parser.parse_args(argv), environ)


def test_placeholders_are_filled_after_the_values_are_checked():
    args = parse(["--item", "dataset,variant", "--out", "metrics/{dataset}/{variant}.json"], {"DVC_STAGE": "evaluate@mnist-ae"})
    assert (args.dataset, args.variant, args.out) == ("mnist", "ae", Path("metrics/mnist/ae.json"))
    profile = parse(["--item", "profile", "--params", "replicate/profiles/{profile}.yaml"],
                    {"DVC_STAGE": "replicate/dvc.yaml:figures@plain-ae"})
    assert profile.params == Path("replicate/profiles/plain-ae.yaml")


def test_without_item_nothing_is_read_from_the_environment():
    args = parse(["--dataset", "mnist", "--out", "x/{dataset}"], {"DVC_STAGE": "train@fashion_mnist-vae"})
    assert (args.dataset, args.out) == ("mnist", Path("x/{dataset}"))


def test_an_explicit_value_that_contradicts_the_stage_is_refused():
    with pytest.raises(ConfigError, match="--dataset fashion_mnist contradicts the stage's item 'mnist'"):
        parse(["--item", "dataset", "--dataset", "fashion_mnist"], {"DVC_STAGE": "prepare@mnist"})


def test_a_placeholder_that_is_not_a_field_is_named():
    with pytest.raises(ConfigError, match=r"names \{variant\}, which is not a field of --item"):
        parse(["--item", "dataset", "--out", "m/{variant}.pt"], {"DVC_STAGE": "prepare@mnist"})


@pytest.mark.smoke
def test_dvc_repro_with_an_injected_variant_name_runs_no_shell_and_says_one_line(tmp_path):
    """The fault case as found: the name reaches dvc.yaml's matrix; nothing of it may run."""
    for name in ("dvc.yaml", ".dvcignore", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("stages", "src"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "mnist.npz").write_bytes(b"")  # a dependency DVC wants to see; never read
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["variants"]["x;touch INJECTED;#"] = {"objective": "deterministic"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for argv in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(argv, cwd=tmp_path, check=True, env=env)
    # the first stage to run is the injected variant's own train stage
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--single-item", "train@mnist-x;touch INJECTED;#"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert not (tmp_path / "INJECTED").exists()
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors and "'x;touch INJECTED;#' is not a variant name" in errors[0], done.stderr
