"""Where a stage's wall time goes: start-up (imports, params, MLflow store) against the work itself.

Times, in fresh processes on this machine, the imports each stage script pays
before its first line of work (the start-up aim: at most 3 s), the MLflow
store's first open (sqlite: schema check), and the workers' start (spawn, torch
import, the first Adam step, which imports torch._dynamo). A stage loads torch,
seaborn and scipy.stats where its work first needs them, after every check that
does not (`tests/test_stage_startup.py`); their own lines give what the work
then adds: torch for a stage that trains, evaluates or checks a checkpoint,
seaborn (with scipy.stats) for one that draws. Prints one line per item: the
median of --repeat runs in wall seconds, and in CPU seconds (user + system of
the child process: what the item costs on a machine shared with other jobs,
where the wall time also counts the waiting). Compare numbers measured in one
run only.

    python benchmarks/stage_startup.py --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "train", "classifier", "evaluate", "figures", "report", "sweep_report", "replicate_report")
SNIPPETS = {
    "python alone": "pass",
    "import torch": "import torch",
    "import mlflow.tracking": "import mlflow.tracking",
    "import seaborn (and with it scipy.stats)": "import seaborn",
    "import scipy.stats": "import scipy.stats",
    **{f"{stage} stage's imports": f"import sys; sys.path.insert(0, 'stages'); import {stage}" for stage in STAGES},
    "first Adam optimizer (imports torch._dynamo)": (
        "import torch; m = torch.nn.Linear(2, 2); torch.optim.Adam(m.parameters())"
    ),
}


def timed(code: str, repeat: int) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh `python -c code`, each the median over `repeat` runs."""
    wall, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
        wall.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(wall), statistics.median(cpu)


def store_open(repeat: int) -> tuple[float, float]:
    """A fresh process opening an existing sqlite store (what each stage does once)."""
    with tempfile.TemporaryDirectory() as folder:
        code = ("from aebench.common.tracking import open_store; "
                f"open_store('sqlite:///{folder}/mlflow.db', 'aebench', workspace='{folder}')")
        subprocess.run([sys.executable, "-c", code], check=True)  # creates the schema once
        wall, cpu = timed(code, repeat)
        import_wall, import_cpu = timed("from aebench.common.tracking import open_store", repeat)
        return wall - import_wall, cpu - import_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'':48s} {'wall':>8s} {'CPU':>8s}")
    for name, code in SNIPPETS.items():
        print(f"{name:48s}", "{:6.2f} s {:6.2f} s".format(*timed(code, args.repeat)), flush=True)
    store = "{:6.2f} s {:6.2f} s".format(*store_open(args.repeat))
    print(f"{'open an existing sqlite MLflow store':48s}", store, flush=True)


if __name__ == "__main__":
    main()
