"""Make sure a stage runs with the project's Python (imported first by every stage script).

`dvc repro` runs `python stages/<name>.py`, whatever `python` is first on PATH.
Started as `.venv/bin/dvc repro` without the venv activated, that is the
system Python, which cannot import aebench, and DVC has already removed the
stage's outputs by then. So: when aebench is not importable and the
workspace's `.venv` exists, the stage re-executes itself with the venv's
Python (and runs normally); otherwise it stops with a one-line hint.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[1]
VENV = WORKSPACE / ".venv"
VENV_PYTHON = VENV / "bin" / "python"

if importlib.util.find_spec("aebench") is None:
    # A venv's python is a symlink to the base interpreter: sys.prefix, not the binary, says which one runs.
    if VENV_PYTHON.is_file() and Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])
    print(
        f"error: {sys.executable} cannot import aebench; run `make install` and `source .venv/bin/activate` "
        "(or `make study`); `dvc checkout` restores outputs from DVC's cache",
        file=sys.stderr,
    )
    sys.exit(1)
