"""Where a stage's wall time goes: start-up (imports, params, MLflow store) against the work itself.

Times, in fresh processes on this machine, the imports each stage script pays
before its first line of work, and the MLflow store's first open (sqlite:
schema check), and the workers' start (spawn, torch import, the first Adam
step, which imports torch._dynamo). Prints one line per item, in seconds,
the median of --repeat runs. Use it to check the start-up aim (under 2 s a
stage) on a new machine; compare numbers measured in one run only.

    python benchmarks/stage_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNIPPETS = {
    "python alone": "pass",
    "import torch": "import torch",
    "import mlflow.tracking": "import mlflow.tracking",
    "train stage's imports": "import sys; sys.path.insert(0, 'stages'); import train",
    "evaluate stage's imports": "import sys; sys.path.insert(0, 'stages'); import evaluate",
    "figures stage's imports": "import sys; sys.path.insert(0, 'stages'); import figures",
    "report stage's imports (no torch)": "import sys; sys.path.insert(0, 'stages'); import report",
    "first Adam optimizer (imports torch._dynamo)": (
        "import torch; m = torch.nn.Linear(2, 2); torch.optim.Adam(m.parameters())"
    ),
}


def timed(code: str, repeat: int) -> float:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def store_open(repeat: int) -> float:
    """A fresh process opening an existing sqlite store (what each stage does once)."""
    with tempfile.TemporaryDirectory() as folder:
        code = ("from aebench.common.tracking import open_store; "
                f"open_store('sqlite:///{folder}/mlflow.db', 'aebench', workspace='{folder}')")
        subprocess.run([sys.executable, "-c", code], check=True)  # creates the schema once
        return timed(code, repeat) - timed("from aebench.common.tracking import open_store", repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for name, code in SNIPPETS.items():
        print(f"{name:48s} {timed(code, args.repeat):6.2f} s", flush=True)
    print(f"{'open an existing sqlite MLflow store':48s} {store_open(args.repeat):6.2f} s", flush=True)


if __name__ == "__main__":
    main()
