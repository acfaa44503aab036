"""Stage start-up: a stage script loads only light modules, and refuses a bad input before its work's libraries.

torch, seaborn, scipy.stats, scikit-learn and MLflow each take one to three seconds to import on the
study's machines. A stage loads them where its work first needs them, after every check that does not,
so `dvc repro` reaches a stage's first line within two seconds and a refused input costs under one.
Each probe runs in a fresh interpreter: this one has loaded all of them long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = tuple(sorted(path.stem for path in (REPO / "stages").glob("[!_]*.py")))  # every stage script, new ones too
HEAVY = ("torch", "seaborn", "scipy.stats", "sklearn", "mlflow")


def fresh(code: str) -> dict:
    """Run `code` in a fresh interpreter (stages/ importable) that sets `out`; return `out` as JSON."""
    probe = f"import json, sys\nsys.path.insert(0, 'stages')\nHEAVY = {HEAVY!r}\n{code}\nprint(json.dumps(out))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_no_stage_script_imports_a_heavy_library():
    loaded = fresh(
        f"import importlib\nout = {{}}\nfor stage in {STAGES!r}:\n"
        "    importlib.import_module(stage)\n"
        "    out[stage] = [name for name in HEAVY if name in sys.modules]"
    )
    assert loaded == {stage: [] for stage in STAGES}


def stage_refusal(stage: str, args: list[str]) -> dict:
    """The error `stage`'s main raised on `args`, and the heavy libraries loaded by then."""
    return fresh(
        f"import {stage}\ntry:\n    {stage}.main({args!r})\n    error = None\n"
        "except Exception as err:\n    error = f'{type(err).__name__}: {err}'\n"
        "out = {'error': error, 'loaded': [name for name in HEAVY if name in sys.modules]}"
    )


@pytest.mark.parametrize("stage", ["train", "evaluate", "classifier"])
def test_a_refused_input_stops_a_torch_stage_before_torch_loads(tmp_path, stage):
    blocker = tmp_path / "a-file"  # outputs under a regular file cannot be written
    blocker.write_text("")
    missing = tmp_path / "missing"
    params = ["--params", str(REPO / "params.yaml")]
    args = {
        "train": ["--dataset", "mnist", "--variant", "vae", "--prepared", str(missing), "--models", str(tmp_path),
                  "--history", str(tmp_path), "--resume", str(tmp_path), "--runinfo", str(tmp_path)],
        "evaluate": ["--dataset", "mnist", "--variant", "vae", "--prepared", str(missing), "--models", str(missing),
                     "--history", str(missing), "--classifiers", str(missing), "--metrics", str(tmp_path),
                     "--latent", str(tmp_path), "--runinfo", str(tmp_path)],
        "classifier": ["--dataset", "mnist", "--data", str(missing / "mnist.npz"), "--out", str(blocker / "mnist.pt"),
                       "--metrics", str(tmp_path / "mnist.json"), "--runinfo", str(tmp_path)],
    }[stage]
    refused = stage_refusal(stage, args + params)
    expected = {"train": "prepared data not found", "evaluate": "training history not found",
                "classifier": str(blocker)}[stage]
    assert refused["error"] is not None and expected in refused["error"]
    assert refused["loaded"] == []
